"""``echossl report RUN [RUN ...] --out report.html``: an HTML report of any run folder(s)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer


def report_cmd(runs: Annotated[list[Path], typer.Argument(metavar="RUN", help="Run, evaluate, demo or reproduce output folder(s); several are compared side by side.")],
               out: Annotated[Path, typer.Option("--out", help="The .html file to write; figures go to figures/ beside it.")] = Path("report.html"),
               data: Annotated[Optional[Path], typer.Option("--data", help="The data folder, when the run does not record it (per-video Dice, surface distances, overlays).")] = None,
               title: Annotated[Optional[str], typer.Option("--title", help="Heading of the report.")] = None,
               max_videos: Annotated[Optional[int], typer.Option("--max-videos", min=1, help="Score at most N videos per segmentation run.")] = None):
    """Write one self-contained HTML report: provenance, metrics with CIs, and the plots of each task family."""
    from rich.console import Console

    from echossl.errors import EchosslError
    from echossl.evaluation.run_report import write_run_report

    if data is not None and not data.is_dir():
        raise EchosslError(f"--data {data} is not a folder")
    path = write_run_report(runs, out, data=data, title=title, max_videos=max_videos)
    figures = sorted((path.parent / "figures").glob("*.png"))
    Console(stderr=True).print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, {len(figures)} figures "
                               f"also as PNG and SVG in {path.parent / 'figures'})")


def register(app: typer.Typer, **_) -> None:
    app.command("report")(report_cmd)
