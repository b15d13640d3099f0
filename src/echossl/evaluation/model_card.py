"""The model card (``README.md``) that ``echossl export`` writes beside ``model.safetensors``.

A shared model is only usable with what it was trained on and how it must be
fed. The card gathers, from the checkpoint and its run folder:

- the task and network, the preset, seeds and labeled fraction;
- the training data: the folder (when known: ``export --data DIR``, or a
  ``data.root`` / ``data_root`` key in the run's config), its videos per split,
  and whether it was simulated: a data folder holding the simulator's
  ``echossl_truth/meta.json``, or a ``simulated: true`` marker in the config
  (top level or under ``data``);
- the metrics of the run's ``metrics.json`` with their 95 % CIs;
- the inference settings (:func:`echossl.evaluation.settings.inference_settings`):
  frame size, clip length, period, test clips, normalisation;
- intended use and limits ("trained on simulated data" where that is so).

The run's ``config.yaml`` and ``metrics.json`` are copied beside the card, so
that ``predict`` and ``evaluate`` on the export folder use the same settings as
on the run.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from echossl.engine.tasks import TASKS

CARD = "README.md"


def _data_summary(data: Path | None) -> tuple[list[str], bool | None]:
    """Lines describing ``data`` and whether it is simulated (None when unknown)."""
    if data is None:
        return ["- Data folder: not recorded in the run (pass `--data DIR` to `echossl export` to describe it)."], None
    lines = [f"- Data folder: `{data}`"]
    filelist = data / "FileList.csv"
    if filelist.is_file():
        import pandas as pd

        try:
            table = pd.read_csv(filelist)
            counts = table["Split"].astype(str).str.upper().value_counts()
            lines.append("- Videos: " + ", ".join(f"{counts.get(s, 0)} {s}" for s in ("TRAIN", "VAL", "TEST"))
                         + f" ({len(table)} in FileList.csv)")
            if "EF" in table:
                ef = pd.to_numeric(table["EF"], errors="coerce").dropna()
                if len(ef):
                    lines.append(f"- EF in FileList.csv: mean {ef.mean():.1f} %, range {ef.min():.1f}-{ef.max():.1f} %")
        except (OSError, ValueError, KeyError):
            lines.append("- FileList.csv could not be read")
    elif any(data.glob("patient*")):
        lines.append(f"- CAMUS layout, {len(list(data.glob('patient*')))} patients")
    meta = data / "echossl_truth" / "meta.json"
    simulated = meta.is_file()
    if simulated:
        try:
            info = json.loads(meta.read_text())
            lines.append(f"- Simulated by `{info.get('generator', 'echossl.simulate')}` "
                         f"(seed {info.get('seed')}, {info.get('videos')} videos at {info.get('size')} px, "
                         f"style {info.get('style')})")
        except ValueError:
            lines.append("- Simulated by echossl (echossl_truth/meta.json)")
    return lines, simulated


def _simulated_marker(cfg: dict) -> bool | None:
    for node in (cfg, cfg.get("data") or {}):
        if isinstance(node, dict) and isinstance(node.get("simulated"), bool):
            return node["simulated"]
    return None


def _data_folder(cfg: dict, data) -> Path | None:
    if data is not None:
        return Path(data)
    for value in ((cfg.get("data") or {}).get("root"), cfg.get("data_root"), cfg.get("data_dir")):
        if isinstance(value, str) and value:
            return Path(value)
    return None


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def _metrics_table(metrics: dict | None) -> list[str]:
    if not metrics:
        return ["No `metrics.json` was found beside the checkpoint; run `echossl evaluate` to measure it."]
    head = f"Split {metrics.get('split', '?')}, n = {metrics.get('n', '?')} (95 % CIs by bootstrap over videos)."
    rows = ["| metric | value | 95 % CI |", "| --- | --- | --- |"]
    for key, value in metrics.items():
        if key in ("task", "split", "n") or key.endswith("_ci95") or not isinstance(value, (int, float)):
            continue
        ci = metrics.get(f"{key}_ci95")
        ci_text = f"{_fmt(ci[0])} to {_fmt(ci[1])}" if isinstance(ci, list) and len(ci) == 2 else ""
        rows.append(f"| {key} | {_fmt(value)} | {ci_text} |")
    return [head, "", *rows]


def model_card(ckpt: dict, cfg: dict, settings: dict, metrics: dict | None, *, data=None,
               export: dict | None = None, config_source: str = "") -> str:
    """The card's Markdown text.

    Args:
        ckpt: the loaded checkpoint (:func:`echossl.engine.load_checkpoint`).
        cfg: its resolved config (:func:`echossl.evaluation.settings.checkpoint_config`).
        settings: :func:`echossl.evaluation.settings.inference_settings` of it.
        metrics: the run's ``metrics.json`` (or None).
        data: the training data folder, when known.
        export: the export's ``config.json`` (tensor count, sha256, version).
        config_source: where ``cfg`` came from; ``"preset ..."`` means it was guessed.
    """
    hp = ckpt.get("hyper_parameters") or {}
    task = str(hp.get("task"))
    folder = _data_folder(cfg, data)
    data_lines, simulated = _data_summary(folder)
    marker = _simulated_marker(cfg)
    simulated = marker if marker is not None else simulated
    s = settings
    clips = s.get("test_clips")
    clip_text = "every clip start" if clips == "all" else f"{clips} evenly spaced clips"
    lines = [
        f"# echossl model: {task} ({hp.get('model')})",
        "",
        f"Exported by echossl {export.get('echossl_version') if export else ''} from `{ckpt.get('path')}`"
        + (f"; {export['tensors']} tensors, {export['parameters']:,} values, sha256 `{export['sha256']}`."
           if export else "."),
        "",
        "## Task",
        "",
        TASKS[task].description if task in TASKS else f"Checkpoint task `{task}`.",
        "",
        f"- Network: `{hp.get('model')}`" + (f", {hp.get('in_channels')} input channels" if hp.get("in_channels") else ""),
        f"- Preset: `{cfg.get('preset', 'unknown')}` (the resolved settings are in `config.yaml`)",
        f"- Seeds: training `{cfg.get('seed')}`, labeled subset `{cfg.get('split_seed', 0)}`; "
        f"labeled fraction {cfg.get('labeled_fraction')}",
        "",
        "## Training data",
        "",
        *data_lines,
        "",
        "## Metrics",
        "",
        *_metrics_table(metrics),
        "",
        "## Inference settings",
        "",
        "`echossl predict` and `echossl evaluate` read these from this folder; feed the model nothing else.",
        "",
        *([f"**The checkpoint came without its run's config.yaml: clip settings below are the {config_source}'s "
           "defaults, not necessarily the training run's.**", ""] if config_source.startswith("preset") else []),
        f"- Frame size: {s.get('size') or 'native (no resize)'} px (frames are resized to a square, bilinear)",
    ]
    if s.get("length"):
        lines += [f"- Clip length: {s['length']} frames, period {s['period']} (every {s['period']}th frame)"]
    if clips is not None:
        lines += [f"- Test clips: {clip_text}, EF averaged over them"]
    lines += [
        f"- Normalisation: (RGB uint8 - mean) / std, mean {[round(float(v), 3) for v in s.get('mean') or []]}, "
        f"std {[round(float(v), 3) for v in s.get('std') or []]}",
        "",
        "```bash",
        "echossl predict --checkpoint THIS_FOLDER VIDEOS_OR_DICOM_FOLDER --out predictions.csv",
        "echossl evaluate --checkpoint THIS_FOLDER --data ECHONET_FOLDER --out metrics.json",
        "```",
        "",
        "## Intended use",
        "",
        "Research on label-efficient echocardiography analysis: apical four-chamber cine loops in the "
        "EchoNet-Dynamic format (or DICOM converted by `echossl convert dicom`). It is not a medical device "
        "and must not be used for diagnosis or treatment decisions.",
        "",
        "## Limits",
        "",
    ]
    if simulated:
        lines.append("- **Trained on simulated data** (the echossl simulator): its accuracy on real patients "
                     "is unknown; measure it on your own data with `echossl evaluate` before any use.")
    elif simulated is None:
        lines.append("- Whether the training data were real or simulated was not recorded.")
    lines += [
        f"- Trained with {cfg.get('labeled_fraction')} of the training videos labeled.",
        "- Views, frame rates, scanners and populations unlike the training data may give wrong values; "
        "the metrics above hold only for data like the test split.",
        "- EF from a single apical view (method of disks, single plane) differs from biplane clinical EF.",
        "",
        "## Files",
        "",
        "- `model.safetensors`: the weights (no pickle); `config.json`: task, hyper-parameters, sha256",
        "- `config.yaml`: the run's resolved settings; `metrics.json`: the run's TEST metrics",
        "",
    ]
    return "\n".join(lines)


def write_model_card(ckpt: dict, out_dir, *, export: dict | None = None, data=None) -> Path:
    """Write ``out_dir/README.md`` and copy the run's ``config.yaml`` and ``metrics.json`` beside it.

    Returns:
        The card's path.
    """
    import warnings

    from echossl.evaluation.settings import checkpoint_config, inference_settings, run_config_path
    from echossl.io import atomic_write_bytes, atomic_write_text

    out_dir = Path(out_dir)
    source = run_config_path(ckpt)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a bare checkpoint: the card says the preset's settings
        cfg, config_source = checkpoint_config(ckpt)
    settings = inference_settings(ckpt, cfg)
    metrics = None
    if source is not None:
        metrics_path = source.with_name("metrics.json")
        if metrics_path.is_file():
            try:
                metrics = json.loads(metrics_path.read_text())
            except ValueError:
                metrics = None
            if metrics_path.resolve() != (out_dir / "metrics.json").resolve():
                atomic_write_bytes(out_dir / "metrics.json", metrics_path.read_bytes())
        if source.resolve() != (out_dir / "config.yaml").resolve():
            atomic_write_bytes(out_dir / "config.yaml", source.read_bytes())
    elif ckpt.get("echossl_config") or (ckpt.get("hyper_parameters") or {}).get("config"):
        atomic_write_text(out_dir / "config.yaml", yaml.safe_dump(cfg, sort_keys=False))
    path = out_dir / CARD
    atomic_write_text(path, model_card(ckpt, cfg, settings, metrics, data=data, export=export,
                                          config_source=config_source))
    return path
