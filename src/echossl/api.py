"""The Python entry points for using echossl models from your own code.

>>> model, settings = load_model("runs/student")           # doctest: +SKIP
>>> ef = predict_ef(model, frames, settings)               # doctest: +SKIP

:func:`load_model` accepts whatever ``--checkpoint`` accepts (a ``.ckpt``, a run
folder, an ``export`` folder or its ``model.safetensors``) and returns the bare
network in eval mode plus the settings it needs at inference: the frame
normalisation, the clip length and period, the number of input channels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from echossl.errors import CheckpointError

__all__ = ["load_model", "load_module", "prepare_frames", "predict_ef"]


def load_module(checkpoint):
    """The whole LightningModule of a checkpoint, in eval mode, and its hyper-parameters.

    A distilled student is rebuilt without its teacher (only the student runs at inference).

    Raises:
        CheckpointError: unreadable, unsafe, of an unknown task, or not matching the network.
    """
    from echossl.engine import get_task, load_checkpoint

    ckpt = load_checkpoint(checkpoint)
    hp = dict(ckpt["hyper_parameters"])
    task = get_task(hp["task"], ckpt.get("path", checkpoint))
    if task.name == "distill":
        hp["teacher_checkpoint"] = None
    cls = task.module_class()
    name = cls.__name__
    try:
        module = cls(**hp)
        module.load_state_dict(ckpt["state_dict"])
    except (RuntimeError, TypeError) as err:
        raise CheckpointError(f"checkpoint {ckpt.get('path', checkpoint)} does not fit the current {name} "
                              f"({err.__class__.__name__}); it was made by another version of echossl") from None
    return module.eval(), hp


def _run_config(checkpoint) -> dict:
    """``config.yaml`` of the run a checkpoint belongs to, or the cpu preset."""
    path = Path(checkpoint)
    for folder in (path, path.parent, path.parent.parent):
        if (folder / "config.yaml").is_file():
            import yaml

            return yaml.safe_load((folder / "config.yaml").read_text()) or {}
    from echossl.config import load_config

    return load_config("cpu")


def load_model(checkpoint) -> tuple[nn.Module, dict]:
    """A ready ``nn.Module`` (eval mode, on CPU) and its inference settings.

    Args:
        checkpoint: ``.ckpt`` file, run folder, export folder or ``model.safetensors``.

    Returns:
        ``(net, settings)``: ``net`` is the trained network itself (for EF models
        ``(B, C, T, H, W)`` normalised clips -> ``(B,)`` or ``(B, 1)`` EF in %;
        for ``seg`` ``(B, 3, H, W)`` -> ``(B, 1, H, W)`` LV logits). ``settings``:
        ``task``; ``norm`` (``mean``, ``std`` per channel on the 0..255 scale,
        ``size`` the square frame size or None); ``in_channels``; and for EF
        models ``length`` and ``period`` of the clips (from the run's config.yaml,
        else the checkpoint, else the cpu preset), plus ``hyper_parameters``.
    """
    module, hp = load_module(checkpoint)
    net = getattr(module, "net", module)
    settings = {"task": hp["task"], "norm": hp.get("norm"), "hyper_parameters": hp}
    first = next((m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Conv3d))), None)
    settings["in_channels"] = int(first.in_channels) if first is not None else hp.get("in_channels")
    if hp["task"] in ("ef", "distill"):
        ef = (_run_config(checkpoint).get("ef") or {})
        settings["length"] = int(hp.get("length") or ef.get("length") or 32)
        settings["period"] = int(hp.get("period") or ef.get("period") or 2)
    elif "frames" in hp:
        settings.update(length=int(hp["frames"]), period=int(hp.get("period") or 1))
    return net.eval(), settings


def prepare_frames(frames, settings: dict) -> torch.Tensor:
    """Video frames as the model saw them in training: ``(F, 3, size, size)`` float32, normalised.

    Args:
        frames: ``(F, H, W, 3)`` uint8 (as read from an AVI) or ``(F, 3, H, W)`` float
            on the 0..255 scale, numpy or torch.
        settings: from :func:`load_model`.
    """
    x = torch.as_tensor(np.asarray(frames) if not isinstance(frames, torch.Tensor) else frames).float()
    if x.ndim != 4:
        raise ValueError(f"frames must be (F, H, W, 3) or (F, 3, H, W), got shape {tuple(x.shape)}")
    if x.shape[-1] == 3 and x.shape[1] != 3:
        x = x.permute(0, 3, 1, 2)
    norm = settings.get("norm") or {"mean": [0.0] * 3, "std": [1.0] * 3, "size": None}
    mean = torch.as_tensor(norm["mean"], dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.as_tensor(norm["std"], dtype=torch.float32).view(1, -1, 1, 1)
    x = (x - mean) / std
    size = norm.get("size")
    if size and tuple(x.shape[-2:]) != (size, size):
        x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return x


@torch.inference_mode()
def predict_ef(net: nn.Module, frames, settings: dict, clips="all", batch_size: int = 16) -> float:
    """EF (%) of one whole video: the mean over its clips (the papers' test-time averaging).

    Args:
        net, settings: from :func:`load_model` of an ``ef`` or ``distill`` checkpoint.
        frames: the video's frames, see :func:`prepare_frames`.
        clips: ``"all"`` (every start) or a number of evenly spaced clips.
    """
    from echossl.pipelines.semisupervised_ef import clips_from_frames

    if settings.get("task") not in ("ef", "distill"):
        raise ValueError(f"predict_ef needs an EF model, not task {settings.get('task')!r}")
    if settings.get("in_channels") == 4:
        raise ValueError("this is a multi-input teacher that also needs predicted masks; use a video-only model")
    x = prepare_frames(frames, settings)
    all_clips = clips_from_frames(x, settings["length"], settings["period"], clips)  # (K, C, T, H, W)
    device = next(net.parameters()).device
    out = [net(all_clips[s:s + batch_size].to(device)).reshape(-1).float().cpu()
           for s in range(0, len(all_clips), batch_size)]
    return float(torch.cat(out).mean())
