"""Inference settings that follow the checkpoint, not the command line's preset.

A model is only right at the frame size, clip length, period, number of test
clips and normalisation it was trained with. ``evaluate``, ``predict`` and
``export`` therefore read them from the checkpoint's own resolved config:

1. a config embedded in the checkpoint (``ckpt["echossl_config"]`` or
   ``hyper_parameters["config"]``), where a training command stored one;
2. else the run's ``config.yaml``: ``RUN/config.yaml`` for ``RUN/``,
   ``RUN/checkpoints/*.ckpt`` or an export folder (``export`` copies it there);
3. else (a bare ``.ckpt`` moved out of its run folder) the ``fallback_preset``
   (``cpu`` unless told), with a warning that the settings are guessed.

A ``--config`` YAML is then merged over that config, as an explicit override;
the preset given at predict time is never used when the checkpoint's config is
found. The normalisation (mean, std, frame size) always comes from the
checkpoint's hyper-parameters, which is what the network saw in training; only
an explicit ``size`` in the override's model section changes the frame size.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import yaml

from echossl.config import deep_merge, load_preset

RUN_CONFIG = "config.yaml"


def _read_yaml(path: Path) -> dict | None:
    try:
        cfg = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return None
    # an echossl config has model sections; a random config.yaml beside a file does not
    if isinstance(cfg, dict) and any(k in cfg for k in ("ef", "seg", "preset")):
        return cfg
    return None


def run_config_path(ckpt: dict) -> Path | None:
    """The ``config.yaml`` of the run or export a loaded checkpoint came from, or None."""
    path = Path(ckpt.get("path") or "")
    candidates = [path / RUN_CONFIG] if path.is_dir() else [path.parent / RUN_CONFIG, path.parent.parent / RUN_CONFIG]
    for candidate in candidates:
        if candidate.is_file() and _read_yaml(candidate) is not None:
            return candidate
    return None


def checkpoint_config(ckpt: dict, override: dict | None = None,
                      fallback_preset: str | None = None) -> tuple[dict, str]:
    """The checkpoint's own resolved config, with ``override`` merged over it.

    Args:
        ckpt: a dict from :func:`echossl.engine.load_checkpoint`.
        override: the parsed ``--config`` YAML (:func:`load_override`), or None.
        fallback_preset: preset used only when the checkpoint's config cannot be
            found (default ``cpu``); a warning says so.

    Returns:
        ``(cfg, source)`` where ``source`` names where the base config came from
        (``"checkpoint"``, the ``config.yaml`` path, or ``"preset <name>"``).
    """
    hp = ckpt.get("hyper_parameters") or {}
    embedded = ckpt.get("echossl_config") or hp.get("config")
    if isinstance(embedded, dict) and embedded:
        base, source = embedded, "checkpoint"
    elif (found := run_config_path(ckpt)) is not None:
        base, source = _read_yaml(found), str(found)
    else:
        name = fallback_preset or "cpu"
        base, source = load_preset(name), f"preset {name}"
        warnings.warn(f"{ckpt.get('path')} has no config.yaml beside it (not in its run or export folder), "
                      f"so clip length, period and test clips come from the {name!r} preset; "
                      "pass the run's config.yaml with --config to be sure", stacklevel=2)
    # fill keys a newer echossl added since the run was made, without changing the run's own values
    preset = base.get("preset") if base.get("preset") in ("cpu", "paper") else "cpu"
    cfg = deep_merge(load_preset(preset), base)
    if override:
        cfg = deep_merge(cfg, override)
    return cfg, source


def load_override(path: str | Path | None, sets=()) -> dict | None:
    """The settings a ``--config`` YAML and ``--set a.b=c`` values give (not merged with any preset).

    They are checked like a training command's (unknown keys and wrong types are
    refused in one sentence); None when neither is given.
    """
    from echossl import config as config_module

    if path is None and not sets:
        return None
    user: dict = {}
    if path is not None:
        path = Path(path)
        config_module.load_config("cpu", path)  # the same checks (and messages) as the training commands
        user = yaml.safe_load(path.read_text()) or {}
    for item in sets or ():
        key, value = config_module.parse_set(item)
        update: dict = {}
        config_module.set_dotted(update, key, value)
        config_module.validate(update, where=f"--set {item}")
        user = deep_merge(user, update)
    coerce = getattr(config_module, "_coerce", None)  # YAML reads 1e-4 as a string
    return coerce(user, config_module.schema()) if coerce else user


def inference_settings(ckpt: dict, cfg: dict, override: dict | None = None,
                       batch_size: int | None = None) -> dict:
    """What a model needs at inference, from its hyper-parameters and resolved config.

    Returns:
        ``{"task", "model", "size", "length", "period", "test_clips", "mean",
        "std", "batch_size"}``; for segmentation tasks ``length``, ``period`` and
        ``test_clips`` are None (2D segmenters run frame by frame) except for
        video segmenters, whose clip frames and period come from their
        hyper-parameters.
    """
    hp = ckpt.get("hyper_parameters") or {}
    task = hp.get("task")
    norm = dict(hp.get("norm") or {})
    override = override or {}
    section = "ef" if task in ("ef", "distill") else "seg"
    sec = cfg.get(section) or {}
    size = norm.get("size")
    if (override.get(section) or {}).get("size") is not None:
        size = override[section]["size"]
    out = {"task": task, "model": hp.get("model"), "size": size, "mean": norm.get("mean"), "std": norm.get("std"),
           "length": None, "period": None, "test_clips": None,
           "batch_size": int(batch_size or sec.get("infer_batch") or (16 if section == "ef" else 64))}
    if section == "ef":
        out.update(length=int(sec["length"]), period=int(sec["period"]), test_clips=sec["test_clips"])
    elif "frames" in hp:  # a video segmenter (UniLVSeg): sliding clips
        out.update(length=int(hp["frames"]), period=int(hp.get("period", 1)))
    return out


def warn_preset_deprecated(preset: str | None) -> None:
    """``--preset`` on ``predict``/``evaluate``: accepted for old scripts, but the checkpoint decides.

    One warning per process; the preset is then only the fallback for a
    checkpoint whose ``config.yaml`` cannot be found.
    """
    global _WARNED_PRESET
    if preset is None or _WARNED_PRESET:
        return
    _WARNED_PRESET = True
    warnings.warn("--preset is deprecated for predict and evaluate and is ignored: the inference settings come "
                  "from the checkpoint's own config (the preset is used only when that config.yaml is missing); "
                  "use --config or --set to override them", FutureWarning, stacklevel=2)


_WARNED_PRESET = False
