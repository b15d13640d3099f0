"""``echossl evaluate``: a checkpoint on an EchoNet-format split or on a CAMUS folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from echossl.checkpoints import load_checkpoint
from echossl.data.check import detect_format
from echossl.errors import EchosslError
from echossl.evaluation.metrics import regression_metrics, write_metrics_json
from echossl.progress import progress_bar


def evaluate(checkpoint, data, split: str, out_json, *, cfg: dict) -> dict:
    """Dispatch on the checkpoint's task and the data's format; writes ``metrics.json``."""
    from echossl.pipelines import semisupervised_ef as pipe

    ckpt = load_checkpoint(checkpoint)
    task = ckpt["hyper_parameters"]["task"]
    if task not in ("seg", "ef", "distill"):
        return _plugin_for(task).evaluate_checkpoint(ckpt["path"], data, split, out_json, cfg=cfg)
    fmt = detect_format(data)
    if fmt == "camus":
        if task == "seg":
            raise EchosslError("CAMUS evaluation takes an EF checkpoint (ef or distill), not a segmentation one")
        return evaluate_camus(ckpt["path"], data, out_json, cfg=cfg)
    if task == "seg":
        return evaluate_seg_checkpoint(ckpt["path"], data, split, out_json, cfg=cfg)
    module, hp = pipe.load_ef_model(ckpt["path"])
    if module.net.stem[0].in_channels == 4 and Path(hp.get("masks_dir") or "").parent.exists() is False:
        raise EchosslError(f"{ckpt['path']} is a multi-input teacher whose masks folder is gone")
    return pipe.evaluate_ef(ckpt["path"], data, split, out_json, cfg=cfg)


# Pipelines of the other papers: each defines TASKS (the checkpoint tasks it owns)
# and evaluate_checkpoint(checkpoint, data, split, out_json, *, cfg) -> metrics dict.
PIPELINES = ("unilvseg", "discover", "mrjet", "video_speech")


def _plugin_for(task: str):
    import importlib

    for name in PIPELINES:
        try:
            module = importlib.import_module(f"echossl.pipelines.{name}")
        except ModuleNotFoundError:
            continue
        if task in getattr(module, "TASKS", ()):
            return module
    raise EchosslError(f"no evaluation is known for checkpoints of task {task!r}")


def evaluate_seg_checkpoint(checkpoint, data, split: str, out_json, *, cfg: dict) -> dict:
    """Dice on a split of another dataset: masks are predicted into ``<out>/masks`` first."""
    from echossl.data.echonet import read_filelist, validate
    from echossl.pipelines import semisupervised_ef as pipe

    table = read_filelist(data)
    usable, _ = validate(data)
    names = sorted(set(table.loc[table["Split"] == split, "FileName"]) & set(usable))
    if not names:
        raise EchosslError(f"{data} has no usable {split} videos to evaluate")
    masks_dir = Path(out_json).parent / "eval_masks"
    pipe.infer_masks(checkpoint, data, names, masks_dir, batch_size=cfg["seg"].get("infer_batch", 64))
    return pipe.evaluate_seg(masks_dir, data, names, out_json, split_name=split)


@torch.inference_mode()
def evaluate_camus(checkpoint, data, out_json, *, cfg: dict) -> dict:
    """External validation (Table IX): MAE per ImageQuality and overall on CAMUS 4CH half sequences.

    Each half sequence is mirrored into a full ED-ES-ED cycle, resized to the
    model's frame size, normalised with the training statistics, and the cycle
    is repeated until it fills a clip of the model's length and period (a
    periodic continuation of the heartbeat rather than zero frames).
    """
    from echossl.data.camus import Camus
    from echossl.pipelines import semisupervised_ef as pipe

    module, hp = pipe.load_ef_model(checkpoint)
    if module.net.stem[0].in_channels == 4:
        raise EchosslError("CAMUS evaluation needs a video-only EF model (a distilled student or video-only run)")
    norm = hp["norm"]
    size = norm.get("size") or 112
    ds = Camus(data, size=size, mirror=True)
    ef_cfg = cfg["ef"]
    mean = torch.tensor(norm["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(norm["std"]).view(1, 3, 1, 1)
    need = ef_cfg["length"] * ef_cfg["period"]
    preds, truth, quality = [], [], []
    for i in progress_bar(range(len(ds)), "EF on CAMUS"):
        item = ds[i]
        frames = (item["video"].permute(1, 0, 2, 3) - mean) / std  # (T, 3, H, W)
        reps = -(-need // frames.shape[0])
        frames = frames.repeat(reps, 1, 1, 1)
        preds.append(pipe.predict_ef_frames(module, frames, ef_cfg["length"], ef_cfg["period"], clips=4))
        truth.append(float(item["EF"]))
        quality.append(item["quality"])
    preds, truth, quality = np.asarray(preds), np.asarray(truth), np.asarray(quality)
    keep = np.isfinite(truth)
    metrics = regression_metrics(truth[keep], preds[keep], bootstrap=1000)
    for q in ("Good", "Medium", "Poor"):
        sel = keep & (quality == q)
        if sel.any():
            metrics[f"mae_{q.lower()}"] = float(np.mean(np.abs(truth[sel] - preds[sel])))
            metrics[f"n_{q.lower()}"] = int(sel.sum())
    write_metrics_json(out_json, task=hp["task"], split="CAMUS", n=int(keep.sum()), **metrics)
    return metrics
