"""``echossl data check DIR [--json FILE]``: summary table, every problem, exit 0/1."""

from __future__ import annotations

import json
from pathlib import Path

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False)


@app.callback()
def _group() -> None:
    """Check a data folder."""


@app.command()
def check(
    directory: Path = typer.Argument(..., metavar="DIR", help="EchoNet-Dynamic or CAMUS folder."),
    json_out: Path = typer.Option(None, "--json", metavar="FILE", help="Also write the report as JSON."),
) -> None:
    """Check that DIR is a usable EchoNet-Dynamic or CAMUS folder; exit 1 if not."""
    from rich.console import Console
    from rich.table import Table

    from echossl.data.check import check_dir
    from echossl.errors import DataError

    out = Console(highlight=False)
    err_console = Console(stderr=True, highlight=False)
    try:
        rep = check_dir(directory)
    except DataError as err:
        err_console.print(f"error: {err}", markup=False)
        raise typer.Exit(1) from None

    table = Table(title=f"{rep['format']} data in {rep['path']}", title_justify="left")
    table.add_column("item")
    table.add_column("value", justify="right")
    counts = rep["counts"]
    for key in ("TRAIN", "VAL", "TEST", "total", "usable"):
        if key in counts:
            table.add_row(f"videos {key}" if key in ("total", "usable") else f"split {key}",
                          str(counts[key]))
    for key, label in (("ef", "EF %"), ("frames", "frames"), ("fps", "fps")):
        s = rep.get(key) or {}  # formats without EF or video statistics leave these out
        if s.get("mean") is not None:
            table.add_row(label, f"{s['mean']:.1f} ± {s['sd']:.1f} [{s['min']:g}, {s['max']:g}]")
    table.add_row("errors", str(rep["errors"]))
    table.add_row("warnings", str(rep["warnings"]))
    out.print(table)
    for p in rep["problems"]:
        # one line per problem (soft_wrap), so the output greps well
        out.print(f"{p['severity']}: {p['text']}", markup=False, soft_wrap=True)
    if json_out is not None:
        from echossl.io import atomic_write_text

        atomic_write_text(json_out, json.dumps(rep, indent=2))
    if rep["usable"]:
        out.print("usable: yes")
    else:
        out.print("usable: no" + ("" if rep["errors"] else " (no usable video)"))
        raise typer.Exit(1)
