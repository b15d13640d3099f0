"""Options shared by every training command (CONTRACT.md "Common flags")."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from echossl.config import load_config
from echossl.engine import TrainerOptions
from echossl.errors import EchosslError

Data = Annotated[Path, typer.Option("--data", help="Data folder (EchoNet-Dynamic layout).")]
Out = Annotated[Path, typer.Option("--out", help="Run folder to create.")]
Preset = Annotated[str, typer.Option("--preset", help="Settings preset: cpu or paper.")]
ConfigFile = Annotated[Optional[Path], typer.Option("--config", help="YAML file merged over the preset.")]
MaxEpochs = Annotated[Optional[int], typer.Option("--max-epochs", help="Epochs (default: the preset's).")]
MaxSteps = Annotated[Optional[int], typer.Option("--max-steps", help="Stop after this many optimizer steps.")]
Seed = Annotated[Optional[int], typer.Option("--seed", help="Seed for the labeled split and training.")]
LabeledFraction = Annotated[Optional[float], typer.Option("--labeled-fraction", help="Share of TRAIN with labels.")]
Init = Annotated[Optional[Path], typer.Option("--init", help="Initial weights (checkpoint or safetensors).")]
Resume = Annotated[bool, typer.Option("--resume", help="Continue from RUN/checkpoints/last.ckpt.")]
Devices = Annotated[str, typer.Option("--devices", help="Passed to Lightning: a count, a list, or auto.")]
Accelerator = Annotated[str, typer.Option("--accelerator", help="cpu, gpu or auto.")]
NumNodes = Annotated[int, typer.Option("--num-nodes", help="Passed to Lightning.")]
Strategy = Annotated[str, typer.Option("--strategy", help="Passed to Lightning (auto, ddp, ddp_spawn, ...).")]
Precision = Annotated[str, typer.Option("--precision", help="32-true, bf16-mixed or 16-mixed.")]
Compile = Annotated[bool, typer.Option("--compile", help="Wrap the model in torch.compile (faster steps after a slow first one).")]
Threads = Annotated[Optional[int], typer.Option("--threads", help="CPU threads for torch (default: torch's choice).")]
Strict = Annotated[bool, typer.Option("--strict", help="Stop at the first bad video instead of skipping it.")]


def resolve(preset: str, config: Path | None, *, seed=None, labeled_fraction=None) -> dict:
    cfg = load_config(preset, config, {"seed": seed, "labeled_fraction": labeled_fraction})
    fraction = cfg["labeled_fraction"]
    if not 0 < fraction <= 1:
        raise EchosslError(f"--labeled-fraction must be in (0, 1], got {fraction}")
    return cfg


def trainer_options(cfg: dict, section: str, *, max_epochs, max_steps, resume, devices, accelerator, num_nodes,
                    strategy, precision, compile_=False, threads=None) -> TrainerOptions:
    try:
        devices_value: str | int = int(devices)
    except ValueError:
        devices_value = devices
    return TrainerOptions(
        max_epochs=max_epochs if max_epochs is not None else (None if max_steps else cfg[section]["max_epochs"]),
        max_steps=max_steps, devices=devices_value, accelerator=accelerator, num_nodes=num_nodes,
        strategy=strategy, precision=precision, resume=resume, seed=cfg["seed"],
        compile=compile_, threads=threads,
    )


def require_dir(path: Path, what: str = "data folder") -> Path:
    if not path.exists():
        raise EchosslError(f"{what} {path} does not exist")
    if not path.is_dir():
        raise EchosslError(f"{what} {path} is not a folder")
    return path
