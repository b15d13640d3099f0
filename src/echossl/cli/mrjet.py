"""CLI of mrjet-jigsaw-color-ssl: ``simulate mrjet``, ``pretrain jigsaw``, ``train mrjet``, ``reproduce mrjet``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from echossl.cli.common import Data, Out, RunFlags, print_metrics, require_dir, run_command


def _options(flags: RunFlags, cfg: dict, section: str):
    # the mrjet settings live under one top-level key
    return flags.trainer(cfg, cfg["mrjet"].get(section, {}))


def simulate_mrjet_cmd(
    out: Path = typer.Argument(..., help="Output folder (MRJetList.csv, Videos/, Masks/)."),
    videos: int = typer.Option(..., "--videos", help="Number of videos."),
    seed: int = typer.Option(0, "--seed", help="Base seed; video i depends only on (seed, i)."),
    size: int = typer.Option(112, "--size", help="Frame height and width in pixels."),
    no_jet: float = typer.Option(0.2, "--no-jet", help="Share of videos without a regurgitant jet."),
) -> None:
    """Simulate colour-Doppler apical videos with MR jets, per-frame jet masks, max frames and severity."""
    import time

    from rich.console import Console

    from echossl.simulate.mrjet import simulate_mrjet

    start = time.perf_counter()
    table = simulate_mrjet(out, videos, seed=seed, size=size, no_jet=no_jet, progress=True)
    splits = table["Split"].value_counts().to_dict()
    grades = table["Severity"].value_counts().to_dict()
    Console(stderr=True).print(
        f"wrote {len(table)} videos to {out} (TRAIN {splits.get('TRAIN', 0)}, VAL {splits.get('VAL', 0)}, "
        f"TEST {splits.get('TEST', 0)}; " + ", ".join(f"{k} {v}" for k, v in sorted(grades.items()))
        + f") in {time.perf_counter() - start:.1f} s")


@run_command()
def pretrain_jigsaw_cmd(
    data: Data, out: Out,
    color: Annotated[bool, typer.Option("--color/--no-color", help="Add the colour-tolerance loss L_c (eq. 5).")] = True,
    *, flags: RunFlags,
):
    """Jigsaw (structure recovery, eq. 4) + colour-tolerance (eq. 5) pre-training on TRAIN frames."""
    from echossl.pipelines.mrjet import pretrain_jigsaw

    require_dir(data)
    cfg = flags.config()
    run = pretrain_jigsaw(data, out, cfg, _options(flags, cfg, "jigsaw"), color=color, init=flags.init_path,
                          strict=flags.strict)
    print_metrics(run)


@run_command()
def train_mrjet_cmd(data: Data, out: Out, *, flags: RunFlags):
    """Max-MR-frame recognition (eq. 8) + LSTM jet segmentation on max frames (eqs. 9-10); --init a jigsaw run."""
    from echossl.pipelines.mrjet import train_mrjet

    require_dir(data)
    init = flags.init_path
    cfg = flags.config()
    run = train_mrjet(data, out, cfg, _options(flags, cfg, "train"), init=init, strict=flags.strict)
    print_metrics(run)


@run_command("config", "trainer", "strict")
def reproduce_mrjet_cmd(
    out: Annotated[Path, typer.Option("--out", help="Folder for the data, runs and results table.")] = Path("mrjet-reproduce"),
    data: Annotated[Optional[Path], typer.Option("--data", help="An MR-jet folder (default: simulate one into OUT/data).")] = None,
    videos: Annotated[Optional[int], typer.Option("--videos", help="Videos to simulate (default: the preset's).")] = None,
    *, flags: RunFlags,
):
    """Random init vs jigsaw vs jigsaw+colour pre-training at 10% and 100% labels (TEST split table)."""
    from rich.console import Console
    from rich.table import Table

    from echossl.pipelines.mrjet import TABLE_METRICS, print_claims, reproduce_mrjet

    if data is not None:
        require_dir(data)
    cfg = flags.config()
    result = reproduce_mrjet(out, cfg, _options(flags, cfg, "train"), data=data, videos=videos, strict=flags.strict)
    table = Table(title=f"MR jet, TEST split ({result['data']}, {result['n_test']} videos; metrics averaged over seeds)")
    for col in ("labels", "init", "seeds", *TABLE_METRICS):
        table.add_column(col)
    for r in result["summary"]:
        table.add_row(f"{100 * r['labeled_fraction']:.0f}% ({r.get('labeled_videos')})", r["init"], str(r["seeds"]),
                      *("-" if r.get(k) is None else f"{r[k]:.3f}" for k in TABLE_METRICS))
    Console().print(table)
    print_claims(result)
    Console().print(f"wrote {Path(out) / 'results.json'} and {Path(out) / 'results.md'} in {result['seconds']} s")


def register(*, simulate, pretrain, train, reproduce, **_) -> None:
    simulate.command("mrjet")(simulate_mrjet_cmd)
    pretrain.command("jigsaw")(pretrain_jigsaw_cmd)
    train.command("mrjet")(train_mrjet_cmd)
    reproduce.command("mrjet")(reproduce_mrjet_cmd)
