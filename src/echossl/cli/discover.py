"""DISCOVER commands: ``pretrain discover`` and ``reproduce discover``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from echossl.cli.common import (
    Compile, Threads, Accelerator, ConfigFile, Data, Devices, Init, LabeledFraction, MaxEpochs, MaxSteps, NumNodes, Out,
    Precision, Preset, Resume, Seed, Strategy, Strict, require_dir, resolve, trainer_options,
)

Variant = Annotated[str, typer.Option("--variant", help="discover (full method), videomae (pixel "
                                      "reconstruction) or video-dino (video self-distillation only).")]
Camus = Annotated[Optional[Path], typer.Option("--camus", help="CAMUS folder for the frozen segmentation "
                                               "protocol (skipped when not given).")]


def pretrain_cmd(data: Data, out: Out, variant: Variant = "discover", camus: Camus = None,
                 preset: Preset = "cpu", config: ConfigFile = None, max_epochs: MaxEpochs = None,
                 max_steps: MaxSteps = None, seed: Seed = None, labeled_fraction: LabeledFraction = None,
                 init: Init = None, resume: Resume = False, devices: Devices = "1", accelerator: Accelerator = "cpu",
                 num_nodes: NumNodes = 1, strategy: Strategy = "auto", precision: Precision = "32-true", compile_: Compile = False, threads: Threads = None,
                 strict: Strict = False):
    """Self-supervised video pre-training (DISCOVER eqs. 1-9, or a baseline), then every protocol on TEST."""
    from echossl.pipelines.discover import pretrain
    from echossl.pipelines.semisupervised_ef import split_data

    require_dir(data)
    if camus is not None:
        require_dir(camus, "CAMUS folder")
    if init is not None and not init.exists():
        from echossl.errors import EchosslError

        raise EchosslError(f"--init {init} does not exist")
    cfg = resolve(preset, config, seed=seed, labeled_fraction=labeled_fraction)
    opts = trainer_options(cfg, "discover", max_epochs=max_epochs, max_steps=max_steps, resume=resume,
                           devices=devices, accelerator=accelerator, num_nodes=num_nodes, strategy=strategy,
                           precision=precision, compile_=compile_, threads=threads)
    split = split_data(data, cfg, strict=strict)
    run = pretrain(data, out, cfg, opts, variant=variant, init=str(init) if init else None, split=split,
                   camus=camus)
    _report(run)


def reproduce_cmd(out: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("outputs/discover"),
                  data: Annotated[Optional[Path], typer.Option("--data", help="EchoNet-format data (default: simulate).")] = None,
                  camus: Annotated[Optional[Path], typer.Option("--camus", help="CAMUS-format data (default: simulate).")] = None,
                  preset: Preset = "cpu", config: ConfigFile = None, max_epochs: MaxEpochs = None,
                  max_steps: MaxSteps = None, seed: Seed = None,
                  methods: Annotated[Optional[str], typer.Option("--methods", help="Comma-separated subset of videomae,video-dino,discover.")] = None,
                  devices: Devices = "1", accelerator: Accelerator = "cpu", num_nodes: NumNodes = 1,
                  strategy: Strategy = "auto", precision: Precision = "32-true", compile_: Compile = False, threads: Threads = None):
    """Random init vs VideoMAE-style vs video-DINO vs DISCOVER on the same data: kNN, probes, fine-tuning,
    segmentation, training memory and inference FLOPs; writes OUT/results.json."""
    from echossl.pipelines.discover import reproduce_discover

    if data is not None:
        require_dir(data)
    if camus is not None:
        require_dir(camus, "CAMUS folder")
    cfg = resolve(preset, config, seed=seed)
    opts = trainer_options(cfg, "discover", max_epochs=max_epochs, max_steps=max_steps, resume=False,
                           devices=devices, accelerator=accelerator, num_nodes=num_nodes, strategy=strategy,
                           precision=precision, compile_=compile_, threads=threads)
    reproduce_discover(out, cfg, opts, data=data, camus=camus,
                       methods=[m.strip() for m in methods.split(",") if m.strip()] if methods else None)


def _report(run: Path) -> None:
    import json

    from rich.console import Console

    metrics = json.loads((Path(run) / "metrics.json").read_text())
    shown = {k: v for k, v in metrics.items() if not k.endswith("_ci95")}
    Console().print(f"[bold]{run}[/bold] " + ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in shown.items()))


def register(*, pretrain: typer.Typer, reproduce: typer.Typer, **_) -> None:
    pretrain.command("discover")(pretrain_cmd)
    reproduce.command("discover")(reproduce_cmd)
