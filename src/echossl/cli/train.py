"""``echossl train ...``, ``echossl evaluate`` and ``echossl predict`` (EF and segmentation)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from echossl.cli.common import (
    Accelerator, BatchSize, CheckpointConfig, Data, DeprecatedPreset, Devices, Out, RunFlags, SetValues, print_metrics,
    require_dir, run_command,
)

train_app = typer.Typer(no_args_is_help=True, help="Train a model (seg, ef, distill, ...).")


def _setup(data: Path, flags: RunFlags, section: str):
    from echossl.pipelines.semisupervised_ef import split_data

    require_dir(data)
    cfg = flags.config()
    return cfg, flags.trainer(cfg, section), split_data(data, cfg, strict=flags.strict)


@train_app.command("seg")
@run_command()
def train_seg_cmd(data: Data, out: Out,
                  css: Annotated[bool, typer.Option("--css/--no-css", help="Add the cyclical self-supervision loss.")] = False,
                  *, flags: RunFlags):
    """LV segmentation on labeled ED/ES frames, optionally with CSS on all training videos."""
    from echossl.pipelines.semisupervised_ef import train_seg

    cfg, opts, split = _setup(data, flags, "seg")
    print_metrics(train_seg(data, out, cfg, opts, css=css, init=flags.init_path, split=split))


@train_app.command("ef")
@run_command()
def train_ef_cmd(data: Data, out: Out,
                 masks: Annotated[Optional[Path], typer.Option("--masks", help="A seg run: train the 4-channel teacher on its masks.")] = None,
                 *, flags: RunFlags):
    """EF regression from video (video-only baseline), or the multi-input teacher with --masks."""
    from echossl.pipelines.semisupervised_ef import train_ef

    cfg, opts, split = _setup(data, flags, "ef")
    if masks is not None:
        require_dir(masks, "seg run")
    print_metrics(train_ef(data, out, cfg, opts, masks_run=masks, init=flags.init_path, split=split))


@train_app.command("distill")
@run_command("config", "trainer", "resume", "strict")
def train_distill_cmd(data: Data, out: Out,
                      teacher: Annotated[Path, typer.Option("--teacher", help="A teacher run (train ef --masks).")],
                      *, flags: RunFlags):
    """Distil the frozen multi-input teacher into a video-only student (L_lb + w_ulb L_ulb)."""
    from echossl.pipelines.semisupervised_ef import train_distill

    cfg, opts, split = _setup(data, flags, "distill")
    if not teacher.is_file():
        require_dir(teacher, "teacher run")
    print_metrics(train_distill(data, out, cfg, opts, teacher_run=teacher, split=split))


def evaluate_cmd(checkpoint: Annotated[Path, typer.Option("--checkpoint", help="Checkpoint, run folder or export folder.")],
                 data: Data,
                 out: Annotated[Path, typer.Option("--out", help="metrics.json to write (predictions.csv goes beside it).")],
                 split: Annotated[str, typer.Option("--split", help="TRAIN, VAL or TEST.")] = "TEST",
                 config: CheckpointConfig = None,
                 set_: SetValues = None, accelerator: Accelerator = "auto", devices: Devices = "auto",
                 batch_size: BatchSize = None,
                 preset: DeprecatedPreset = None):
    """Evaluate a checkpoint on a split (EchoNet layout) or on a CAMUS folder; writes metrics.json and predictions.csv.

    Frame size, clip length, period, test clips and normalisation are the checkpoint's own.
    """
    from echossl.pipelines.evaluate import evaluate
    from echossl.evaluation.settings import warn_preset_deprecated

    require_dir(data)
    warn_preset_deprecated(preset)
    metrics = evaluate(checkpoint, data, split.upper(), out, config=config, sets=tuple(set_ or ()), preset=preset,
                       accelerator=accelerator, devices=devices, batch_size=batch_size)
    from rich.console import Console

    Console().print(", ".join(f"{k}={v:.4g}" for k, v in metrics.items() if isinstance(v, float)))


def predict_cmd(inputs: Annotated[list[Path], typer.Argument(help="AVI, MP4 or DICOM files, or folders of them (searched recursively).")],
                checkpoint: Annotated[Path, typer.Option("--checkpoint", help="Checkpoint, run folder or export folder.")],
                out: Annotated[Path, typer.Option("--out", help="CSV to write.")],
                overlay: Annotated[Optional[Path], typer.Option("--overlay", help="Folder for mask-outline videos (seg).")] = None,
                masks_out: Annotated[Optional[Path], typer.Option("--masks-out", help="Folder for per-frame LV masks (seg).")] = None,
                masks_format: Annotated[str, typer.Option("--masks-format", help="nifti (.nii.gz) or npy.")] = "nifti",
                config: CheckpointConfig = None,
                set_: SetValues = None, accelerator: Accelerator = "auto", devices: Devices = "auto",
                batch_size: BatchSize = None,
                preset: DeprecatedPreset = None):
    """Predict EF (EF models), or masks, ED/ES frames, EF_Seg, heart rate and EDV/ESV (seg and video-seg models).

    Frame size, clip length, period, test clips and normalisation are the checkpoint's own.
    """
    from echossl.pipelines.predict import predict
    from echossl.evaluation.settings import warn_preset_deprecated

    warn_preset_deprecated(preset)
    table = predict(checkpoint, inputs, out, config=config, sets=tuple(set_ or ()), preset=preset,
                    overlay_dir=overlay, masks_out=masks_out, masks_format=masks_format.lower(),
                    accelerator=accelerator, devices=devices, batch_size=batch_size)
    from rich.console import Console

    Console().print(f"wrote {len(table)} rows to {out}")


def register(app: typer.Typer) -> None:
    app.add_typer(train_app, name="train")
    app.command("evaluate")(evaluate_cmd)
    app.command("predict")(predict_cmd)
