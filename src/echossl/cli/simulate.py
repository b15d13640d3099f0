"""``echossl simulate``: write synthetic data sets in real formats.

Option values are checked by the simulators, which raise
:class:`echossl.errors.ConfigError` (one sentence, exit code 1).
"""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(no_args_is_help=True)


@app.command("echonet")
def echonet(
    out: Path = typer.Argument(..., help="Output folder (FileList.csv, VolumeTracings.csv, Videos/)."),
    videos: int = typer.Option(..., "--videos", help="Number of videos."),
    seed: int = typer.Option(0, "--seed", help="Base seed; video i depends only on (seed, i)."),
    size: int = typer.Option(112, "--size", help="Frame height and width in pixels."),
    style: str = typer.Option(
        "default", "--style", help="Look: default (varied, with artefacts) | easy (clean, fast tests) | shifted."
    ),
    irregular: float = typer.Option(0.1, "--irregular", help="Fraction of videos with irregular beats."),
) -> None:
    """Simulate videos in EchoNet-Dynamic's layout, with exact LV ground truth."""
    import time

    from rich.console import Console

    from echossl.simulate.echonet import simulate_echonet

    start = time.perf_counter()
    filelist = simulate_echonet(out, videos, seed=seed, size=size, style=style, irregular=irregular, progress=True)
    counts = filelist["Split"].value_counts().to_dict()
    Console(stderr=True).print(
        f"wrote {len(filelist)} videos to {out} "
        f"(TRAIN {counts.get('TRAIN', 0)}, VAL {counts.get('VAL', 0)}, TEST {counts.get('TEST', 0)}) "
        f"in {time.perf_counter() - start:.1f} s"
    )


@app.command("camus")
def camus(
    out: Path = typer.Argument(..., help="Output folder (patientNNNN/ subfolders)."),
    patients: int = typer.Option(..., "--patients", help="Number of patients."),
    seed: int = typer.Option(0, "--seed", help="Base seed; patient p depends only on (seed, p)."),
    style: str = typer.Option("default", "--style", help="Look: default (varied, with artefacts) | easy (clean)."),
) -> None:
    """Simulate 4CH half sequences in the CAMUS NIfTI layout, with labels."""
    from rich.console import Console

    from echossl.simulate.camus import simulate_camus

    infos = simulate_camus(out, patients, seed=seed, progress=True, style=style)
    Console(stderr=True).print(f"wrote {len(infos)} patients to {out}")
