"""UniLVSeg commands: ``pretrain temporal-masking``, ``train video-seg``, ``reproduce unilvseg``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from echossl.cli.common import (
    Compile, Threads, Accelerator, ConfigFile, Data, Devices, Init, LabeledFraction, MaxEpochs, MaxSteps, NumNodes, Out,
    Precision, Preset, Resume, Seed, Strategy, Strict, require_dir, resolve, trainer_options,
)

Arch = Annotated[str, typer.Option("--arch", help="unet3d (3D U-Net) or superimage (2D U-Net on tiled frames).")]


def _setup(data, preset, config, seed, labeled_fraction, section, strict, **flags):
    """Resolved config (UniLVSeg's own labeled fraction unless --labeled-fraction), trainer options, split."""
    from echossl.pipelines.semisupervised_ef import split_data
    from echossl.pipelines.unilvseg import settings

    require_dir(data)
    cfg = resolve(preset, config, seed=seed, labeled_fraction=labeled_fraction)
    if labeled_fraction is None:
        cfg["labeled_fraction"] = float(settings(cfg)["labeled_fraction"])
    opts = trainer_options({"seed": cfg["seed"], section: settings(cfg)[section]}, section, **flags)
    return cfg, opts, split_data(data, cfg, strict=strict)


def pretrain_cmd(data: Data, out: Out, arch: Arch = "unet3d",
                 mask_ratio: Annotated[Optional[float], typer.Option("--mask-ratio", help="Share of whole frames hidden (default 0.6).")] = None,
                 preset: Preset = "cpu", config: ConfigFile = None, max_epochs: MaxEpochs = None,
                 max_steps: MaxSteps = None, seed: Seed = None, labeled_fraction: LabeledFraction = None,
                 init: Init = None, resume: Resume = False, devices: Devices = "1", accelerator: Accelerator = "cpu",
                 num_nodes: NumNodes = 1, strategy: Strategy = "auto", precision: Precision = "32-true", compile_: Compile = False, threads: Threads = None,
                 strict: Strict = False):
    """Self-supervised temporal masking: reconstruct clips whose frames were partly zeroed (UniLVSeg eq. 1)."""
    from echossl.pipelines.unilvseg import pretrain

    cfg, opts, split = _setup(data, preset, config, seed, labeled_fraction, "pretrain", strict,
                              max_epochs=max_epochs, max_steps=max_steps, resume=resume, devices=devices,
                              accelerator=accelerator, num_nodes=num_nodes, strategy=strategy, precision=precision, compile_=compile_, threads=threads)
    run = pretrain(data, out, cfg, opts, arch=arch, mask_ratio=mask_ratio, init=_init(init), split=split)
    _report(run)


def train_cmd(data: Data, out: Out, arch: Arch = "unet3d",
              preset: Preset = "cpu", config: ConfigFile = None, max_epochs: MaxEpochs = None,
              max_steps: MaxSteps = None, seed: Seed = None, labeled_fraction: LabeledFraction = None,
              init: Init = None, resume: Resume = False, devices: Devices = "1", accelerator: Accelerator = "cpu",
              num_nodes: NumNodes = 1, strategy: Strategy = "auto", precision: Precision = "32-true", compile_: Compile = False, threads: Threads = None,
              strict: Strict = False):
    """Video LV segmentation from the traced ED/ES frames only (UniLVSeg eqs. 2-6); --init a temporal-masking run."""
    from echossl.pipelines.unilvseg import train

    cfg, opts, split = _setup(data, preset, config, seed, labeled_fraction, "train", strict,
                              max_epochs=max_epochs, max_steps=max_steps, resume=resume, devices=devices,
                              accelerator=accelerator, num_nodes=num_nodes, strategy=strategy, precision=precision, compile_=compile_, threads=threads)
    run = train(data, out, cfg, opts, arch=arch, init=_init(init), split=split)
    _report(run)


def reproduce_cmd(out: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("outputs/unilvseg"),
                  data: Annotated[Optional[Path], typer.Option("--data", help="EchoNet-format data (default: simulate).")] = None,
                  preset: Preset = "cpu", config: ConfigFile = None, seed: Seed = None,
                  labeled_fraction: LabeledFraction = None,
                  videos: Annotated[Optional[int], typer.Option("--videos", help="Videos to simulate (default: the preset's).")] = None,
                  accelerator: Accelerator = "cpu", devices: Devices = "1"):
    """2D frame-by-frame vs. 3D U-Net (scratch, temporal masking) vs. super image on the same data."""
    from echossl.pipelines.unilvseg import reproduce_unilvseg

    if data is not None:
        require_dir(data)
    reproduce_unilvseg(out, data, preset, config, accelerator=accelerator, devices=devices, videos=videos,
                       seed=seed, labeled_fraction=labeled_fraction)


def _init(init: Path | None) -> str | None:
    if init is None:
        return None
    if not init.exists():
        from echossl.errors import EchosslError

        raise EchosslError(f"--init {init} does not exist")
    return str(init)


def _report(run: Path) -> None:
    import json

    from rich.console import Console

    metrics = json.loads((Path(run) / "metrics.json").read_text())
    shown = {k: v for k, v in metrics.items() if not k.endswith("_ci95")}
    Console().print(f"[bold]{run}[/bold] " + ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in shown.items()))


def register(*, pretrain: typer.Typer, train: typer.Typer, reproduce: typer.Typer, **_) -> None:
    pretrain.command("temporal-masking")(pretrain_cmd)
    train.command("video-seg")(train_cmd)
    reproduce.command("unilvseg")(reproduce_cmd)
