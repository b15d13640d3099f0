"""``echossl report``: one self-contained HTML report for any run folder, or several side by side.

A *run folder* is anything echossl writes: a training or pre-training run
(``config.yaml``, ``checkpoints/``, ``logs/``, ``metrics.json``), an evaluation
output folder (``metrics.json`` with ``predictions.csv``), or a ``demo`` /
``reproduce`` output folder (``results.json`` and the run folders under it).
What the report shows depends on what the folder holds:

- every run: provenance (echossl version and git commit, preset, seed, split
  seed, labeled fraction, the data folder, a link to ``config.yaml``) and the
  metrics with their 95 % intervals under readable names (:data:`LABELS`);
- EF runs (``task`` ef or distill, or a predictions file with true and predicted
  EF): scatter of predicted against actual EF, Bland–Altman with the bias and both
  limits of agreement, ROC curves with AUC for detecting EF below 35/40/45/50 %,
  and the videos with the largest errors;
- segmentation runs (``seg``, ``video-seg``): per traced ED/ES frame the Dice,
  Hausdorff 95 and mean surface distance (MONAI), in pixels and in mm when the
  pixel spacing is known; an LV-area curve with its ED/ES picks; overlays of the
  best, median and worst video;
- runs with logs (pre-training above all): the loss curves from ``logs/csv``,
  the collapse monitors of ``metrics.json["collapse"]``, and for a results
  folder its comparison rows and its claims with their verdicts;
- several runs: a side-by-side table and paired differences on the items they
  share (bootstrapped over videos).

Every figure is also written as PNG and SVG to ``figures/`` beside the report.
This module reads files only; it imports nothing from ``pipelines``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from echossl.errors import EchosslError
from echossl.evaluation import plots
from echossl.evaluation.report import Section, fraction_label, write_report
from echossl.engine.tasks import tasks_of_kind
from echossl.io import atomic_write_bytes

__all__ = ["LABELS", "RunInfo", "load_run", "metric_label", "write_run_report", "surface_metrics",
           "read_predictions", "git_commit"]

EF_TASKS = tasks_of_kind("ef")
SEG_TASKS = tasks_of_kind("seg")
EF_THRESHOLDS = (35, 40, 45, 50)
WORST_ROWS = 10
OVERLAYS = 3

# metrics.json key -> the header a reader sees; units in brackets
LABELS = {
    "mae": "MAE (EF %)", "rmse": "RMSE (EF %)", "r2": "R² (fraction of variance)",
    "dice": "Dice, ED and ES pooled", "dice_ed": "Dice at ED", "dice_es": "Dice at ES",
    "dice_unlabeled": "Dice on untraced frames", "dice_frame_mean": "Dice, mean per frame",
    "dice_lv_endo": "Dice LV endocardium", "dice_lv_epi": "Dice LV epicardium", "dice_la": "Dice left atrium",
    "accuracy": "Accuracy", "balanced_accuracy": "Balanced accuracy", "precision": "Precision",
    "recall": "Recall (sensitivity)", "f1": "F1", "auc": "AUC",
    "kl": "KL divergence (lower is better)", "nss": "NSS", "cc": "Correlation coefficient (CC)",
    "sim": "Similarity (SIM)",
    "hf_power": "High-frequency power of the LV-area curve", "hf_power_truth": "High-frequency power, true curve",
    "hf_cutoff": "High-frequency cut-off (× Nyquist)",
    "ef_mae": "MAE of EF from segmentation (EF %)", "ef_mae_truth": "MAE of EF from true masks (EF %)",
    "mse": "Reconstruction MSE", "mse_masked": "Reconstruction MSE, hidden frames",
    "mse_visible": "Reconstruction MSE, visible frames", "mask_ratio": "Masked share of frames",
    "params_m": "Parameters (millions)", "gflops_per_frame": "GFLOPs per frame", "gflops": "GFLOPs",
    "probe_balanced_accuracy": "Linear probe balanced accuracy", "probe_f1": "Linear probe F1",
    "probe_mae": "Linear probe MAE (EF %)", "probe_rmse": "Linear probe RMSE (EF %)",
    "finetune_mae": "Fine-tuned MAE (EF %)", "finetune_rmse": "Fine-tuned RMSE (EF %)",
    "mae_good": "MAE, good image quality (EF %)", "mae_medium": "MAE, medium image quality (EF %)",
    "mae_poor": "MAE, poor image quality (EF %)", "n_good": "Scans of good quality",
    "n_medium": "Scans of medium quality", "n_poor": "Scans of poor quality",
    "attention_dice": "Attention Dice (SmoothGrad top 5 % vs LV)", "peak_precision_within2": "Peak precision (±2 frames)",
    "train_mem_mb": "Training memory (MB)", "pretrain_seconds": "Pre-training time (s)",
    "labeled_fraction": "Labeled fraction", "labeled_videos": "Labeled videos", "method": "Method",
    "init": "Initialisation", "n": "Items", "n_test": "TEST items", "arch": "Architecture",
    "frames": "Frames per clip", "period": "Frame period",
    "hd95_px": "Hausdorff 95 (pixels)", "hd95_mm": "Hausdorff 95 (mm)",
    "msd_px": "Mean surface distance (pixels)", "msd_mm": "Mean surface distance (mm)",
    "video_target_entropy_ratio": "Video target entropy ÷ ln K", "image_target_entropy_ratio": "Image target entropy ÷ ln K",
    "video_batch_entropy_ratio": "Video batch entropy ÷ ln K", "image_batch_entropy_ratio": "Image batch entropy ÷ ln K",
    "embedding_std": "Embedding standard deviation",
}
_HIDDEN = {"task", "split", "n"}


def metric_label(key: str) -> str:
    """The readable header of a metrics.json key ("mae" -> "MAE (EF %)"); unknown keys are spelled out."""
    key = str(key)
    if key in LABELS:
        return LABELS[key]
    if key.endswith("_ci95"):
        return f"{metric_label(key[:-5])}, 95 % CI"
    text = key.replace("_", " ").strip()
    return text[:1].upper() + text[1:]


# --------------------------------------------------------------------------- #
# reading a run folder
# --------------------------------------------------------------------------- #

@dataclass
class RunInfo:
    """What one folder holds (missing parts are None)."""

    path: Path
    label: str
    metrics: dict = field(default_factory=dict)
    config: dict | None = None
    results: dict | None = None
    predictions: pd.DataFrame | None = None  # FileName, true, pred
    data: Path | None = None
    children: list = field(default_factory=list)
    per_item: dict = field(default_factory=dict)  # metric -> {item: value}, filled by the analyses

    @property
    def task(self) -> str | None:
        return self.metrics.get("task")

    @property
    def is_ef(self) -> bool:
        return self.task in EF_TASKS or (self.task is None and self.predictions is not None)

    @property
    def is_seg(self) -> bool:
        return self.task in SEG_TASKS


def _read_json(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise EchosslError(f"{path} is not valid JSON ({err})") from None
    return value if isinstance(value, dict) else None


def _read_yaml(path: Path) -> dict | None:
    if not path.is_file():
        return None
    import yaml

    try:
        value = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise EchosslError(f"{path} is not valid YAML ({err})") from None
    return value if isinstance(value, dict) else None


_TRUE = ("ef_true", "true_ef", "ef_actual", "actual_ef", "true", "actual", "y_true", "target")
_PRED = ("ef_pred", "pred_ef", "ef_predicted", "predicted_ef", "pred", "predicted", "prediction", "y_pred")


def read_predictions(run: str | Path) -> pd.DataFrame | None:
    """Per-video true and predicted EF of a run: ``FileName, true, pred`` (None when absent).

    Reads ``predictions.csv`` (a FileName column and one column each for the true and
    the predicted value, matched case-insensitively by name, e.g. ``EF_True``/``EF_Pred``
    or ``EF``/``EF_Pred``) or else ``predictions.npz`` (``filenames``, ``ef_true``,
    ``ef_pred``, as the EF pipelines write).
    """
    run = Path(run)
    csv = run / "predictions.csv"
    if csv.is_file():
        try:
            table = pd.read_csv(csv)
        except (OSError, ValueError) as err:
            raise EchosslError(f"{csv} cannot be read as CSV ({err})") from None
        cols = {c.lower().replace(" ", "_"): c for c in table.columns}
        name = cols.get("filename")
        true = next((cols[k] for k in _TRUE if k in cols), None)
        pred = next((cols[k] for k in _PRED if k in cols), None)
        if true is None and pred is not None and "ef" in cols and cols["ef"] != pred:
            true = cols["ef"]
        if name and true and pred:
            out = pd.DataFrame({"FileName": table[name].astype(str),
                                "true": pd.to_numeric(table[true], errors="coerce"),
                                "pred": pd.to_numeric(table[pred], errors="coerce")})
            return out.dropna(subset=["true", "pred"]).reset_index(drop=True)
    npz = run / "predictions.npz"
    if npz.is_file():
        try:
            with np.load(npz, allow_pickle=False) as p:
                if {"ef_true", "ef_pred"} <= set(p.files):
                    names = p["filenames"].astype(str) if "filenames" in p.files else np.arange(len(p["ef_true"])).astype(str)
                    return pd.DataFrame({"FileName": names, "true": p["ef_true"].astype(float),
                                         "pred": p["ef_pred"].astype(float)})
        except (OSError, ValueError) as err:
            raise EchosslError(f"{npz} cannot be read ({err})") from None
    return None


def _data_folder(run: Path, cfg: dict | None, results: dict | None, explicit) -> Path | None:
    """The data folder: the one given, else one recorded by the run (config or results.json)."""
    candidates = [explicit]
    if cfg:
        data = cfg.get("data")
        candidates += [cfg.get("data_root"), cfg.get("data_dir"), data.get("root") if isinstance(data, dict) else data]
    for folder in (run, run.parent, run.parent.parent):
        res = results if folder == run else _read_json(folder / "results.json")
        if res:
            candidates.append(res.get("data"))
    for c in candidates:
        if isinstance(c, (str, Path)) and str(c) and Path(c).is_dir():
            return Path(c)
    return None


def load_run(path: str | Path, data=None, *, label: str | None = None, _depth: int = 0) -> RunInfo:
    """Read one run, evaluation or results folder (or a ``metrics.json`` inside one).

    Raises:
        EchosslError: the path is missing or holds none of metrics.json, results.json.
    """
    path = Path(path)
    if path.is_file() and path.name in ("metrics.json", "results.json"):
        path = path.parent
    if not path.is_dir():
        raise EchosslError(f"run folder {path} does not exist")
    metrics = _read_json(path / "metrics.json") or {}
    results = _read_json(path / "results.json")
    if not metrics and results is None:
        raise EchosslError(f"{path} holds neither metrics.json nor results.json, so it is no echossl run folder")
    cfg = _read_yaml(path / "config.yaml")
    info = RunInfo(path=path, label=label or path.name, metrics=metrics, config=cfg, results=results,
                   predictions=read_predictions(path))
    info.data = _data_folder(path, cfg, results, data)
    if results is not None and _depth == 0:
        subs = sorted({p.parent for p in path.glob("*/metrics.json")} | {p.parent for p in path.glob("runs/*/metrics.json")})
        info.children = [load_run(p, data or info.data, label=p.name, _depth=1) for p in subs if p != path]
    return info


# --------------------------------------------------------------------------- #
# provenance
# --------------------------------------------------------------------------- #

def git_commit(path: str | Path | None = None) -> str | None:
    """The commit of the echossl source tree (``git rev-parse HEAD``), or None when echossl is not run
    from a git checkout of its own (an installed wheel) or git is missing."""
    here = Path(path) if path else Path(__file__).resolve().parent
    try:
        top = subprocess.run(["git", "-C", str(here), "rev-parse", "--show-toplevel"], capture_output=True,
                             text=True, timeout=5)
        if top.returncode != 0 or not (Path(top.stdout.strip()) / "src" / "echossl").is_dir():
            return None  # another project's repository that happens to contain the install
        head = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + (" (with uncommitted changes)" if dirty.returncode == 0 and dirty.stdout.strip() else "")


def data_summary(root: Path | None) -> str:
    """One line about a data folder: videos per split and EF spread, CAMUS patients, or a file count."""
    if root is None:
        return "not recorded (pass --data DIR)"
    root = Path(root)
    filelist = root / "FileList.csv"
    if filelist.is_file():
        try:
            table = pd.read_csv(filelist)
        except (OSError, ValueError):
            return f"{root}: FileList.csv cannot be read"
        parts = [f"{root}: EchoNet-Dynamic layout, {len(table)} videos"]
        if "Split" in table:
            counts = table["Split"].astype(str).str.upper().value_counts()
            parts.append(", ".join(f"{s} {int(counts.get(s, 0))}" for s in ("TRAIN", "VAL", "TEST")))
        if "EF" in table:
            ef = pd.to_numeric(table["EF"], errors="coerce").dropna()
            if len(ef):
                parts.append(f"EF {ef.mean():.1f} ± {ef.std(ddof=1) if len(ef) > 1 else 0:.1f} % (mean ± SD)")
        if (root / "echossl_truth").is_dir():
            parts.append("simulated (echossl_truth/ present)")
        return "; ".join(parts)
    patients = [p for p in root.glob("patient*") if p.is_dir()] or [p for p in root.glob("*/patient*") if p.is_dir()]
    if patients:
        return f"{root}: CAMUS layout, {len(patients)} patients"
    n = sum(1 for p in root.rglob("*") if p.is_file())
    return f"{root}: {n} files"


def _relative(target: Path, out_dir: Path) -> str:
    return os.path.relpath(Path(target).resolve(), Path(out_dir).resolve()).replace(os.sep, "/")


def _provenance(run: RunInfo, out_dir: Path, version: str, commit: str | None) -> Section:
    cfg = run.config or {}
    res = run.results or {}
    m = run.metrics
    lf = cfg.get("labeled_fraction", res.get("labeled_fraction"))
    rows = [
        ("Run folder", str(run.path)),
        ("Task", m.get("task") or ("results of a comparison" if run.results is not None else None)),
        ("Evaluated split", m.get("split") or res.get("split")),
        ("Items evaluated", m.get("n") if m.get("n") is not None else res.get("n_test", res.get("n"))),
        ("echossl version (this report)", version),
        ("echossl version (run)", cfg.get("echossl_version") or cfg.get("version")),
        ("git commit (this report)", commit),
        ("git commit (run)", cfg.get("git_commit") or cfg.get("commit")),
        ("Preset", cfg.get("preset", res.get("preset"))),
        ("Seed (training)", cfg.get("seed", res.get("seed"))),
        ("Split seed (labeled subset)", cfg.get("split_seed", 0 if cfg else None)),
        ("Labeled fraction", None if lf is None else f"{fraction_label(lf)} ({float(lf):.4g})"),
        ("Data folder", data_summary(run.data)),
    ]
    section = Section(f"Provenance: {run.label}", level=2,
                      tables=[("Versions, settings and data", [{"Field": k, "Value": v} for k, v in rows if v is not None])])
    if (run.path / "config.yaml").is_file():
        section.links.append(("config.yaml (the resolved settings)", _relative(run.path / "config.yaml", out_dir)))
    else:
        section.notes.append("This folder has no config.yaml (an evaluation or results folder).")
    return section


# --------------------------------------------------------------------------- #
# metrics
# --------------------------------------------------------------------------- #

def _ci(value) -> list | None:
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, (int, float)) or v is None for v in value):
        return list(value)
    return None


def metric_rows(metrics: dict) -> list[dict]:
    """``{"Metric", "Value", "95 % CI"}`` rows of a flat metrics dict (CI lists merged into their metric)."""
    rows = []
    for key, value in metrics.items():
        if key in _HIDDEN or key.endswith("_ci95") or isinstance(value, (dict, list)):
            continue
        row = {"Metric": metric_label(key), "Value": value}
        ci = _ci(metrics.get(f"{key}_ci95"))
        if ci is not None:
            row["95 % CI"] = ci
        rows.append(row)
    return rows


class _Figures:
    """Collects figures for the HTML and writes each as PNG and SVG to ``figures/``."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.count = 0
        self.written: list[Path] = []
        self.extra: tuple = ()

    def _stem(self, caption: str) -> str:
        self.count += 1
        slug = re.sub(r"[^A-Za-z0-9]+", "-", caption).strip("-").lower()[:60] or "figure"
        return f"{self.count:02d}_{slug}"

    def add(self, caption: str, fn, *args, **kwargs) -> tuple[str, bytes]:
        """Draw ``fn(*args, fmt=...)`` as PNG and SVG; returns ``(caption, png)`` for the report."""
        png = fn(*args, fmt="png", **kwargs)
        svg = fn(*args, fmt="svg", **kwargs)
        self.extra = png[1:] if isinstance(png, tuple) else ()  # e.g. the AUC rows of roc_curves
        png, svg = (png[0], svg[0]) if isinstance(png, tuple) else (png, svg)
        stem = self._stem(caption)
        for data, ext in ((png, "png"), (svg, "svg")):
            atomic_write_bytes(self.folder / f"{stem}.{ext}", data)
            self.written.append(self.folder / f"{stem}.{ext}")
        return caption, png

    def add_png(self, caption: str, png: bytes) -> tuple[str, bytes]:
        """A figure that exists only as PNG (e.g. handed over by ``demo``)."""
        path = self.folder / f"{self._stem(caption)}.png"
        atomic_write_bytes(path, bytes(png))
        self.written.append(path)
        return caption, bytes(png)


# --------------------------------------------------------------------------- #
# EF runs
# --------------------------------------------------------------------------- #

def _ef_section(run: RunInfo, figs: _Figures) -> Section:
    sec = Section(f"Ejection fraction: {run.label}", figures_first=True)
    p = run.predictions
    if p is None or not len(p):
        sec.notes.append("No per-video predictions (predictions.csv or predictions.npz) in this folder; "
                         "`echossl evaluate --out DIR/metrics.json` writes them.")
        return sec
    true, pred = p["true"].to_numpy(float), p["pred"].to_numpy(float)
    err = pred - true
    run.per_item["abs_error"] = dict(zip(p["FileName"], np.abs(err)))
    ba = plots.agreement(true, pred)
    sec.paragraphs.append(f"{len(p)} videos. Bias (predicted − actual) {ba['bias']:+.2f} EF points, limits of "
                          f"agreement {ba['loa_low']:+.2f} to {ba['loa_high']:+.2f} (bias ± 1.96 SD).")
    sec.figures.append(figs.add(f"{run.label}: predicted vs actual EF", plots.scatter_pred_true, true, pred, run.label))
    sec.figures.append(figs.add(f"{run.label}: Bland-Altman", plots.bland_altman, true, pred, run.label))
    caption = f"{run.label}: ROC for EF below " + "/".join(str(t) for t in EF_THRESHOLDS) + " %"
    sec.figures.append(figs.add(caption, plots.roc_curves, true, pred, EF_THRESHOLDS, run.label))
    roc_rows = figs.extra[0]
    sec.tables.append(("Detection of reduced EF (score: lower predicted EF)", [
        {"Condition": f"EF < {r['threshold']:g} %", "Videos with it": r["positives"], "Videos without": r["negatives"],
         "AUC": r["auc"] if r["auc"] is not None else "n/a (one class only)"} for r in roc_rows]))
    order = np.argsort(-np.abs(err), kind="stable")[:WORST_ROWS]
    sec.tables.append((f"The {len(order)} videos with the largest errors", [
        {"FileName": p["FileName"].iloc[i], "Actual EF (%)": true[i], "Predicted EF (%)": pred[i],
         "Error (predicted − actual)": err[i]} for i in order]))
    return sec


# --------------------------------------------------------------------------- #
# segmentation runs
# --------------------------------------------------------------------------- #

def surface_metrics(pred, truth, spacing=None) -> dict[str, np.ndarray]:
    """Hausdorff 95 and symmetric mean surface distance of ``(B, H, W)`` bool masks (MONAI).

    Args:
        pred, truth: ``(B, H, W)`` boolean masks.
        spacing: None (distances in pixels) or ``(B, 2)`` row/column pixel sizes in mm.

    Returns:
        ``{"hd95": (B,), "msd": (B,)}`` float arrays; NaN where either mask is empty.
    """
    import warnings

    import torch
    from monai.metrics import compute_average_surface_distance, compute_hausdorff_distance

    pred = torch.as_tensor(np.asarray(pred, dtype=bool))[:, None].float()
    truth = torch.as_tensor(np.asarray(truth, dtype=bool))[:, None].float()
    kw = {} if spacing is None else {"spacing": [tuple(map(float, s)) for s in np.asarray(spacing).reshape(-1, 2)]}
    with warnings.catch_warnings():  # MONAI warns for every empty mask; those become NaN below
        warnings.simplefilter("ignore")
        hd = compute_hausdorff_distance(pred, truth, include_background=True, percentile=95, **kw)
        msd = compute_average_surface_distance(pred, truth, include_background=True, symmetric=True, **kw)
    out = {"hd95": hd.reshape(-1).double().numpy(), "msd": msd.reshape(-1).double().numpy()}
    empty = ~(pred.flatten(1).any(1) & truth.flatten(1).any(1)).numpy()
    for v in out.values():
        v[empty | ~np.isfinite(v)] = np.nan
    return out


def pixel_spacing_mm(root: Path | None, names) -> dict[str, tuple[float, float]]:
    """``{FileName: (row, column) mm per pixel}`` from ``Spacing.csv`` (``convert dicom``: cm per pixel
    in x and y) or the simulator's ``echossl_truth/meta.json``; empty when unknown."""
    if root is None:
        return {}
    spacing_csv = Path(root) / "Spacing.csv"
    if spacing_csv.is_file():
        try:
            table = pd.read_csv(spacing_csv)
        except (OSError, ValueError):
            return {}
        cols = {c.lower(): c for c in table.columns}
        name = cols.get("filename")
        x = next((c for k, c in cols.items() if k != "filename" and "x" in k), None)
        y = next((c for k, c in cols.items() if k != "filename" and "y" in k), None)
        if name and x and y:
            table[name] = table[name].astype(str).str.replace(r"\.avi$", "", regex=True)
            return {str(r[name]): (10.0 * float(r[y]), 10.0 * float(r[x])) for _, r in table.iterrows()
                    if np.isfinite(float(r[x])) and np.isfinite(float(r[y]))}
    meta = _read_json(Path(root) / "echossl_truth" / "meta.json") or {}
    cm = meta.get("pixel_spacing_cm")
    if isinstance(cm, (int, float)) and cm > 0:
        return {n: (10.0 * cm, 10.0 * cm) for n in names}
    return {}


def _masks_dir(run: RunInfo) -> Path | None:
    split = str(run.metrics.get("split") or "TEST").lower()
    for name in (f"masks_{split}", "eval_masks", "masks"):
        if (run.path / name).is_dir() and any((run.path / name).glob("*.npy")):
            return run.path / name
    return None


def _split_names(root: Path, split: str) -> list[str]:
    table = pd.read_csv(root / "FileList.csv")
    table["FileName"] = table["FileName"].astype(str).str.replace(r"\.avi$", "", regex=True)
    if split.upper() not in ("ALL", "") and "Split" in table:
        table = table[table["Split"].astype(str).str.upper() == split.upper()]
    return sorted(table["FileName"])


def _seg_section(run: RunInfo, figs: _Figures, max_videos: int | None) -> Section:
    from echossl.evaluation.beats import segmentation_ef
    from echossl.evaluation.metrics import dice, mean_ci

    sec = Section(f"Segmentation: {run.label}", figures_first=True)
    masks = _masks_dir(run)
    if masks is None:
        sec.notes.append("No predicted masks (masks/, masks_<split>/ or eval_masks/) in this folder.")
        return sec
    root = run.data
    if root is None or not (root / "VolumeTracings.csv").is_file():
        sec.notes.append("The data folder (with VolumeTracings.csv) is not known, so Dice and surface distances "
                         "per video are not computed here; pass --data DIR.")
        names = sorted(p.stem for p in masks.glob("*.npy"))[:1]
        traces = {}
    else:
        from echossl.data.echonet import ed_es_frames, read_tracings

        traces = read_tracings(root)
        split = str(run.metrics.get("split") or "TEST")
        names = [n for n in _split_names(root, split) if (masks / f"{n}.npy").is_file() and len(traces.get(n, {})) >= 2]
        if max_videos:
            names = names[:max_videos]
    spacing = pixel_spacing_mm(root, names)
    fps = {}
    if root is not None and (root / "FileList.csv").is_file():
        table = pd.read_csv(root / "FileList.csv")
        if "FPS" in table:
            fps = dict(zip(table["FileName"].astype(str).str.replace(r"\.avi$", "", regex=True),
                           pd.to_numeric(table["FPS"], errors="coerce")))
    rows, preds, truths, spac, keys = [], [], [], [], []
    if traces:
        from echossl.data.echonet import trace_mask

        for name in names:
            pred = np.load(masks / f"{name}.npy", mmap_mode="r")
            h, w = pred.shape[1:]
            ed, es = ed_es_frames(traces[name], (h, w))
            for phase, frame in (("ED", ed), ("ES", es)):
                if frame >= len(pred):
                    continue
                p_mask = np.asarray(pred[frame]) >= 128
                t_mask = trace_mask(traces[name][frame], h, w)
                preds.append(p_mask)
                truths.append(t_mask)
                spac.append(spacing.get(name, (1.0, 1.0)))
                keys.append((name, phase, frame))
                rows.append({"FileName": name, "Phase": phase, "Frame": frame, "Dice": float(dice(p_mask, t_mask))})
    if rows:
        px = surface_metrics(np.stack(preds), np.stack(truths))
        mm = surface_metrics(np.stack(preds), np.stack(truths), np.asarray(spac)) if spacing else None
        for i, row in enumerate(rows):
            row["HD95 (px)"], row["MSD (px)"] = px["hd95"][i], px["msd"][i]
            if mm is not None:
                row["HD95 (mm)"], row["MSD (mm)"] = mm["hd95"][i], mm["msd"][i]
        summary = []
        for key, label in (("Dice", "dice_frames"), ("HD95 (px)", "hd95_px"), ("MSD (px)", "msd_px"),
                           ("HD95 (mm)", "hd95_mm"), ("MSD (mm)", "msd_mm")):
            vals = np.array([r.get(key, np.nan) for r in rows], dtype=float)
            if np.isfinite(vals).any():
                summary.append({"Measure": "Dice, mean per traced frame" if key == "Dice" else metric_label(label),
                                "Mean": float(np.nanmean(vals)), "95 % CI": mean_ci(vals),
                                "Frames": int(np.isfinite(vals).sum())})
        sec.tables.append((f"Traced ED and ES frames of {len(names)} {run.metrics.get('split') or 'TEST'} videos "
                           "(surface distances by MONAI)", summary))
        per_video: dict[str, list] = {}
        for r in rows:
            per_video.setdefault(r["FileName"], []).append(r["Dice"])
        run.per_item["dice"] = {k: float(np.mean(v)) for k, v in per_video.items()}
        worst = sorted(rows, key=lambda r: r["Dice"])[:WORST_ROWS]
        sec.tables.append((f"The {len(worst)} frames with the lowest Dice", worst))
        if not spacing:
            sec.notes.append("Pixel spacing unknown (no Spacing.csv and no simulator metadata): distances in pixels only.")
    # LV-area curve of the worst video (or the first one) with the ED/ES picks of the beat finder
    by_dice = sorted(run.per_item.get("dice", {}).items(), key=lambda kv: kv[1])
    picks = [by_dice[0][0]] if by_dice else names[:1]
    for name in picks:
        probs = np.load(masks / f"{name}.npy")
        rate = fps.get(name)
        rate = float(rate) if rate is not None and np.isfinite(rate) and rate > 0 else None
        beats = segmentation_ef(probs >= 128, fps=rate)
        area, unit = beats["area"], "LV area (pixels)"
        if name in spacing:
            sy, sx = spacing[name]
            area, unit = area * sy * sx / 100.0, "LV area (cm²)"
        sec.figures.append(figs.add(f"{run.label}: LV area of {name} with ED/ES picks", plots.area_curve, area,
                                    beats["ed_frames"], beats["es_frames"], name, ylabel=unit, fps=rate))
    # overlays: best, median and worst video at ED
    if by_dice and root is not None:
        from echossl.data.video import read_video

        chosen = list(dict.fromkeys([by_dice[-1][0], by_dice[len(by_dice) // 2][0], by_dice[0][0]]))[:OVERLAYS]
        for tag, name in zip(("best", "median", "worst"), chosen):
            k = next((i for i, key in enumerate(keys) if key[0] == name and key[1] == "ED"), None)
            video = root / "Videos" / f"{name}.avi"
            if k is None or not video.is_file():
                continue
            frames = read_video(video)
            frame = frames[min(keys[k][2], len(frames) - 1)]
            sec.figures.append(figs.add(f"{run.label}: {tag} video {name}, ED frame (Dice {run.per_item['dice'][name]:.2f})",
                                        plots.mask_overlay, frame, preds[k], truths[k], f"{name} ({tag})"))
    return sec


# --------------------------------------------------------------------------- #
# logs, collapse monitors, results.json
# --------------------------------------------------------------------------- #

def read_log(run: Path) -> pd.DataFrame | None:
    """``logs/csv/metrics.csv`` (Lightning's CSV logger), or None."""
    for path in (run / "logs" / "csv" / "metrics.csv", *sorted((run / "logs").glob("*/metrics.csv"))):
        if path.is_file():
            try:
                return pd.read_csv(path)
            except (OSError, ValueError, pd.errors.EmptyDataError):
                return None
    return None


_MONITOR = re.compile(r"entropy|collapse|embedding_std|_std$", re.I)


def _log_section(run: RunInfo, figs: _Figures) -> Section | None:
    log = read_log(run.path)
    collapse = run.metrics.get("collapse") if isinstance(run.metrics.get("collapse"), dict) else None
    if log is None and not collapse:
        return None
    sec = Section(f"Training curves: {run.label}")
    if log is not None and "step" in log:
        x = pd.to_numeric(log["step"], errors="coerce")
        losses = {c: (x, pd.to_numeric(log[c], errors="coerce")) for c in log.columns
                  if "loss" in c.lower() and c not in ("epoch", "step")}
        train = {c: v for c, v in losses.items() if not c.lower().startswith("val")}
        if train:
            sec.figures.append(figs.add(f"{run.label}: training loss", plots.loss_curves, train, run.label))
        val = {c: v for c, v in losses.items() if c.lower().startswith("val")}
        val.update({c: (x, pd.to_numeric(log[c], errors="coerce")) for c in log.columns
                    if c.lower().startswith("val") and c not in val})
        val = {c: v for c, v in val.items() if np.isfinite(v[1].to_numpy(float)).any()}
        if val:
            sec.figures.append(figs.add(f"{run.label}: validation", plots.loss_curves, val, run.label,
                                        ylabel="value"))
        monitors = {c: (x, pd.to_numeric(log[c], errors="coerce")) for c in log.columns
                    if _MONITOR.search(c) and "loss" not in c.lower()}
        monitors = {c: v for c, v in monitors.items() if np.isfinite(v[1].to_numpy(float)).any()}
        if monitors:
            sec.figures.append(figs.add(f"{run.label}: collapse monitors during training", plots.loss_curves,
                                        monitors, run.label, ylabel="monitor"))
    if collapse:
        rows = []
        for key, value in collapse.items():
            meaning = ("1 = codes spread over all K prototypes; near 0 = collapse onto few" if "entropy_ratio" in key
                       else "near 0 = every input maps to the same embedding" if "std" in key else "")
            rows.append({"Monitor": metric_label(key), "Value": value, "Reading": meaning})
        sec.tables.append(("Collapse monitors (metrics.json)", rows))
    return sec if (sec.figures or sec.tables) else None


def _results_section(run: RunInfo) -> Section | None:
    res = run.results
    if res is None:
        return None
    sec = Section(f"Comparison: {run.label}")
    if isinstance(res.get("rows"), list) and res["rows"]:
        rows = []
        for r in res["rows"]:
            if not isinstance(r, dict):
                continue
            row = {}
            for k, v in r.items():
                if k.endswith("_ci95") or isinstance(v, dict) or k in ("run", "key", "task", "split"):
                    continue
                ci = _ci(r.get(f"{k}_ci95"))
                row[metric_label(k)] = _with_ci(v, ci) if ci else v
            rows.append(row)
        sec.tables.append((f"Rows of results.json ({res.get('split', 'TEST')} split)", rows))
    claims = res.get("claims")
    if isinstance(claims, list) and claims:
        sec.tables.append((f"Claims and verdicts (paired on {res.get('n_test', '?')} TEST items)", [
            {"Claim": c.get("claim"), "Difference": c.get("difference"), "95 % CI": _ci(c.get("ci95")),
             "Verdict": c.get("verdict")} for c in claims if isinstance(c, dict)]))
    for key in ("targets", "target"):
        if isinstance(res.get(key), dict) and res[key]:
            sec.tables.append(("Targets", [{"Target": k.replace("_", " "), "Met": v if not isinstance(v, dict) else
                                            v.get("met"), "Value": v.get("value") if isinstance(v, dict) else None}
                                           for k, v in res[key].items()]))
    if res.get("seconds") is not None:
        sec.paragraphs.append(f"The comparison took {float(res['seconds']):.0f} s.")
    return sec if sec.tables else None


def _with_ci(value, ci) -> str:
    from echossl.evaluation.report import _cell

    return f"{_cell(value)} [{_cell(ci[0])}, {_cell(ci[1])}]"


# --------------------------------------------------------------------------- #
# several runs
# --------------------------------------------------------------------------- #

_STATS = "paired bootstrap (stats.paired_bootstrap, 10 000 resamples)"


def _paired(a: np.ndarray, b: np.ndarray) -> tuple[float, list | None, str]:
    """Mean of ``b − a`` and its 95 % paired-bootstrap interval over items."""
    try:
        from echossl.evaluation.stats import paired_bootstrap  # written by the statistics work
    except ImportError:
        paired_bootstrap = None
    diff = b - a
    if paired_bootstrap is not None:
        try:
            res = paired_bootstrap(b, a)  # statistic(b) − statistic(a)
            if isinstance(res, dict) and _ci(res.get("ci95")):
                return float(res.get("difference", np.mean(diff))), _ci(res["ci95"]), _STATS
            if isinstance(res, tuple) and len(res) == 2 and _ci(res[1]):
                return float(res[0]), list(res[1]), _STATS
        except (TypeError, ValueError, EchosslError):
            pass
    from echossl.evaluation.metrics import mean_ci

    return float(np.mean(diff)), mean_ci(diff, bootstrap=1000, seed=0), "bootstrap of the mean difference (1000 resamples)"


def _comparison(runs: list[RunInfo]) -> Section:
    sec = Section("Side by side")
    labels = _unique_labels(runs)
    keys = list(dict.fromkeys(k for r in runs for k, v in r.metrics.items()
                              if k not in _HIDDEN and not k.endswith("_ci95") and isinstance(v, (int, float))
                              and not isinstance(v, bool)))
    table = []
    for k in keys:
        row = {"Metric": metric_label(k)}
        for r, lab in zip(runs, labels):
            v, ci = r.metrics.get(k), _ci(r.metrics.get(f"{k}_ci95"))
            row[lab] = _with_ci(v, ci) if ci and v is not None else v
        table.append(row)
    table.append({"Metric": "Items evaluated", **{lab: r.metrics.get("n") for r, lab in zip(runs, labels)}})
    sec.tables.append(("Metrics of each run", table))
    paired, method = [], None
    names = {"abs_error": "absolute EF error (EF points)", "dice": "Dice per video"}
    for metric, what in names.items():
        # each measure against the first run that has it (EF runs against the first EF run, ...)
        having = [(r, lab) for r, lab in zip(runs, labels) if r.per_item.get(metric)]
        if len(having) < 2:
            continue
        (base, base_label), others = having[0], having[1:]
        for other, lab in others:
            a, b = base.per_item[metric], other.per_item[metric]
            common = sorted(set(a) & set(b))
            if len(common) < 2:
                continue
            av, bv = np.array([a[c] for c in common], float), np.array([b[c] for c in common], float)
            d, ci, method = _paired(av, bv)
            paired.append({"Comparison": f"{lab} − {base_label}", "Measure": f"mean {what}", "Items": len(common),
                           "Mean, reference run": float(av.mean()), "Mean, this run": float(bv.mean()),
                           "Difference": d, "95 % CI": ci,
                           "Verdict": ("inconclusive" if ci is None or ci[0] <= 0 <= ci[1] else
                                       "differs")})
    if paired:
        sec.tables.append(("Paired differences on the items both runs evaluated", paired))
        sec.notes.append(f"Intervals: {method} over the shared items; a CI that excludes 0 "
                         "means the runs differ on these items. Each measure is compared with the first run that has it.")
    else:
        sec.notes.append("No paired differences: the runs share no per-item results (EF predictions or, "
                         "with --data, per-video Dice).")
    return sec


def _unique_labels(runs: list[RunInfo]) -> list[str]:
    labels = [r.label for r in runs]
    if len(set(labels)) < len(labels):
        labels = [f"{r.path.parent.name}/{r.path.name}" for r in runs]
    if len(set(labels)) < len(labels):
        labels = [f"{i + 1}: {lab}" for i, lab in enumerate(labels)]
    return labels


# --------------------------------------------------------------------------- #
# the report
# --------------------------------------------------------------------------- #

def _run_sections(run: RunInfo, out_dir: Path, figs: _Figures, version: str, commit: str | None,
                  max_videos: int | None, level: int = 2) -> list[Section]:
    sections = [_provenance(run, out_dir, version, commit)]
    res = _results_section(run)
    if res is not None:
        sections.append(res)
    if run.metrics:
        sections.append(Section(f"Metrics: {run.label}", tables=[
            (f"{run.metrics.get('split') or ''} metrics with 95 % bootstrap intervals".strip(), metric_rows(run.metrics))]))
    if run.is_ef or run.predictions is not None:
        sections.append(_ef_section(run, figs))
    if run.is_seg:
        sections.append(_seg_section(run, figs, max_videos))
    logs = _log_section(run, figs)
    if logs is not None:
        sections.append(logs)
    for s in sections:
        s.level = level
    return sections


def write_run_report(runs, out, *, data=None, title: str | None = None, extra_figures=(), extra_tables=(),
                     summary: str = "", max_videos: int | None = None) -> Path:
    """Write the HTML report of one or more run folders, and every figure to ``figures/`` beside it.

    Args:
        runs: run, evaluation, demo or reproduce folders (or their metrics.json).
        out: the ``.html`` file to write.
        data: the data folder, when the runs do not record it (needed for per-video Dice,
            surface distances and overlays of segmentation runs).
        title: heading; default names the run(s).
        extra_figures: ``[(caption, png_bytes)]`` shown first (``demo`` passes its
            saliency and t-SNE figures here).
        extra_tables: ``[(caption, rows)]`` shown first too (e.g. the demo's Table IV and ladder).
        summary: text shown under the title.
        max_videos: score at most this many videos per segmentation run (default all).

    Returns:
        The report's path. Figures are ``<out folder>/figures/NN_<caption>.{png,svg}``.
    """
    from echossl import __version__

    paths = [runs] if isinstance(runs, (str, Path)) else list(runs)
    if not paths:
        raise EchosslError("echossl report needs at least one run folder")
    out = Path(out)
    infos = [load_run(p, data) for p in paths]
    figs = _Figures(out.parent / "figures")
    commit = git_commit()
    sections: list[Section] = []
    extra = [figs.add_png(caption, png) for caption, png in extra_figures or ()]
    if extra or extra_tables:
        sections.append(Section("Summary", tables=list(extra_tables or ()), figures=extra))
    if len(infos) > 1:
        # per-item results first, so that the comparison can pair them
        body = [s for r in infos for s in _run_sections(r, out.parent, figs, __version__, commit, max_videos, 3)]
        sections.append(_comparison(infos))
        sections += body
    else:
        run = infos[0]
        sections += _run_sections(run, out.parent, figs, __version__, commit, max_videos)
        children = [c for c in run.children]
        child_sections = [s for c in children for s in _run_sections(c, out.parent, figs, __version__, commit,
                                                                     max_videos, 3)]
        if len(children) > 1:
            sections.append(_comparison(children))
        sections += child_sections
    if title is None:
        title = ("echossl report: " + ", ".join(_unique_labels(infos)))
    write_report(out, title, summary=summary, sections=sections)
    return out
