"""``echossl evaluate``: a checkpoint on an EchoNet-format split or on a CAMUS folder.

The inference settings (frame size, clip length, period, test clips,
normalisation) are the checkpoint's own (:mod:`echossl.evaluation.settings`);
a ``--config`` YAML overrides them. Beside ``metrics.json`` it writes
``predictions.csv``, one row per video:

- EF models: ``FileName, EF_True, EF_Pred, EF_ClipStd, Clips``, where
  ``EF_Pred`` is the mean over the test clips, ``EF_ClipStd`` their standard
  deviation (population, ddof 0; 0 for one clip) and ``Clips`` how many there were;
- segmentation models: ``FileName, Dice_ED, Dice_ES, Dice`` (pooled over the
  video's traced ED and ES frames), ``EF_True`` and ``EF_Seg`` (method of disks
  from the predicted masks, averaged over beats);
- CAMUS: ``FileName, EF_True, EF_Pred, ImageQuality``.

Layering: the model loaders and clip inference live in
``echossl.pipelines.semisupervised_ef`` and are imported lazily here (a known
exception to "evaluation never imports pipelines" that predates this module).
"""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from echossl.engine import load_checkpoint
from echossl.data.check import detect_format
from echossl.errors import EchosslError
from echossl.evaluation.metrics import dice, regression_metrics, write_metrics_json
from echossl.io import atomic_write_text
from echossl.progress import progress_bar

PREDICTIONS = "predictions.csv"


def evaluate(checkpoint, data, split: str, out_json, *, config=None, sets=(), preset: str | None = None,
             cfg: dict | None = None, accelerator: str = "auto", devices="auto",
             batch_size: int | None = None) -> dict:
    """Dispatch on the checkpoint's task and the data's format; writes ``metrics.json`` and ``predictions.csv``.

    Args:
        checkpoint: run folder, ``.ckpt`` or export folder.
        data: EchoNet-layout folder or CAMUS folder.
        split: ``TRAIN``, ``VAL`` or ``TEST``.
        out_json: the ``metrics.json`` to write.
        config: a ``--config`` YAML merged over the checkpoint's own config.
        sets: ``--set a.b=c`` values, merged after ``config``.
        preset: used only when the checkpoint's config cannot be found.
        cfg: an already-parsed override dict (merged like ``config``).
        accelerator, devices: where to run (:func:`echossl.engine.devices.select_device`).
        batch_size: clips (EF) or frames (seg) per forward pass.
    """
    from echossl.config import deep_merge
    from echossl.engine.devices import select_device
    from echossl.evaluation.settings import checkpoint_config, inference_settings, load_override

    ckpt = load_checkpoint(checkpoint)
    override = deep_merge(cfg or {}, load_override(config, sets) or {})
    full_cfg, _ = checkpoint_config(ckpt, override, fallback_preset=preset)
    settings = inference_settings(ckpt, full_cfg, override, batch_size)
    device = select_device(accelerator, devices)
    task = ckpt["hyper_parameters"]["task"]
    if task not in ("seg", "ef", "distill"):
        evaluate_checkpoint = _plugin_for(task).evaluate_checkpoint
        extra = {"device": device} if "device" in inspect.signature(evaluate_checkpoint).parameters else {}
        return evaluate_checkpoint(ckpt["path"], data, split, out_json, cfg=full_cfg, **extra)
    fmt = detect_format(data)
    if fmt == "camus":
        if task == "seg":
            raise EchosslError("CAMUS evaluation takes an EF checkpoint (ef or distill), not a segmentation one")
        return evaluate_camus(ckpt["path"], data, out_json, settings=settings, device=device)
    if task == "seg":
        return evaluate_seg_checkpoint(ckpt["path"], data, split, out_json, settings=settings, device=device)
    return evaluate_ef_checkpoint(ckpt["path"], data, split, out_json, settings=settings, device=device)


def _plugin_for(task: str):
    """The pipeline that evaluates checkpoints of ``task`` (the engine's task table)."""
    from echossl.engine.tasks import get_task

    return get_task(task).pipeline_module()


def _write_predictions(out_json, table: pd.DataFrame) -> Path:
    path = Path(out_json).with_name(PREDICTIONS)
    atomic_write_text(path, table.to_csv(index=False, float_format="%.4f"))
    return path


@torch.inference_mode()
def evaluate_ef_checkpoint(checkpoint, data, split: str, out_json, *, settings: dict, device=None,
                           bootstrap: int = 1000) -> dict:
    """MAE, RMSE, R² with bootstrap 95 % CIs on one split, at the checkpoint's clip settings.

    Every video's test clips (``settings["test_clips"]``: a count or ``"all"``)
    are cut at ``settings["length"]`` frames and ``settings["period"]``, run
    ``settings["batch_size"]`` at a time, and averaged; the per-clip spread goes
    to ``predictions.csv``. A 4-channel teacher reads the masks folder it was
    trained on.
    """
    from echossl.data.echonet import EchoNetDynamic
    from echossl.pipelines import semisupervised_ef as pipe

    device = device or torch.device("cpu")
    module, hp = pipe.load_ef_model(checkpoint)
    in_channels = module.net.stem[0].in_channels
    masks_dir = hp.get("masks_dir") if in_channels == 4 else None
    if in_channels == 4 and not (masks_dir and Path(masks_dir).is_dir()):
        raise EchosslError(f"{checkpoint} is a multi-input teacher whose masks folder {masks_dir} is gone")
    s = settings
    ds = EchoNetDynamic(data, split, length=s["length"], period=s["period"], clips=s["test_clips"],
                        mean=s["mean"], std=s["std"], size=s["size"], masks_dir=masks_dir)
    if len(ds) == 0:
        raise EchosslError(f"{data} has no usable {split} videos to evaluate")
    module.to(device)
    per_clip = []
    for i in progress_bar(range(len(ds)), f"EF on {split}"):
        clips = ds[i]["video"]
        clips = clips.unsqueeze(0) if clips.dim() == 4 else clips  # (K, C, T, H, W)
        out = [pipe.forward_clips(module.net, clips[b:b + s["batch_size"]][:, :in_channels], device)
               for b in range(0, len(clips), s["batch_size"])]
        per_clip.append(torch.cat(out).float().cpu().numpy())
    pred = np.array([p.mean() for p in per_clip], dtype=np.float64)
    true = np.asarray(ds.ef, dtype=np.float64)
    metrics = regression_metrics(true, pred, bootstrap=bootstrap, seed=0)
    write_metrics_json(out_json, task=hp["task"], split=split, n=len(true), **metrics)
    pipe._save_npz(Path(out_json).with_name("predictions.npz"), filenames=np.asarray(ds.filenames), ef_true=true,
                   ef_pred=pred)
    _write_predictions(out_json, pd.DataFrame({
        "FileName": list(ds.filenames), "EF_True": true, "EF_Pred": pred,
        "EF_ClipStd": [float(p.std()) for p in per_clip], "Clips": [len(p) for p in per_clip]}))
    return {**metrics, "filenames": list(ds.filenames), "ef_true": true, "ef_pred": pred}


def evaluate_seg_checkpoint(checkpoint, data, split: str, out_json, *, settings: dict, device=None) -> dict:
    """Dice on a split of another dataset: masks are predicted into ``<out>/eval_masks`` first."""
    from echossl.data.echonet import read_filelist, validate
    from echossl.pipelines import semisupervised_ef as pipe

    table = read_filelist(data)
    usable, _ = validate(data)
    names = sorted(set(table.loc[table["Split"] == split, "FileName"]) & set(usable))
    if not names:
        raise EchosslError(f"{data} has no usable {split} videos to evaluate")
    masks_dir = Path(out_json).parent / "eval_masks"
    pipe.infer_masks(checkpoint, data, names, masks_dir, batch_size=settings["batch_size"], device=device)
    metrics = pipe.evaluate_seg(masks_dir, data, names, out_json, split_name=split)
    _write_predictions(out_json, seg_rows(masks_dir, data, names))
    return metrics


def seg_rows(masks_dir, data, names) -> pd.DataFrame:
    """Per-video Dice on the traced ED and ES frames, and EF from the predicted masks.

    ``Dice`` pools the two frames (``2·ΣI / (Σ|A| + Σ|B|)``), as the reference
    pools over frames.
    """
    from echossl.data.echonet import ed_es_frames, read_filelist, read_tracings, trace_mask
    from echossl.evaluation.beats import segmentation_ef

    traces = read_tracings(data)
    info = read_filelist(data).set_index("FileName")
    rows = []
    for name in names:
        pred = np.load(Path(masks_dir) / f"{name}.npy") >= 128
        ed, es = ed_es_frames(traces[name])
        h, w = pred.shape[1:]
        a = np.stack([pred[ed], pred[es]])
        b = np.stack([trace_mask(traces[name][ed], h, w), trace_mask(traces[name][es], h, w)]).astype(bool)
        inter, total = float((a & b).sum()), float(a.sum() + b.sum())
        fps = float(info.loc[name, "FPS"]) if "FPS" in info.columns and np.isfinite(info.loc[name, "FPS"]) else None
        rows.append({"FileName": name, "Dice_ED": float(dice(a[0], b[0])), "Dice_ES": float(dice(a[1], b[1])),
                     "Dice": 2 * inter / total if total else 1.0,
                     "EF_True": float(info.loc[name, "EF"]) if "EF" in info.columns else float("nan"),
                     "EF_Seg": segmentation_ef(pred, fps=fps)["ef"]})
    return pd.DataFrame(rows)


@torch.inference_mode()
def evaluate_camus(checkpoint, data, out_json, *, settings: dict, device=None) -> dict:
    """External validation (Table IX): MAE per ImageQuality and overall on CAMUS 4CH half sequences.

    Each half sequence is mirrored into a full ED-ES-ED cycle, resized to the
    model's frame size, normalised with the training statistics, and the cycle
    is repeated until it fills a clip of the model's length and period (a
    periodic continuation of the heartbeat rather than zero frames); 4 evenly
    spaced clips are averaged (the repeated cycle makes more clips redundant).
    """
    from echossl.data.camus import Camus
    from echossl.pipelines import semisupervised_ef as pipe

    device = device or torch.device("cpu")
    module, hp = pipe.load_ef_model(checkpoint)
    if module.net.stem[0].in_channels == 4:
        raise EchosslError("CAMUS evaluation needs a video-only EF model (a distilled student or video-only run)")
    module.to(device)
    s = settings
    ds = Camus(data, size=s["size"] or 112, mirror=True)
    mean = torch.tensor(s["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(s["std"]).view(1, 3, 1, 1)
    need = s["length"] * s["period"]
    preds, truth, quality, names = [], [], [], []
    for i in progress_bar(range(len(ds)), "EF on CAMUS"):
        item = ds[i]
        frames = (item["video"].permute(1, 0, 2, 3) - mean) / std  # (T, 3, H, W)
        reps = -(-need // frames.shape[0])
        frames = frames.repeat(reps, 1, 1, 1)
        preds.append(pipe.predict_ef_frames(module, frames, s["length"], s["period"], clips=4,
                                            batch_size=s["batch_size"]))
        truth.append(float(item["EF"]))
        quality.append(item["quality"])
        names.append(item["patient"])
    preds, truth, quality = np.asarray(preds), np.asarray(truth), np.asarray(quality)
    keep = np.isfinite(truth)
    metrics = regression_metrics(truth[keep], preds[keep], bootstrap=1000)
    for q in ("Good", "Medium", "Poor"):
        sel = keep & (quality == q)
        if sel.any():
            metrics[f"mae_{q.lower()}"] = float(np.mean(np.abs(truth[sel] - preds[sel])))
            metrics[f"n_{q.lower()}"] = int(sel.sum())
    write_metrics_json(out_json, task=hp["task"], split="CAMUS", n=int(keep.sum()), **metrics)
    _write_predictions(out_json, pd.DataFrame({"FileName": names, "EF_True": truth, "EF_Pred": preds,
                                               "ImageQuality": quality}))
    return metrics
