"""CLI of mrjet-jigsaw-color-ssl: ``simulate mrjet``, ``pretrain jigsaw``, ``train mrjet``, ``reproduce mrjet``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from echossl.cli.common import (
    Compile, Threads, Accelerator, ConfigFile, Data, Devices, Init, LabeledFraction, MaxEpochs, MaxSteps, NumNodes, Out,
    Precision, Preset, Resume, Seed, Strategy, Strict, require_dir, resolve, trainer_options,
)


def _options(cfg: dict, section: str, **flags):
    # the mrjet settings live under one top-level key; the engine needs the run's seed too
    return trainer_options({**cfg["mrjet"], "seed": cfg["seed"]}, section, **flags)


def _print_metrics(path: Path) -> None:
    import json

    from rich.console import Console

    metrics = json.loads(path.read_text())
    Console().print(f"[bold]{path.parent}[/bold] " + ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items()
        if not k.endswith("_ci95")))


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


def pretrain_jigsaw_cmd(
    data: Data, out: Out,
    color: Annotated[bool, typer.Option("--color/--no-color", help="Add the colour-tolerance loss L_c (eq. 5).")] = True,
    preset: Preset = "cpu", config: ConfigFile = None, max_epochs: MaxEpochs = None, max_steps: MaxSteps = None,
    seed: Seed = None, labeled_fraction: LabeledFraction = None, init: Init = None, resume: Resume = False,
    devices: Devices = "1", accelerator: Accelerator = "cpu", num_nodes: NumNodes = 1, strategy: Strategy = "auto",
    precision: Precision = "32-true", compile_: Compile = False, threads: Threads = None, strict: Strict = False,
):
    """Jigsaw (structure recovery, eq. 4) + colour-tolerance (eq. 5) pre-training on TRAIN frames."""
    from echossl.pipelines.mrjet import pretrain_jigsaw

    require_dir(data)
    cfg = resolve(preset, config, seed=seed, labeled_fraction=labeled_fraction)
    opts = _options(cfg, "jigsaw", max_epochs=max_epochs, max_steps=max_steps, resume=resume, devices=devices,
                    accelerator=accelerator, num_nodes=num_nodes, strategy=strategy, precision=precision, compile_=compile_, threads=threads)
    run = pretrain_jigsaw(data, out, cfg, opts, color=color, init=init, strict=strict)
    _print_metrics(run / "metrics.json")


def train_mrjet_cmd(
    data: Data, out: Out, preset: Preset = "cpu", config: ConfigFile = None, max_epochs: MaxEpochs = None,
    max_steps: MaxSteps = None, seed: Seed = None, labeled_fraction: LabeledFraction = None,
    init: Annotated[Optional[Path], typer.Option("--init", help="A jigsaw run (or checkpoint) whose backbone initialises phi.")] = None,
    resume: Resume = False, devices: Devices = "1", accelerator: Accelerator = "cpu", num_nodes: NumNodes = 1,
    strategy: Strategy = "auto", precision: Precision = "32-true", compile_: Compile = False, threads: Threads = None, strict: Strict = False,
):
    """Max-MR-frame recognition (eq. 8) + LSTM jet segmentation on max frames (eqs. 9-10)."""
    from echossl.pipelines.mrjet import train_mrjet

    require_dir(data)
    cfg = resolve(preset, config, seed=seed, labeled_fraction=labeled_fraction)
    opts = _options(cfg, "train", max_epochs=max_epochs, max_steps=max_steps, resume=resume, devices=devices,
                    accelerator=accelerator, num_nodes=num_nodes, strategy=strategy, precision=precision, compile_=compile_, threads=threads)
    if init is not None and not init.exists():
        from echossl.errors import EchosslError

        raise EchosslError(f"--init {init} does not exist")
    run = train_mrjet(data, out, cfg, opts, init=init, strict=strict)
    _print_metrics(run / "metrics.json")


def reproduce_mrjet_cmd(
    out: Annotated[Path, typer.Option("--out", help="Folder for the data, runs and results table.")] = Path("mrjet-reproduce"),
    data: Annotated[Optional[Path], typer.Option("--data", help="An MR-jet folder (default: simulate one into OUT/data).")] = None,
    videos: Annotated[Optional[int], typer.Option("--videos", help="Videos to simulate (default: the preset's).")] = None,
    preset: Preset = "cpu", config: ConfigFile = None, max_epochs: MaxEpochs = None, seed: Seed = None,
    devices: Devices = "1", accelerator: Accelerator = "cpu", num_nodes: NumNodes = 1, strategy: Strategy = "auto",
    precision: Precision = "32-true", compile_: Compile = False, threads: Threads = None, strict: Strict = False,
):
    """Random init vs jigsaw vs jigsaw+colour pre-training at 10% and 100% labels (TEST split table)."""
    from rich.console import Console
    from rich.table import Table

    from echossl.pipelines.mrjet import TABLE_METRICS, reproduce_mrjet

    if data is not None:
        require_dir(data)
    cfg = resolve(preset, config, seed=seed)
    opts = _options(cfg, "train", max_epochs=max_epochs, max_steps=None, resume=False, devices=devices,
                    accelerator=accelerator, num_nodes=num_nodes, strategy=strategy, precision=precision, compile_=compile_, threads=threads)
    result = reproduce_mrjet(out, cfg, opts, data=data, videos=videos, strict=strict)
    table = Table(title=f"MR jet, TEST split ({result['data']})")
    for col in ("labels", "init", *TABLE_METRICS):
        table.add_column(col)
    for r in result["rows"]:
        table.add_row(f"{100 * r['labeled_fraction']:.0f}% ({r.get('labeled_videos')})", r["init"],
                      *("-" if r.get(k) is None else f"{r[k]:.3f}" for k in TABLE_METRICS))
    Console().print(table)
    Console().print(f"wrote {Path(out) / 'results.json'} and {Path(out) / 'results.md'} in {result['seconds']} s")


def register(*, simulate, pretrain, train, reproduce, **_) -> None:
    simulate.command("mrjet")(simulate_mrjet_cmd)
    pretrain.command("jigsaw")(pretrain_jigsaw_cmd)
    train.command("mrjet")(train_mrjet_cmd)
    reproduce.command("mrjet")(reproduce_mrjet_cmd)
