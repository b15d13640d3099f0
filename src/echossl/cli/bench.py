"""``echossl bench``: speed of the data path, inference, training steps, DDP and memory; ``--paper``: the
``paper`` preset's three models for a few hundred steps each (samples/s and loss curve)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from echossl.cli.common import Accelerator


def bench_cmd(out: Annotated[Optional[Path], typer.Option(
                  "--out", help="JSON file to write (default outputs/bench.json, or outputs/bench_paper.json with "
                                "--paper; plots go next to it).")] = None,
              quick: Annotated[bool, typer.Option("--quick", help="Fewer videos and steps (about 1.5 minutes on 2 quiet CPU cores).")]
              = False,
              paper: Annotated[bool, typer.Option(
                  "--paper", help="Train DeepLabV3-ResNet50 + CSS, R(2+1)D-18 and the distillation at the paper "
                                  "preset on simulated 112-px data; print samples/s and the loss curves (a GPU check).")]
              = False,
              steps: Annotated[Optional[int], typer.Option(
                  "--steps", min=1, help="With --paper: timed training steps per model (default 300).")] = None,
              accelerator: Accelerator = "auto",
              threads: Annotated[Optional[int], typer.Option("--threads", min=1, help="CPU threads (torch).")] = None):
    """Measure cache vs OpenCV, batched vs naive EF inference, training throughput, DDP scaling and memory."""
    from rich.console import Console

    console = Console(stderr=True)
    if paper:
        from echossl.bench.paper import DEFAULT_STEPS, print_paper_summary, run_paper_bench

        out = out or Path("outputs/bench_paper.json")
        result = run_paper_bench(out, steps=steps or DEFAULT_STEPS, accelerator=accelerator, threads=threads,
                                 progress=lambda text: console.log(text))
        print_paper_summary(result)
        console.print(f"wrote {out}")
        return
    if steps is not None:
        raise typer.BadParameter("--steps applies to --paper only", param_hint="--steps")
    from echossl.bench import run_bench
    from echossl.bench.report import print_summary

    out = out or Path("outputs/bench.json")
    result = run_bench(out, quick=quick, progress=lambda text: console.log(text))
    print_summary(result)
    console.print(f"wrote {out}")


def register(*, app, **_):
    app.command("bench")(bench_cmd)
