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
from echossl.data.echonet import EchoNetDynamic
from echossl.engine import TrainerOptions, best_checkpoint
from echossl.evaluation import plots
from echossl.evaluation import stats
from echossl.evaluation.metrics import mean_ci, regression_metrics
from echossl.evaluation.report import demo_title
from echossl.evaluation.run_report import write_run_report
from echossl.io import atomic_write_text
from echossl.pipelines import semisupervised_ef as pipe

ROWS = ("video-only", "video+seg", "video+seg+css", "video+seg+css+dist")  # CONTRACT.md: results.json rows
CEILING, ORACLE, FLOOR, SEG_DIST = "video-only (all labels)", "video+true-masks (oracle)", "mean-EF (floor)", "video+seg+dist"
DEMO_ROWS = ROWS + (CEILING, ORACLE, FLOOR)
TABLE4_ROWS = ("video-only", "video+seg", "video+seg+css", SEG_DIST, "video+seg+css+dist")
PAPER_GAP_RECOVERED = (5.64 - 4.90) / (5.64 - 4.10)  # Table IV at 4/32 labels, "Ours" vs video-only: 0.48
console = Console(stderr=True)


def _opts(cfg: dict, section: str, devices="1", accelerator="cpu", threads=None, max_epochs=None) -> TrainerOptions:
    return TrainerOptions(max_epochs=max_epochs or cfg[section]["max_epochs"],
                          devices=int(devices) if str(devices).isdigit() else devices, accelerator=accelerator,
                          seed=cfg["seed"], threads=threads)


def run_demo(out, data=None, preset: str = "cpu", config=None, *, accelerator: str = "cpu",
             devices: str = "1", videos: int | None = None, seed: int | None = None,
             split_seed: int | None = None, sets=(), threads: int | None = None) -> dict:
    """Run the whole job; returns the results dict also written to ``OUT/results.json``.

    Rows: the four of Table IV (CONTRACT.md names) plus the bracketing rows of
    issue 14 — the all-labels video-only ceiling, the teacher fed the simulator's
    true masks (oracle; simulated data only) and the mean-EF floor — and a
    ``claims`` list of paired-bootstrap verdicts over the TEST videos (one
    training seed: ``seed``; ``reproduce table4`` averages several).
    """
    t0 = time.time()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = load_config(preset, config, overrides={"seed": seed, "split_seed": split_seed}, sets=tuple(sets or ()))
    if data is None:
        from echossl.simulate.echonet import simulate_echonet

        data = out / "data"
        if not (data / "FileList.csv").exists():
            n = videos or cfg["simulate"]["videos"]
            console.rule(f"[bold]simulating {n} echo videos")
            simulate_echonet(data, n, seed=cfg["seed"], size=cfg["simulate"]["size"])
    data = Path(data)
    split = pipe.split_data(data, cfg)
    console.print(f"{len(split.labeled)} labeled + {len(split.unlabeled)} unlabeled TRAIN videos, "
                  f"{len(split.val)} VAL, {len(split.test)} TEST")
    rows, ef_runs, seg_css, errors = train_rows(data, out / "runs", cfg, split, accelerator=accelerator,
                                                devices=devices, threads=threads, rows=DEMO_ROWS)
    claims, ladder = table4_claims(errors)
    console.rule("[bold]report")
    figures, attention = _figures(data, split, cfg, {k: v for k, v in ef_runs.items() if k in ROWS}, seg_css)
    for row in rows:
        row.update(attention.get(row["method"], {}))
    results = {"preset": cfg["preset"], "labeled_fraction": cfg["labeled_fraction"], "rows": rows,
               "data": str(data), "n_labeled": len(split.labeled), "n_unlabeled": len(split.unlabeled),
               "n_test": len(split.test), "seeds": [cfg["seed"]], "split_seed": cfg.get("split_seed", 0),
               "claims": claims, "ladder": ladder, "seconds": round(time.time() - t0, 1)}
    atomic_write_text(out / "results.json", json.dumps(results, indent=2))
    _print_table(rows)
    print_claims(claims, ladder)
    # the same report code as `echossl report`; it also writes every figure to figures/ as PNG and SVG
    write_run_report([out], out / "report.html", data=data, title=demo_title(cfg["labeled_fraction"]),
                     summary=(f"Preset {cfg['preset']}, {len(split.labeled)} labeled and {len(split.unlabeled)} "
                          f"unlabeled training videos, TEST n={len(split.test)}, one training seed "
                          f"({cfg['seed']}), data {data}. Took {results['seconds']:.0f} s. Differences are "
                          "paired over the TEST videos (bootstrap over videos, 10000 resamples)."),
                     extra_tables=[("Table IV (TEST split)", [_flat(r) for r in rows]),
                                   ("Claims (paired differences, TEST)", stats.format_claims(claims)),
                                   ("Diagnostic ladder (MAE, paired difference to video-only)", _ladder_table(ladder))],
                     extra_figures=figures)
    console.print(f"wrote {out / 'results.json'} and {out / 'report.html'} in {results['seconds']:.0f} s")
    return results


def _has_truth(root: Path, names) -> bool:
    from echossl.data.echonet import load_truth

    return bool(names) and load_truth(root, names[0]) is not None


def train_rows(data: Path, runs: Path, cfg: dict, split, *, accelerator: str = "cpu", devices: str = "1",
               threads: int | None = None, rows=ROWS):
    """Train what ``rows`` need; returns (rows, EF runs, CSS seg run, per-video TEST errors).

    ``rows`` may name the four Table IV rows, :data:`SEG_DIST` (distillation from
    the teacher without CSS), :data:`CEILING` (video-only on every TRAIN label,
    ``ef.ceiling_max_epochs`` epochs), :data:`ORACLE` (teacher fed the simulator's
    true masks; skipped on real data) and :data:`FLOOR` (the labeled mean EF,
    no training). A stage whose run folder already holds ``metrics.json`` is
    reused, so an interrupted run continues where it stopped. The errors are
    ``{row: (N,) |pred - true|}`` over ``split.test`` in order.
    """
    rows = [r for r in rows if r != ORACLE or _has_truth(data, split.test)]
    need_seg = any(r in rows for r in ("video+seg", SEG_DIST))
    need_css = any(r in rows for r in ("video+seg+css", "video+seg+css+dist"))
    todo = need_seg + need_css + sum(r != FLOOR for r in rows)
    stage = iter(range(1, todo + 1))

    def step(name: str, fn, run: Path, section: str, max_epochs=None, **kw):
        if (run / "metrics.json").exists():
            console.print(f"[dim]reusing {run}[/dim]")
            return run
        if run.exists():  # an interrupted stage: start it again from scratch
            import shutil

            shutil.rmtree(run)
        console.rule(f"[bold]{next(stage)}/{todo} {name}")
        return fn(data, run, cfg, opts=_opts(cfg, section, devices, accelerator, threads, max_epochs),
                  split=kw.pop("split", split), **kw)

    seg = step("segmentation (supervised)", pipe.train_seg, runs / "seg", "seg", css=False) if need_seg else None
    seg_css = step("segmentation + CSS", pipe.train_seg, runs / "seg+css", "seg", css=True) if need_css else None
    ef_runs = {}
    specs = {
        "video-only": lambda: step("EF: video only", pipe.train_ef, runs / "video-only", "ef"),
        "video+seg": lambda: step("EF teacher: video + seg", pipe.train_ef, runs / "video+seg", "ef", masks_run=seg),
        "video+seg+css": lambda: step("EF teacher: video + seg(CSS)", pipe.train_ef, runs / "video+seg+css", "ef",
                                      masks_run=seg_css),
        SEG_DIST: lambda: step("distillation from video + seg", pipe.train_distill, runs / "video+seg+dist",
                               "distill", teacher_run=specs_run("video+seg")),
        "video+seg+css+dist": lambda: step("distillation from video + seg(CSS)", pipe.train_distill,
                                           runs / "video+seg+css+dist", "distill",
                                           teacher_run=specs_run("video+seg+css")),
        CEILING: lambda: step("EF: video only, all labels (ceiling)", pipe.train_ef, runs / "video-only-all", "ef",
                              max_epochs=cfg["ef"].get("ceiling_max_epochs"), split=all_labels(split)),
        ORACLE: lambda: step("EF teacher: video + TRUE masks (oracle)", pipe.train_ef, runs / "video+truth", "ef",
                             masks_run=truth_run()),
    }

    def specs_run(name):
        if name not in ef_runs:
            ef_runs[name] = specs[name]()
        return ef_runs[name]

    def truth_run():
        pipe.write_truth_masks(data, split.train + split.val + split.test, runs / "truth" / "masks")
        return runs / "truth"

    for name in rows:
        if name != FLOOR:
            specs_run(name)
    seg_of = {"video+seg": seg, SEG_DIST: seg, "video+seg+css": seg_css, "video+seg+css+dist": seg_css}
    table, errors = [], {}
    truth = pipe._ef_of(data, split.test)
    for name in rows:
        if name == FLOOR:
            pred = np.full_like(truth, float(np.mean(pipe._ef_of(data, split.labeled))))
            m = {**regression_metrics(truth, pred, bootstrap=1000, seed=0), "n": len(truth)}
        else:
            m = json.loads((ef_runs[name] / "metrics.json").read_text())
            p = np.load(ef_runs[name] / "predictions.npz")
            order = {f: k for k, f in enumerate(p["filenames"].tolist())}
            pred = p["ef_pred"][[order[f] for f in split.test]]
        errors[name] = np.abs(pred - truth)
        row = {"method": name, **{k: m[k] for k in ("mae", "rmse", "r2", "mae_ci95", "rmse_ci95", "r2_ci95", "n")},
               "bias": float(np.mean(pred - truth))}
        if seg_of.get(name) is not None:
            s = json.loads((seg_of[name] / "metrics.json").read_text())
            row.update({k: s[k] for k in ("dice_ed", "dice_es", "dice_unlabeled") if k in s})
        table.append(row)
    return table, ef_runs, seg_css, errors


def all_labels(split):
    """The same split with every TRAIN video labeled (the ceiling row)."""
    import dataclasses

    return dataclasses.replace(split, labeled=split.train, unlabeled=[])


def table4_claims(errors: dict, ceiling: np.ndarray | None = None, n_boot: int = 10000) -> tuple[list, list]:
    """Paired claims of Table IV and the diagnostic ladder from per-video TEST errors.

    Args:
        errors: ``{row: (N,) absolute EF error}`` on the same TEST videos (one seed,
            or per-video means over seeds, :func:`stats.combine_seeds`).
        ceiling: the all-labels video-only errors when not in ``errors``.
    Returns:
        ``(claims, ladder)``: CONTRACT.md claim dicts, and ladder rows
        ``{"stage", "mae", "vs_video_only", "ci95"}``.
    """
    e = dict(errors)
    if ceiling is not None:
        e[CEILING] = ceiling
    claims = []

    def diff(text, a, b, scale=1.0):
        if a in e and b in e:
            d, ci = stats.paired_bootstrap(e[a], scale * e[b], n_boot=n_boot)
            claims.append(stats.claim(text, d, ci, "lower"))

    diff("Seg. lowers MAE: video+seg - video-only", "video+seg", "video-only")
    diff("CSS lowers MAE: video+seg+css - video+seg", "video+seg+css", "video+seg")
    diff("Dist. lowers MAE (with CSS): video+seg+css+dist - video+seg+css", "video+seg+css+dist", "video+seg+css")
    diff("Dist. lowers MAE (no CSS): video+seg+dist - video+seg", SEG_DIST, "video+seg")
    diff("CSS lowers MAE after Dist.: video+seg+css+dist - video+seg+dist", "video+seg+css+dist", SEG_DIST)
    diff("full pipeline <= 0.8x video-only MAE: MAE(full) - 0.8 MAE(video-only)", "video+seg+css+dist",
         "video-only", 0.8)
    full, low, high = e.get("video+seg+css+dist"), e.get("video-only"), e.get(CEILING)
    if full is not None and low is not None and high is not None:
        value, ci = stats.bootstrap_function(
            [low, full, high], lambda m: (m[..., 0] - m[..., 1]) / (m[..., 0] - m[..., 2]), n_boot=n_boot)
        claims.append(stats.claim(f"full pipeline recovers >= {PAPER_GAP_RECOVERED:.0%} of the video-only "
                                  "1/8-to-all-labels gap (fraction recovered)", value, ci, "higher",
                                  PAPER_GAP_RECOVERED))
    diff("oracle: teacher with TRUE masks beats video-only", ORACLE, "video-only")
    if ORACLE in e and FLOOR in e:
        info = stats.informative(e[ORACLE], e[FLOOR], n_boot=n_boot)
        claims.append(stats.claim("protocol informative: oracle beats the mean-EF floor", info["difference"],
                                  info["ci95"], "lower"))
    ladder = []
    for stage, name in (("floor: mean EF", FLOOR), ("video-only (1/8)", "video-only"),
                        ("teacher, TRUE masks (oracle)", ORACLE), ("teacher, supervised masks", "video+seg"),
                        ("teacher, CSS masks", "video+seg+css"), ("student (distilled, CSS)", "video+seg+css+dist"),
                        ("ceiling: video-only, all labels", CEILING)):
        if name in e and "video-only" in e:
            d, ci = stats.paired_bootstrap(e[name], e["video-only"], n_boot=n_boot)
            ladder.append({"stage": stage, "row": name, "mae": float(np.mean(e[name])), "vs_video_only": d,
                           "ci95": ci})
    return claims, ladder


def _ladder_table(ladder: list) -> list[dict]:
    return [{"stage": r["stage"], "MAE": round(r["mae"], 3),
             "vs video-only [95% CI]": f"{r['vs_video_only']:+.2f} [{r['ci95'][0]:+.2f}, {r['ci95'][1]:+.2f}]"}
            for r in ladder]


def print_claims(claims: list, ladder: list) -> None:
    import sys

    console_out = Console(width=None if sys.stdout.isatty() else 160)
    if ladder:
        t = Table(title="Diagnostic ladder (TEST MAE; paired difference to video-only)")
        for col in ("stage", "MAE", "vs video-only [95% CI]"):
            t.add_column(col)
        for r in _ladder_table(ladder):
            t.add_row(*[str(v) for v in r.values()])
        console_out.print(t)
    t = Table(title="Claims (paired bootstrap over TEST videos)")
    for col in ("claim", "difference [95% CI]", "verdict"):
        t.add_column(col)
    for r in stats.format_claims(claims):
        t.add_row(*r.values())
    console_out.print(t)


def reproduce_table4(out, data=None, fractions=(3 / 32, 4 / 32, 6 / 32, 8 / 32, 16 / 32), seeds: int = 5,
                     preset: str = "cpu", config=None, *, accelerator: str = "cpu", devices: str = "1",
                     seed: int | None = None, split_seed: int | None = None, sets=(), threads: int | None = None,
                     all_labels_column: bool = True) -> dict:
    """Table IV / Fig. 6: every row at every labeled fraction plus the All-labels column.

    The labeled subset is fixed by ``split_seed`` (default 0); training seeds
    ``seed, seed+1, ...`` (``seeds`` of them) vary training only, as the
    authors' protocol. Each (fraction, seed) trains in ``OUT/f<fraction>_s<seed>/``;
    finished cells are reused. Claims per fraction are paired over TEST videos
    on the per-video errors averaged over seeds (:func:`stats.combine_seeds`).
    The All-labels column trains the rows that need no unlabeled data
    (video-only, video+seg, video+seg+css); its video-only row is the ceiling of
    the gap-recovered claim.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    base = load_config(preset, config, overrides={"split_seed": split_seed}, sets=tuple(sets or ()))
    first_seed = int(base["seed"] if seed is None else seed)
    if data is None:
        from echossl.simulate.echonet import simulate_echonet

        data = out / "data"
        if not (data / "FileList.csv").exists():
            simulate_echonet(data, base["simulate"]["videos"], seed=base["seed"], size=base["simulate"]["size"])
    data = Path(data)
    columns = [float(f) for f in fractions] + ([1.0] if all_labels_column and 1.0 not in fractions else [])
    cells, per_item, test = [], {}, None
    for fraction in columns:
        wanted = TABLE4_ROWS if fraction < 1.0 else ("video-only", "video+seg", "video+seg+css")
        for s in range(first_seed, first_seed + seeds):
            cfg = {**base, "labeled_fraction": fraction, "seed": s}
            console.rule(f"[bold]labeled fraction {fraction:.4g}, seed {s} (split seed {cfg.get('split_seed', 0)})")
            split = pipe.split_data(data, cfg)
            if fraction >= 1.0:
                split = all_labels(split)
            test = split.test
            rows, _, _, errors = train_rows(data, out / f"f{fraction:.4f}_s{s}", cfg, split,
                                            accelerator=accelerator, devices=devices, threads=threads, rows=wanted)
            cells += [{"fraction": fraction, "seed": s, **r} for r in rows]
            for name, err in errors.items():
                per_item.setdefault((fraction, name), []).append(err)
    summary = []
    for fraction in columns:
        for name in TABLE4_ROWS:
            vals = [c for c in cells if c["fraction"] == fraction and c["method"] == name]
            if not vals:
                continue
            entry = {"fraction": fraction, "method": name}
            for key in ("mae", "r2"):
                v = np.asarray([c[key] for c in vals], dtype=float)
                entry[key] = float(np.nanmean(v))
                entry[f"{key}_sd"] = float(np.nanstd(v, ddof=1)) if len(v) > 1 else 0.0
            summary.append(entry)
    ceiling = stats.combine_seeds(per_item[(1.0, "video-only")]) if (1.0, "video-only") in per_item else None
    claims = []
    for fraction in [f for f in columns if f < 1.0]:
        errs = {name: stats.combine_seeds(v) for (f, name), v in per_item.items() if f == fraction}
        c, _ = table4_claims(errs, ceiling=ceiling)
        claims += [{**x, "claim": f"[{fraction:.4g} labels] {x['claim']}"} for x in c]
    result = {"preset": base["preset"], "fractions": columns, "seeds": seeds,
              "training_seeds": list(range(first_seed, first_seed + seeds)), "split_seed": base.get("split_seed", 0),
              "n_test": len(test or []), "summary": summary, "cells": cells, "claims": claims,
              "seed_combination": "per-video absolute errors averaged over training seeds, then paired"}
    atomic_write_text(out / "table4.json", json.dumps(result, indent=2))
    shown = [n for n in TABLE4_ROWS if any(e["method"] == n for e in summary)]
    series = {name: ([e["fraction"] for e in summary if e["method"] == name],
                     [e["mae"] for e in summary if e["method"] == name],
                     [e["mae_sd"] for e in summary if e["method"] == name]) for name in shown}
    from echossl.io import atomic_write_bytes

    frac_only = [f for f in columns if f < 1.0]
    atomic_write_bytes(out / "fig6.png", plots.line_plot(
        frac_only, {n: ([m for f, m in zip(x, y) if f < 1.0], [d for f, d in zip(x, sd) if f < 1.0])
                    for n, (x, y, sd) in series.items()},
        "Fig. 6: MAE by labeled fraction", "labeled fraction", "MAE"))
    table = Table(title=f"Table IV: MAE (mean ± sd over {seeds} training seeds; split seed {result['split_seed']})")
    table.add_column("method")
    for f in columns:
        table.add_column("All labels" if f >= 1.0 else f"{f:.4g}")
    for name in shown:
        cellv = {e["fraction"]: e for e in summary if e["method"] == name}
        table.add_row(name, *[f"{cellv[f]['mae']:.2f} ± {cellv[f]['mae_sd']:.2f}" if f in cellv else "-"
                              for f in columns])
    Console().print(table)
    print_claims(claims, [])
    return result


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


def attention_clips(n_frames: int, targets, length: int, period: int) -> list[tuple[int, dict]]:
    """Clips whose sampled frames include each target frame exactly: ``[(start, {frame: k})]``.

    One computation gives both the clip start and every target's position ``k``
    inside it (``start + period * k == frame``), so a start clamped at the end of
    the video cannot shift the positions. ED and ES share one clip when their gap
    is a multiple of ``period`` and fits in it; otherwise (an odd gap at period 2)
    each gets its own clip. A clip starts one period before its first target when
    it can, as the reference's saliency clips do.

    Args:
        n_frames: frames in the video.
        targets: frame indices (e.g. ``(ed, es)``), each ``< n_frames``.
    """
    from echossl.data import sampling

    last = int(sampling.all_starts(n_frames, length, period)[-1])
    span = period * (length - 1)

    def start_for(frames: list[int]) -> int | None:
        lo, hi = min(frames), max(frames)
        if any((f - lo) % period for f in frames) or hi - lo > span:
            return None
        # starts aligned with the targets, inside the video, whose clip reaches the last target
        js = [j for j in range(lo // period + 1) if lo - period * j <= last and lo - period * j + span >= hi]
        return lo - period * min(js, key=lambda j: abs(j - 1)) if js else None

    targets = sorted({int(f) for f in targets})
    start = start_for(targets)
    groups = [targets] if start is not None else [[f] for f in targets]
    out = []
    for group in groups:
        s = start_for(group) if len(groups) > 1 else start
        if s is None:  # unreachable for valid frames: a single frame always has an aligned start
            raise ValueError(f"no clip of {length} frames at period {period} holds frame {group} of {n_frames}")
        out.append((s, {f: (f - s) // period for f in group}))
    return out


def _attention(data: Path, split, cfg: dict, ef_runs: dict):
    """Dice between the top 5% SmoothGrad pixels and the LV on ED and ES frames (Table II)."""
    from echossl.data.echonet import ed_es_frames, read_tracings, trace_mask
    from echossl.evaluation.saliency import saliency_dice, smoothgrad

    traces = read_tracings(data)
    names = split.test[: cfg["saliency"]["videos"]]
    ef = cfg["ef"]
    out, png = {}, None
    for row, run in ef_runs.items():
        module, hp = pipe.load_ef_model(best_checkpoint(run))
        in_ch = module.net.stem[0].in_channels
        masks_dir = hp.get("masks_dir") if in_ch == 4 else None
        ds = _FixedStartClips(data, "TEST", filenames=names, length=ef["length"], period=ef["period"], clips="all",
                              mean=hp["norm"]["mean"], std=hp["norm"]["std"], size=hp["norm"]["size"],
                              masks_dir=masks_dir, warn=False)
        dices = []
        for i, name in enumerate(ds.filenames):
            ed, es = ed_es_frames(traces[name])
            height, width = int(ds.filelist.iloc[i]["FrameHeight"]), int(ds.filelist.iloc[i]["FrameWidth"])
            for start, positions in attention_clips(int(ds.n_frames[i]), (ed, es), ef["length"], ef["period"]):
                ds.start = start
                clip = ds[i]["video"][0]
                sal = smoothgrad(module.net, clip, n_samples=cfg["saliency"]["samples"], sigma=cfg["saliency"]["sigma"])
                h, w = clip.shape[-2:]
                masks = {}
                for f, k in positions.items():
                    full = trace_mask(traces[name][f], height, width)
                    # centre-aligned, like the frames' bilinear resize (issue 13 item 4)
                    masks[k] = torch.nn.functional.interpolate(torch.from_numpy(full)[None, None].float(),
                                                               size=(h, w), mode="nearest-exact")[0, 0].numpy() > 0.5
                dices += list(saliency_dice(sal[:3], masks).values())
                if png is None and row == "video+seg+css+dist":
                    k = min(masks)
                    frame = clip[:3, k].permute(1, 2, 0).numpy()
                    frame = (255 * (frame - frame.min()) / (np.ptp(frame) + 1e-8)).astype(np.uint8)
                    png = plots.saliency_overlay(frame, sal[:3, k].abs().amax(0).numpy(), masks[k], name)
        out[row] = {"attention_dice": float(np.mean(dices)), "attention_dice_ci95": mean_ci(dices)}
    return out, png


class _FixedStartClips(EchoNetDynamic):
    """EchoNetDynamic returning the one clip that starts at ``self.start`` (shape ``(1, C, T, H, W)``)."""

    start = 0

    def _starts(self, n: int) -> np.ndarray:
        return np.asarray([self.start], dtype=np.int64)


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
