"""Loading checkpoints safely, exporting them for sharing, and telling which task a checkpoint is for.

Checkpoints are loaded with ``torch.load(weights_only=True)``: a checkpoint that
would need to unpickle arbitrary objects (and so could run code) is refused.
An export folder (:func:`export_checkpoint`: ``model.safetensors`` plus
``config.json``) holds no pickle at all and loads wherever a checkpoint does.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path

import torch

from echossl.errors import CheckpointError, EchosslError

EXPORT_WEIGHTS = "model.safetensors"
EXPORT_CONFIG = "config.json"


def load_checkpoint(path: str | Path, expect_task: str | tuple[str, ...] | None = None) -> dict:
    """Load a Lightning checkpoint written by echossl, a run folder's best one, or an export.

    ``path`` may be a ``.ckpt`` file, a run folder (its ``best.ckpt``, else
    ``last.ckpt``), an export folder or its ``model.safetensors``.

    Returns:
        The checkpoint dict with ``state_dict`` and ``hyper_parameters``; the
        task is ``ckpt["hyper_parameters"]["task"]``.

    Raises:
        CheckpointError: the file is missing, not a checkpoint, unsafe to load,
            or made for another task.
    """
    path = Path(path)
    if path.is_dir() and (path / EXPORT_WEIGHTS).is_file():
        return _check_task(load_export(path / EXPORT_WEIGHTS), path, expect_task)
    if path.suffix == ".safetensors":
        return _check_task(load_export(path), path, expect_task)
    if path.is_dir():
        path = best_checkpoint(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(
            f"checkpoint {path} holds pickled objects that could run code, so it was not loaded"
        ) from None
    except Exception as err:  # truncated zip, random bytes, ...
        raise CheckpointError(f"checkpoint {path} cannot be read ({err.__class__.__name__})") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise CheckpointError(f"{path} is not an echossl checkpoint (it has no state_dict)")
    ckpt["path"] = str(path)
    return _check_task(ckpt, path, expect_task)


def _check_task(ckpt: dict, path: Path, expect_task) -> dict:
    task = (ckpt.get("hyper_parameters") or {}).get("task")
    if task is None:
        raise CheckpointError(f"{path} is not an echossl checkpoint (its hyper-parameters name no task)")
    if expect_task is not None:
        expected = (expect_task,) if isinstance(expect_task, str) else tuple(expect_task)
        if task not in expected:
            raise CheckpointError(f"checkpoint {path} is for task {task!r}, not {' or '.join(expected)}")
    return ckpt


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except Exception as err:  # SafetensorError (bad header, truncated), OSError
        detail = (str(err).splitlines() or [type(err).__name__])[0][:120]
        raise CheckpointError(f"{path} is not a readable safetensors file ({detail})") from None


def load_export(weights: str | Path) -> dict:
    """Load an export (``model.safetensors`` and the ``config.json`` beside it) as a checkpoint dict.

    Returns:
        ``{"state_dict", "hyper_parameters", "path"}`` like :func:`load_checkpoint`,
        ``path`` being the export folder.

    Raises:
        CheckpointError: a missing or malformed ``config.json``, or weights whose
            sha256 differs from the one recorded there (a damaged or altered file).
    """
    weights = Path(weights)
    config_path = weights.with_name(EXPORT_CONFIG)
    if not weights.is_file():
        raise CheckpointError(f"checkpoint {weights} does not exist")
    try:
        config = json.loads(config_path.read_text())
        hp, sha = dict(config["hyper_parameters"]), str(config["sha256"])
    except (OSError, ValueError, KeyError, TypeError):
        raise CheckpointError(f"{config_path} is missing or is not an echossl export config "
                              "(it needs hyper_parameters and sha256)") from None
    if _sha256(weights) != sha:
        raise CheckpointError(f"{weights} does not match the sha256 in {config_path} (a damaged or altered file)")
    return {"state_dict": _read_safetensors(weights), "hyper_parameters": hp, "path": str(weights.parent)}


def export_checkpoint(checkpoint: str | Path, out_dir: str | Path, *,
                      training_data: str | Path | None = None) -> dict:
    """Write ``out_dir/model.safetensors`` and ``out_dir/config.json`` for sharing.

    Also a model card, ``out_dir/README.md``, with copies of the run's
    ``config.yaml`` and ``metrics.json`` (:mod:`echossl.evaluation.model_card`;
    ``training_data`` is the data folder it describes, when given).

    The state dict's tensors are saved contiguous and cloned (safetensors refuses
    tensors that share storage); ``config.json`` holds the task, the
    JSON-serialisable hyper-parameters (the others are named under
    ``dropped_hyper_parameters``), the echossl version, the tensor count and the
    sha256 of the weights file. Neither file can run code when loaded.

    Returns:
        The config written.
    """
    from safetensors.torch import save

    from echossl import __version__
    from echossl.io import atomic_write_bytes, atomic_write_text

    ckpt = load_checkpoint(checkpoint)
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in ckpt["state_dict"].items()
               if isinstance(v, torch.Tensor)}
    hp = ckpt["hyper_parameters"]
    kept, dropped = {}, []
    for key, value in hp.items():
        try:
            json.dumps(value, allow_nan=False)
            kept[key] = value
        except (TypeError, ValueError):
            dropped.append(key)
    out_dir = Path(out_dir)
    weights = out_dir / EXPORT_WEIGHTS
    data = save(tensors, metadata={"task": str(hp["task"]), "format": "pt"})
    atomic_write_bytes(weights, data)
    config = {
        "format": "echossl-export",
        "task": hp["task"],
        "echossl_version": __version__,
        "tensors": len(tensors),
        "parameters": int(sum(t.numel() for t in tensors.values())),
        "sha256": hashlib.sha256(data).hexdigest(),
        "epoch": ckpt.get("epoch"),
        "global_step": ckpt.get("global_step"),
        "hyper_parameters": kept,
        "dropped_hyper_parameters": dropped,
    }
    from echossl.evaluation.model_card import write_model_card

    write_model_card(ckpt, out_dir, export=config, data=training_data)
    # written last: a folder with a config.json is a complete export
    atomic_write_text(out_dir / EXPORT_CONFIG, json.dumps(config, indent=2) + "\n")
    return config


def best_checkpoint(run: str | Path) -> Path:
    """``best.ckpt`` if validation ever ran, else ``last.ckpt``."""
    run = Path(run)
    for name in ("best.ckpt", "last.ckpt"):
        if (run / "checkpoints" / name).exists():
            return run / "checkpoints" / name
    raise EchosslError(f"{run} holds no checkpoint (expected checkpoints/best.ckpt or last.ckpt)")
