"""``echossl convert dicom IN... OUT``: DICOM ultrasound cines to the EchoNet-Dynamic layout."""

from __future__ import annotations

from pathlib import Path

import typer

convert_app = typer.Typer(no_args_is_help=True, add_completion=False)
app = convert_app  # the group, also usable on its own


@convert_app.callback()
def _group() -> None:
    """Convert clinical files into echossl's data layouts."""


@convert_app.command("dicom")
def dicom_cmd(
    paths: list[Path] = typer.Argument(..., metavar="IN... OUT",
                                       help="DICOM files or folders (searched recursively, any file "
                                            "names), then the output folder."),
    size: int = typer.Option(112, "--size", help="Output frame side in pixels."),
    split: str = typer.Option("TEST", "--split", help="Split written to FileList.csv: TRAIN, VAL or TEST."),
    keep_aspect: bool = typer.Option(False, "--keep-aspect",
                                     help="Pad the crop to a square before resizing instead of squashing it."),
    workers: int = typer.Option(1, "--workers", min=1, help="Files converted in parallel (processes)."),
    mapping: Path = typer.Option(None, "--mapping", metavar="FILE",
                                 help="Also write FileName -> SOPInstanceUID, source path to FILE "
                                      "(identifying; must lie outside OUT)."),
) -> None:
    """Convert DICOM ultrasound cines into Videos/*.avi, FileList.csv and Spacing.csv.

    Each file is decoded (JPEG baseline, JPEG-LS, JPEG 2000, RLE or native), cropped to its ultrasound region or detected fan, blacked out outside the fan, resized, and named by a hash of its SOPInstanceUID; no patient value is written.

    Files that cannot be converted are refused by name and the others still written; the exit code is then 1. See docs/clinical-data.md.
    """
    from rich.console import Console
    from rich.table import Table

    from echossl.data.dicom import convert_dicom

    if len(paths) < 2:
        raise typer.BadParameter("give at least one input and then the output folder OUT.",
                                 param_hint="IN... OUT")
    *inputs, out = paths
    summary = convert_dicom(inputs, out, size=size, split=split, keep_aspect=keep_aspect,
                            workers=workers, mapping=mapping)
    console = Console(highlight=False)
    err = Console(stderr=True, highlight=False)
    table = Table(title=f"DICOM conversion into {out}", title_justify="left")
    for column, justify in (("file", "left"), ("result", "left"), ("frames", "right"),
                            ("fps", "right"), ("cm/pixel (x, y)", "right"), ("crop", "left")):
        table.add_column(column, justify=justify, overflow="fold")
    for row in summary.converted:
        spacing = row["spacing_cm"]
        table.add_row(str(row["source"]), row["name"], str(row["frames"]), f"{row['fps']:.1f}",
                      f"{spacing[0]:.4f}, {spacing[1]:.4f}" if spacing else "unknown",
                      "ultrasound region" if row["geometry"] == "regions" else "detected fan")
    for source, reason in summary.refused:
        why = reason.removeprefix(f"{source}: ")  # the table's first column names the file already
        table.add_row(str(source), f"refused: {why}", "", "", "", "")
    console.print(table)
    console.print(f"converted {len(summary.converted)}, refused {len(summary.refused)}", markup=False)
    for _, reason in summary.refused:
        err.print(f"refused: {reason}", markup=False, soft_wrap=True)
    if summary.exit_code:
        raise typer.Exit(summary.exit_code)


def register(*, app, **_) -> None:
    """Add the ``convert`` group to the top-level app."""
    app.add_typer(convert_app, name="convert", help="Convert clinical files (DICOM) into echossl's data layouts.")
