"""What ``echossl bench`` writes: the JSON, two plots, and a table on the terminal."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from echossl.io import atomic_write_bytes, atomic_write_text


def throughput_plot(training: dict) -> bytes:
    """Bar chart: training samples/s per model family, data-wait share annotated."""
    from echossl.evaluation.plots import _figure, _png

    names = [f for f, r in training.items() if r.get("samples_per_s")]
    rates = [training[f]["samples_per_s"] for f in names]
    fig, ax = _figure(6.0, 3.6)
    bars = ax.bar(names, rates, color="#4c72b0")
    for bar, f in zip(bars, names):
        ax.annotate(f"wait {100 * training[f]['data_wait_share']:.0f}%", (bar.get_x() + bar.get_width() / 2,
                    bar.get_height()), ha="center", va="bottom", fontsize=7)
    ax.set_ylabel("training samples / s (cpu preset)")
    ax.set_yscale("log")
    ax.set_title("Training throughput per model family")
    ax.tick_params(axis="x", labelrotation=20, labelsize=8)
    return _png(fig)


def ddp_loss_plot(runs: dict) -> bytes:
    """Training loss against samples seen, one curve per process/thread layout."""
    from echossl.evaluation.plots import _figure, _png

    fig, ax = _figure(5.5, 3.6)
    for name, r in runs.items():
        curve = r.get("loss_curve")
        if not curve:
            continue
        loss = np.asarray(curve["loss"], dtype=float)
        ax.plot(curve["samples_per_step"] * np.arange(1, len(loss) + 1), loss, marker="o", ms=3, label=name)
    ax.set_xlabel("samples seen")
    ax.set_ylabel("training loss (EF, rank 0)")
    ax.set_title("One process vs 2-process DDP")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _png(fig)


def write_outputs(result: dict, out_json: Path) -> None:
    stem = out_json.with_suffix("")
    atomic_write_bytes(f"{stem}_throughput.png", throughput_plot(result["training"]))
    atomic_write_bytes(f"{stem}_ddp_loss.png", ddp_loss_plot(result["scaling"]["runs"]))
    atomic_write_text(out_json, json.dumps(result, indent=1, default=float))


def _fmt(value, pattern="{:.2f}") -> str:
    return "—" if value is None else pattern.format(value)


def print_summary(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title="echossl bench: measured ratios (same data, same machine)")
    for col in ("measurement", "figure", "target", "met"):
        table.add_column(col)
    load, inf, scale = result["loading"], result["inference"], result["scaling"]
    t = result["targets"]

    def met(key):
        m = t[key]["met"]
        return "—" if m is None else ("yes" if m else "[red]no[/red]")

    table.add_row("clip loading: cache / OpenCV", f"{load['ratio']:.1f}x "
                  f"({load['cache_clips_per_s']:.0f} vs {load['opencv_clips_per_s']:.0f} clips/s)", ">= 5x",
                  met("cache_vs_opencv_>=5x"))
    table.add_row("EF inference: batched / naive", f"{inf['ratio']:.1f}x (max |dEF| "
                  f"{inf['max_abs_ef_difference']:.1e})", ">= 2x", met("inference_vs_naive_>=2x"))
    table.add_row("2-process DDP / 1 process (1 thread each)", _fmt(scale["ddp_speedup"], "{:.2f}x"), ">= 1.6x",
                  met("ddp_2proc_>=1.6x"))
    for family, r in result["training"].items():
        if "error" in r:
            table.add_row(f"train {family}", f"[red]failed: {r['error'][:80]}[/red]", "", "")
            continue
        table.add_row(f"train {family}: samples/s, data wait (between-step work), peak RSS",
                      f"{r['samples_per_s']:.1f}/s, {100 * r['data_wait_share']:.1f}% "
                      f"({100 * r['between_steps_share']:.0f}%), {r['peak_rss_mb']:.0f} MB",
                      "wait < 10%", met(f"{family}_data_wait_<10%"))
        if family in result.get("training_1_worker", {}):
            w = result["training_1_worker"][family]
            table.add_row("  same, 1 DataLoader worker", "failed" if "error" in w else
                          f"{w['samples_per_s']:.1f}/s, {100 * w['data_wait_share']:.1f}%", "wait < 10%",
                          met(f"{family}_data_wait_1_worker_<10%"))
        if "loss_share" in r:
            table.add_row(f"  {r['loss']} share of step", _fmt(r["loss_share"] and 100 * r["loss_share"], "{:.1f}%"),
                          "<= 5%", met(f"{family}_loss_<=5%"))
    console.print(table)
    console.print(f"{result['seconds']:.0f} s in all")
