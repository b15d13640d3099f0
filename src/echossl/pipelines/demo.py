"""``echossl demo``: Table IV of css-semisupervised-ef.md at 1/8 labels, end to end.

Simulates data (unless given), trains the two segmentation models (supervised,
+CSS) and the four EF rows, then writes ``results.json`` and ``report.html``
with the figures a reader of the paper would look for.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from echossl.config import load_config
from echossl.engine import TrainerOptions, best_checkpoint
from echossl.evaluation import plots
from echossl.evaluation.metrics import mean_ci
from echossl.evaluation.report import write_report
from echossl.io import atomic_write_text
from echossl.pipelines import semisupervised_ef as pipe

ROWS = ("video-only", "video+seg", "video+seg+css", "video+seg+css+dist")
console = Console(stderr=True)


def _opts(cfg: dict, section: str, devices="1", accelerator="cpu") -> TrainerOptions:
    return TrainerOptions(max_epochs=cfg[section]["max_epochs"], devices=int(devices) if str(devices).isdigit()
                          else devices, accelerator=accelerator, seed=cfg["seed"])


def run_demo(out, data=None, preset: str = "cpu", config=None, *, accelerator: str = "cpu",
             devices: str = "1", videos: int | None = None) -> dict:
    """Run the whole job; returns the results dict also written to ``OUT/results.json``."""
    t0 = time.time()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = load_config(preset, config)
    if data is None:
        from echossl.simulate.echonet import simulate_echonet

        data = out / "data"
        if not (data / "FileList.csv").exists():
            n = videos or cfg["simulate"]["videos"]
            console.rule(f"[bold]1/7 simulating {n} echo videos")
            simulate_echonet(data, n, seed=cfg["seed"], size=cfg["simulate"]["size"])
    data = Path(data)
    split = pipe.split_data(data, cfg)
    console.print(f"{len(split.labeled)} labeled + {len(split.unlabeled)} unlabeled TRAIN videos, "
                  f"{len(split.val)} VAL, {len(split.test)} TEST")
    rows, ef_runs, seg_css = train_rows(data, out / "runs", cfg, split, accelerator=accelerator, devices=devices)
    console.rule("[bold]report")
    figures, attention = _figures(data, split, cfg, ef_runs, seg_css)
    for row in rows:
        row.update(attention.get(row["method"], {}))
    results = {"preset": cfg["preset"], "labeled_fraction": cfg["labeled_fraction"], "rows": rows,
               "data": str(data), "n_labeled": len(split.labeled), "n_unlabeled": len(split.unlabeled),
               "n_test": len(split.test), "seconds": round(time.time() - t0, 1)}
    atomic_write_text(out / "results.json", json.dumps(results, indent=2))
    from echossl.io import atomic_write_bytes

    for k, (caption, png) in enumerate(figures):  # the report's figures also as PNG files
        atomic_write_bytes(out / "figures" / f"{k:02d}_{_slug(caption)}.png", png)
    _print_table(rows)
    write_report(out / "report.html", "echossl demo: semi-supervised EF (Table IV at 1/8 labels)",
                 summary=(f"Preset {cfg['preset']}, {len(split.labeled)} labeled and {len(split.unlabeled)} "
                          f"unlabeled training videos, TEST n={len(split.test)}, data {data}. "
                          f"Took {results['seconds']:.0f} s."),
                 tables=[("Table IV (TEST split)", [_flat(r) for r in rows])], figures=figures)
    console.print(f"wrote {out / 'results.json'} and {out / 'report.html'} in {results['seconds']:.0f} s")
    return results


def train_rows(data: Path, runs: Path, cfg: dict, split, *, accelerator: str = "cpu", devices: str = "1",
               stages: int = 7):
    """Train the two segmenters and the four EF rows of Table IV; returns (rows, EF runs, CSS seg run).

    A stage whose run folder already holds ``metrics.json`` is reused, so an
    interrupted demo continues where it stopped.
    """
    stage = iter(range(stages - 5, stages + 1))

    def step(name: str, fn, run: Path, section: str, **kw):
        if (run / "metrics.json").exists():
            console.print(f"[dim]reusing {run}[/dim]")
            return run
        if run.exists():  # an interrupted stage: start it again from scratch
            import shutil

            shutil.rmtree(run)
        console.rule(f"[bold]{next(stage)}/{stages} {name}")
        return fn(data, run, cfg, opts=_opts(cfg, section, devices, accelerator), split=split, **kw)

    seg = step("segmentation (supervised)", pipe.train_seg, runs / "seg", "seg", css=False)
    seg_css = step("segmentation + CSS", pipe.train_seg, runs / "seg+css", "seg", css=True)
    ef_runs = {
        "video-only": step("EF: video only", pipe.train_ef, runs / "video-only", "ef"),
        "video+seg": step("EF teacher: video + seg", pipe.train_ef, runs / "video+seg", "ef", masks_run=seg),
        "video+seg+css": step("EF teacher: video + seg(CSS)", pipe.train_ef, runs / "video+seg+css", "ef",
                              masks_run=seg_css),
    }
    ef_runs["video+seg+css+dist"] = step("distillation", pipe.train_distill, runs / "video+seg+css+dist",
                                         "distill", teacher_run=ef_runs["video+seg+css"])
    seg_of = {"video-only": None, "video+seg": seg, "video+seg+css": seg_css, "video+seg+css+dist": seg_css}
    rows = []
    for name in ROWS:
        m = json.loads((ef_runs[name] / "metrics.json").read_text())
        row = {"method": name, **{k: m[k] for k in ("mae", "rmse", "r2", "mae_ci95", "rmse_ci95", "r2_ci95", "n")}}
        if seg_of[name] is not None:
            s = json.loads((seg_of[name] / "metrics.json").read_text())
            row.update({k: s[k] for k in ("dice_ed", "dice_es", "dice_unlabeled") if k in s})
        rows.append(row)
    return rows, ef_runs, seg_css


def reproduce_table4(out, data=None, fractions=(3 / 32, 4 / 32, 6 / 32, 8 / 32, 16 / 32), seeds: int = 5,
                     preset: str = "cpu", config=None, *, accelerator: str = "cpu", devices: str = "1") -> dict:
    """Table IV / Fig. 6: every row at every labeled fraction, mean +- sd over ``seeds`` seeds.

    Each (fraction, seed) trains in ``OUT/f<fraction>_s<seed>/``; finished cells
    are reused, so the grid can be stopped and continued.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    base = load_config(preset, config)
    if data is None:
        from echossl.simulate.echonet import simulate_echonet

        data = out / "data"
        if not (data / "FileList.csv").exists():
            simulate_echonet(data, base["simulate"]["videos"], seed=base["seed"], size=base["simulate"]["size"])
    data = Path(data)
    cells = []
    for fraction in fractions:
        for seed in range(seeds):
            cfg = {**base, "labeled_fraction": float(fraction), "seed": int(seed)}
            console.rule(f"[bold]labeled fraction {fraction:.4g}, seed {seed}")
            split = pipe.split_data(data, cfg)
            rows, _, _ = train_rows(data, out / f"f{fraction:.4f}_s{seed}", cfg, split,
                                    accelerator=accelerator, devices=devices)
            cells += [{"fraction": float(fraction), "seed": seed, **r} for r in rows]
    summary = []
    for fraction in fractions:
        for name in ROWS:
            vals = [c for c in cells if c["fraction"] == float(fraction) and c["method"] == name]
            entry = {"fraction": float(fraction), "method": name}
            for key in ("mae", "r2"):
                v = np.asarray([c[key] for c in vals], dtype=float)
                entry[key] = float(np.nanmean(v))
                entry[f"{key}_sd"] = float(np.nanstd(v, ddof=1)) if len(v) > 1 else 0.0
            summary.append(entry)
    result = {"preset": base["preset"], "fractions": [float(f) for f in fractions], "seeds": seeds,
              "summary": summary, "cells": cells}
    atomic_write_text(out / "table4.json", json.dumps(result, indent=2))
    series = {name: ([e["mae"] for e in summary if e["method"] == name],
                     [e["mae_sd"] for e in summary if e["method"] == name]) for name in ROWS}
    from echossl.io import atomic_write_bytes

    atomic_write_bytes(out / "fig6.png", plots.line_plot([float(f) for f in fractions], series,
                                                         "Fig. 6: MAE by labeled fraction", "labeled fraction", "MAE"))
    table = Table(title="Table IV: MAE (mean ± sd over seeds)")
    table.add_column("method")
    for f in fractions:
        table.add_column(f"{f:.4g}")
    for name in ROWS:
        table.add_row(name, *[f"{e['mae']:.2f} ± {e['mae_sd']:.2f}" for e in summary if e["method"] == name])
    Console().print(table)
    return result


def _slug(text: str) -> str:
    import re

    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60]


def _flat(row: dict) -> dict:
    out = {}
    for k, v in row.items():
        if isinstance(v, list):
            out[k] = f"[{v[0]:.3f}, {v[1]:.3f}]"
        elif isinstance(v, float):
            out[k] = round(v, 4)
        else:
            out[k] = v
    return out


def _print_table(rows: list[dict]) -> None:
    table = Table(title="Table IV on the simulator (TEST split)")
    table.add_column("method", no_wrap=True)
    for col in ("MAE", "RMSE", "R² [95% CI]", "Dice ED", "Dice ES", "Dice unlab.", "attn Dice"):
        table.add_column(col)

    def f(v, pct=False):
        return "-" if v is None else (f"{100 * v:.1f}%" if pct else f"{v:.2f}")

    for r in rows:
        ci = r.get("r2_ci95") or [float("nan")] * 2
        table.add_row(r["method"], f(r["mae"]), f(r["rmse"]), f"{f(r['r2'])} [{ci[0]:.2f}, {ci[1]:.2f}]",
                      f(r.get("dice_ed"), True), f(r.get("dice_es"), True), f(r.get("dice_unlabeled"), True),
                      f(r.get("attention_dice"), True))
    import sys

    Console(width=None if sys.stdout.isatty() else 140).print(table)  # logs get the whole table


def _figures(data: Path, split, cfg: dict, ef_runs: dict, seg_run: Path):
    """The report's figures, and the SmoothGrad attention Dice per EF row (Table II)."""
    figures = []
    for name, run in ef_runs.items():
        p = np.load(run / "predictions.npz")
        figures.append((f"{name}: predicted vs true EF (TEST)", plots.scatter_pred_true(p["ef_true"], p["ef_pred"], name)))
    p = np.load(ef_runs["video+seg+css+dist"] / "predictions.npz")
    figures.append(("Bland-Altman, video+seg+css+dist", plots.bland_altman(p["ef_true"], p["ef_pred"], "video+seg+css+dist")))
    from echossl.evaluation.beats import segmentation_ef

    test_name = split.test[0]
    probs = np.load(seg_run / "masks" / f"{test_name}.npy")
    result = segmentation_ef(probs >= 128)
    figures.append((f"LV-area curve with ED/ES picks ({test_name}, seg+CSS)",
                    plots.area_curve(result["area"], result["ed_frames"], result["es_frames"], test_name)))
    attention, saliency_png = _attention(data, split, cfg, ef_runs)
    if saliency_png is not None:
        figures.append(("SmoothGrad heatmap of the distilled student (ED frame, top 5% vs LV)", saliency_png))
    figures.append(("t-SNE of CSS encoder features, coloured by video (cf. Fig. 5)", _tsne(data, split, seg_run)))
    return figures, attention


def _attention(data: Path, split, cfg: dict, ef_runs: dict):
    """Dice between the top 5% SmoothGrad pixels and the LV on ED and ES frames (Table II)."""
    from echossl.data.echonet import EchoNetDynamic, ed_es_frames, read_tracings, trace_mask
    from echossl.evaluation.saliency import saliency_dice, smoothgrad

    traces = read_tracings(data)
    names = split.test[: cfg["saliency"]["videos"]]
    ef = cfg["ef"]
    out, png = {}, None
    for row, run in ef_runs.items():
        module, hp = pipe.load_ef_model(best_checkpoint(run))
        in_ch = module.net.stem[0].in_channels
        masks_dir = hp.get("masks_dir") if in_ch == 4 else None
        ds = EchoNetDynamic(data, "TEST", filenames=names, length=ef["length"], period=ef["period"], clips=1,
                            mean=hp["norm"]["mean"], std=hp["norm"]["std"], size=hp["norm"]["size"],
                            masks_dir=masks_dir, warn=False)
        dices = []
        for i, name in enumerate(ds.filenames):
            ed, es = ed_es_frames(traces[name])
            start = max(0, min(ed, es) - ef["period"])
            clip = _clip_at(ds, i, start)
            sal = smoothgrad(module.net, clip, n_samples=cfg["saliency"]["samples"], sigma=cfg["saliency"]["sigma"])
            frames = start + ef["period"] * np.arange(clip.shape[1])
            h, w = clip.shape[-2:]
            masks = {}
            for f in (ed, es):
                k = int(np.argmin(np.abs(frames - f)))
                full = trace_mask(traces[name][f], int(ds.filelist.iloc[i]["FrameHeight"]),
                                  int(ds.filelist.iloc[i]["FrameWidth"]))
                masks[k] = torch.nn.functional.interpolate(torch.from_numpy(full)[None, None].float(),
                                                           size=(h, w), mode="nearest")[0, 0].numpy() > 0.5
            d = saliency_dice(sal[:3], masks)
            dices += list(d.values())
            if png is None and row == "video+seg+css+dist":
                k = min(masks)
                frame = clip[:3, k].permute(1, 2, 0).numpy()
                frame = (255 * (frame - frame.min()) / (np.ptp(frame) + 1e-8)).astype(np.uint8)
                png = plots.saliency_overlay(frame, sal[:3, k].abs().amax(0).numpy(), masks[k], name)
        out[row] = {"attention_dice": float(np.mean(dices)), "attention_dice_ci95": mean_ci(dices)}
    return out, png


def _clip_at(ds, i: int, start: int) -> torch.Tensor:
    """One clip of item ``i`` starting at frame ``start`` (the dataset's sampling, fixed start)."""
    from echossl.data import sampling

    n = int(ds.n_frames[i])
    starts = sampling.all_starts(n, ds.length, ds.period)
    ds.clips = "all"
    try:
        video = ds[i]["video"]
    finally:
        ds.clips = 1
    return video[int(np.clip(start, 0, len(starts) - 1))]


@torch.inference_mode()
def _tsne(data: Path, split, seg_run: Path, videos: int = 6) -> bytes:
    from echossl.data.cache import FrameCache
    from echossl.methods.css import frame_embeddings

    module, hp = pipe.load_segmenter(best_checkpoint(seg_run))
    cache = FrameCache()
    feats, labels = [], []
    for k, name in enumerate(split.test[:videos]):
        frames = cache.get(data / "Videos" / f"{name}.avi")
        x = pipe._normalise(frames[::2], hp["norm"], "cpu")
        z = frame_embeddings(module.net.encode(x), (hp.get("css") or {}).get("pool", "mean"))
        feats.append(z.numpy())
        labels += [k] * len(z)
    return plots.tsne_plot(np.concatenate(feats), np.asarray(labels), "CSS features by video")
