"""Where inference runs and how batches are drawn: the device and DataLoader helpers of every pipeline."""

from __future__ import annotations

import warnings

from echossl.errors import EchosslError


def select_device(accelerator: str = "auto", devices: str | int | None = "auto", *, warn: bool = True):
    """The one ``torch.device`` inference runs on.

    ``accelerator`` is ``cpu``, ``gpu``/``cuda``, ``mps`` or ``auto`` (CUDA when
    available, else CPU). ``devices`` follows Lightning: a count (``1``, ``auto``)
    uses the first device; a list (``"2,"``, ``"1,3"``, ``"[1]"``) uses its first
    index. Inference is one process on one device; a count above 1 warns (``warn``).

    Raises:
        EchosslError: an unknown accelerator, a GPU asked for where there is none,
            or ``devices`` that is neither a count nor a list.
    """
    import torch

    accelerator = (accelerator or "auto").lower()
    if accelerator == "auto":
        accelerator = "gpu" if torch.cuda.is_available() else "cpu"
    if accelerator == "cpu":
        return torch.device("cpu")
    if accelerator in ("gpu", "cuda"):
        if not torch.cuda.is_available():
            raise EchosslError("--accelerator gpu was given but no CUDA device is available")
        return torch.device("cuda", _first_index(devices, warn))
    if accelerator == "mps":
        return torch.device("mps")
    raise EchosslError(f"--accelerator must be cpu, gpu or auto, got {accelerator!r}")


def training_device(opts):
    """The device a pipeline evaluates on right after training with ``opts`` (a ``TrainerOptions``).

    The first of the training devices; CPU when the run asked for a GPU that is
    gone (the evaluation of a finished run should not fail where training ran)."""
    import torch

    accelerator = (opts.accelerator or "auto").lower() if opts is not None else "auto"
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        accelerator = "cpu"
    return select_device(accelerator, getattr(opts, "devices", "auto"), warn=False)


def _first_index(devices, warn: bool = True) -> int:
    raw = str(devices if devices is not None else "auto").strip()
    text = raw.strip("[]")
    if text in ("", "auto", "-1"):
        return 0
    if "," in text or raw.startswith("["):  # a list of indices, as Lightning reads "2," or "[2]"
        parts = [p for p in text.split(",") if p.strip()]
        try:
            return int(parts[0])
        except (ValueError, IndexError):
            raise EchosslError(f"--devices {devices!r} is not a count or a list of device indices") from None
    try:
        count = int(text)
    except ValueError:
        raise EchosslError(f"--devices {devices!r} is not a count or a list of device indices") from None
    if count > 1 and warn:
        warnings.warn(f"inference runs on one device; --devices {count} uses the first one", stacklevel=3)
    return 0


def make_loader(dataset, batch_size: int, shuffle: bool, workers: int = 0, drop_last: bool = False):
    """A ``DataLoader`` whose batch never exceeds the dataset (a tiny split still gives one batch).

    ``drop_last`` drops a short final batch only when there is more than one batch,
    so that a split smaller than ``batch_size`` is never emptied.
    """
    from torch.utils.data import DataLoader

    bs = max(1, min(int(batch_size), len(dataset)))
    workers = int(workers or 0)
    return DataLoader(dataset, batch_size=bs, shuffle=shuffle, num_workers=workers,
                      persistent_workers=workers > 0, drop_last=drop_last and len(dataset) > bs)


def config_loader(dataset, batch_size: int, cfg: dict, shuffle: bool, drop_last: bool = False):
    """:func:`make_loader` with the worker count of the config (``data.workers``)."""
    return make_loader(dataset, batch_size, shuffle, int(cfg["data"].get("workers", 0) or 0), drop_last)


__all__ = ["select_device", "training_device", "make_loader", "config_loader"]
