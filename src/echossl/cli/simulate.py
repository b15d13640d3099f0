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


@app.command("calibrate")
def calibrate(
    out: Path = typer.Option(None, "--out", help="Also write the figures to this JSON file."),
    workdir: Path = typer.Option(None, "--workdir", help="Folder for the simulated data and runs (default: a temp dir)."),
    quick: bool = typer.Option(False, "--quick", help="Tiny sizes (a smoke test; the figures mean nothing)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the simulated data and the training runs."),
    threads: int = typer.Option(1, "--threads", help="Torch threads per training run."),
) -> None:
    """Show that the simulated bench discriminates: label gaps, no plane shortcut, CAMUS frozen-random gap."""
    import json
    import tempfile

    from rich.console import Console
    from rich.table import Table

    from echossl.pipelines.calibrate import run_calibrate

    console = Console(stderr=True)
    with tempfile.TemporaryDirectory(prefix="echossl-calibrate-") as tmp:
        result = run_calibrate(workdir or tmp, quick=quick, seed=seed, threads=threads,
                               log=lambda m: console.rule(f"[bold]{m}"))
    table = Table(title=f"simulator calibration ({'quick' if quick else 'full'}, {result['seconds']:.0f} s)")
    for col in ("figure", "value", "target", "pass"):
        table.add_column(col)
    for c in result["checks"]:
        value = "n/a" if c["value"] is None else f"{c['value']:.3f}"
        table.add_row(c["name"], value, c["target"], "yes" if c["pass"] else "NO")
    Console().print(table)
    f = result["figures"]
    Console().print(
        f"seg Dice {f.get('seg_dice_eighth', float('nan')):.3f} (1/8) vs {f.get('seg_dice_all', float('nan')):.3f} (all); "
        f"EF MAE {f.get('ef_mae_eighth', float('nan')):.2f} (1/8) vs {f.get('ef_mae_all', float('nan')):.2f} (all); "
        f"CAMUS Dice {f.get('camus_dice_frozen_random', float('nan')):.3f} (frozen random) vs "
        f"{f.get('camus_dice_trained', float('nan')):.3f} (trained)"
    )
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2, default=float) + "\n")
