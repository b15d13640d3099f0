"""``echossl bench``: speed of the data path, inference, training steps, DDP and memory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def bench_cmd(out: Annotated[Path, typer.Option("--out", help="JSON file to write (plots go next to it).")]
              = Path("outputs/bench.json"),
              quick: Annotated[bool, typer.Option("--quick", help="Fewer videos and steps (about 1.5 minutes on 2 quiet CPU cores).")]
              = False):
    """Measure cache vs OpenCV, batched vs naive EF inference, training throughput, DDP scaling and memory."""
    from rich.console import Console

    from echossl.bench import run_bench
    from echossl.bench.report import print_summary

    console = Console(stderr=True)
    result = run_bench(out, quick=quick, progress=lambda text: console.log(text))
    print_summary(result)
    console.print(f"wrote {out}")


def register(*, app, **_):
    app.command("bench")(bench_cmd)
