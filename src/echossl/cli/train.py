"""``echossl train ...``, ``echossl evaluate`` and ``echossl predict`` (EF and segmentation)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from echossl.cli.common import (
    Compile, Threads, Accelerator, ConfigFile, Data, Devices, Init, LabeledFraction, MaxEpochs, MaxSteps, NumNodes, Out,
    Precision, Preset, Resume, Seed, Strategy, Strict, require_dir, resolve, trainer_options,
)

train_app = typer.Typer(no_args_is_help=True, help="Train a model (seg, ef, distill, ...).")


def _setup(data, preset, config, seed, labeled_fraction, section, strict, **flags):
    from echossl.pipelines.semisupervised_ef import split_data

    require_dir(data)
    cfg = resolve(preset, config, seed=seed, labeled_fraction=labeled_fraction)
    opts = trainer_options(cfg, section, **flags)
    return cfg, opts, split_data(data, cfg, strict=strict)


@train_app.command("seg")
def train_seg_cmd(data: Data, out: Out, css: Annotated[bool, typer.Option("--css/--no-css", help="Add the cyclical self-supervision loss.")] = False,
                  preset: Preset = "cpu", config: ConfigFile = None, max_epochs: MaxEpochs = None,
                  max_steps: MaxSteps = None, seed: Seed = None, labeled_fraction: LabeledFraction = None,
                  init: Init = None, resume: Resume = False, devices: Devices = "1", accelerator: Accelerator = "cpu",
                  num_nodes: NumNodes = 1, strategy: Strategy = "auto", precision: Precision = "32-true", compile_: Compile = False, threads: Threads = None,
                  strict: Strict = False):
    """LV segmentation on labeled ED/ES frames, optionally with CSS on all training videos."""
    from echossl.pipelines.semisupervised_ef import train_seg

    cfg, opts, split = _setup(data, preset, config, seed, labeled_fraction, "seg", strict, max_epochs=max_epochs,
                              max_steps=max_steps, resume=resume, devices=devices, accelerator=accelerator,
                              num_nodes=num_nodes, strategy=strategy, precision=precision, compile_=compile_, threads=threads)
    run = train_seg(data, out, cfg, opts, css=css, init=str(init) if init else None, split=split)
    _report(run)


@train_app.command("ef")
def train_ef_cmd(data: Data, out: Out,
                 masks: Annotated[Optional[Path], typer.Option("--masks", help="A seg run: train the 4-channel teacher on its masks.")] = None,
                 preset: Preset = "cpu", config: ConfigFile = None, max_epochs: MaxEpochs = None,
                 max_steps: MaxSteps = None, seed: Seed = None, labeled_fraction: LabeledFraction = None,
                 init: Init = None, resume: Resume = False, devices: Devices = "1", accelerator: Accelerator = "cpu",
                 num_nodes: NumNodes = 1, strategy: Strategy = "auto", precision: Precision = "32-true", compile_: Compile = False, threads: Threads = None,
                 strict: Strict = False):
    """EF regression from video (video-only baseline), or the multi-input teacher with --masks."""
    from echossl.pipelines.semisupervised_ef import train_ef

    cfg, opts, split = _setup(data, preset, config, seed, labeled_fraction, "ef", strict, max_epochs=max_epochs,
                              max_steps=max_steps, resume=resume, devices=devices, accelerator=accelerator,
                              num_nodes=num_nodes, strategy=strategy, precision=precision, compile_=compile_, threads=threads)
    if masks is not None:
        require_dir(masks, "seg run")
    run = train_ef(data, out, cfg, opts, masks_run=masks, init=str(init) if init else None, split=split)
    _report(run)


@train_app.command("distill")
def train_distill_cmd(data: Data, out: Out,
                      teacher: Annotated[Path, typer.Option("--teacher", help="A teacher run (train ef --masks).")],
                      preset: Preset = "cpu", config: ConfigFile = None, max_epochs: MaxEpochs = None,
                      max_steps: MaxSteps = None, seed: Seed = None, labeled_fraction: LabeledFraction = None,
                      resume: Resume = False, devices: Devices = "1", accelerator: Accelerator = "cpu",
                      num_nodes: NumNodes = 1, strategy: Strategy = "auto", precision: Precision = "32-true", compile_: Compile = False, threads: Threads = None,
                      strict: Strict = False):
    """Distil the frozen multi-input teacher into a video-only student (L_lb + w_ulb L_ulb)."""
    from echossl.pipelines.semisupervised_ef import train_distill

    cfg, opts, split = _setup(data, preset, config, seed, labeled_fraction, "distill", strict,
                              max_epochs=max_epochs, max_steps=max_steps, resume=resume, devices=devices,
                              accelerator=accelerator, num_nodes=num_nodes, strategy=strategy, precision=precision, compile_=compile_, threads=threads)
    require_dir(teacher, "teacher run") if not teacher.is_file() else None
    run = train_distill(data, out, cfg, opts, teacher_run=teacher, split=split)
    _report(run)


def _report(run: Path) -> None:
    import json

    from rich.console import Console

    metrics = json.loads((Path(run) / "metrics.json").read_text())
    shown = {k: v for k, v in metrics.items() if not k.endswith("_ci95")}
    Console().print(f"[bold]{run}[/bold] " + ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in shown.items()))


def evaluate_cmd(checkpoint: Annotated[Path, typer.Option("--checkpoint", help="Checkpoint or run folder.")],
                 data: Data,
                 out: Annotated[Path, typer.Option("--out", help="metrics.json to write.")],
                 split: Annotated[str, typer.Option("--split", help="TRAIN, VAL or TEST.")] = "TEST",
                 preset: Preset = "cpu", config: ConfigFile = None):
    """Evaluate a checkpoint on a split (EchoNet layout) or on a CAMUS folder; writes metrics.json."""
    from echossl.evaluation.evaluate import evaluate

    require_dir(data)
    metrics = evaluate(checkpoint, data, split.upper(), out, cfg=resolve(preset, config))
    from rich.console import Console

    Console().print(", ".join(f"{k}={v:.4g}" for k, v in metrics.items() if isinstance(v, float)))


def predict_cmd(inputs: Annotated[list[Path], typer.Argument(help="AVI files or folders of AVIs.")],
                checkpoint: Annotated[Path, typer.Option("--checkpoint", help="Checkpoint or run folder.")],
                out: Annotated[Path, typer.Option("--out", help="CSV to write.")],
                overlay: Annotated[Optional[Path], typer.Option("--overlay", help="Folder for mask-outline videos (seg).")] = None,
                preset: Preset = "cpu", config: ConfigFile = None):
    """Predict EF (EF models) or masks, ED/ES frames and EF_Seg (seg and video-seg models) for videos."""
    from echossl.evaluation.predict import predict

    table = predict(checkpoint, inputs, out, cfg=resolve(preset, config), overlay_dir=overlay)
    from rich.console import Console

    Console().print(f"wrote {len(table)} rows to {out}")


def register(app: typer.Typer) -> None:
    app.add_typer(train_app, name="train")
    app.command("evaluate")(evaluate_cmd)
    app.command("predict")(predict_cmd)
