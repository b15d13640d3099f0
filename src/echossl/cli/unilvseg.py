"""UniLVSeg commands: ``pretrain temporal-masking``, ``train video-seg``, ``reproduce unilvseg``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from echossl.cli.common import Data, Out, RunFlags, print_metrics, require_dir, run_command

Arch = Annotated[str, typer.Option("--arch", help="unet3d (3D U-Net) or superimage (2D U-Net on tiled frames).")]


def _setup(data: Path, flags: RunFlags, section: str):
    """Resolved config (--labeled-fraction sets UniLVSeg's own fraction), trainer options, split."""
    from echossl.pipelines.semisupervised_ef import split_data
    from echossl.pipelines.unilvseg import settings

    require_dir(data)
    cfg = flags.config("unilvseg")
    cfg["labeled_fraction"] = float(settings(cfg)["labeled_fraction"])
    opts = flags.trainer(cfg, settings(cfg)[section])
    return cfg, opts, split_data(data, cfg, strict=flags.strict)


@run_command()
def pretrain_cmd(data: Data, out: Out, arch: Arch = "unet3d",
                 mask_ratio: Annotated[Optional[float], typer.Option("--mask-ratio", help="Share of whole frames hidden (default 0.6).")] = None,
                 *, flags: RunFlags):
    """Self-supervised temporal masking: reconstruct clips whose frames were partly zeroed (UniLVSeg eq. 1)."""
    from echossl.pipelines.unilvseg import pretrain

    cfg, opts, split = _setup(data, flags, "pretrain")
    print_metrics(pretrain(data, out, cfg, opts, arch=arch, mask_ratio=mask_ratio, init=flags.init_path, split=split))


@run_command()
def train_cmd(data: Data, out: Out, arch: Arch = "unet3d",
              labels_per_clip: Annotated[Optional[str], typer.Option("--labels-per-clip", help="one (the paper: one traced frame per clip) or all.")] = None,
              *, flags: RunFlags):
    """Video LV segmentation from the traced ED/ES frames only (UniLVSeg eqs. 2-6); --init a temporal-masking run."""
    from echossl.pipelines.unilvseg import train

    if labels_per_clip is not None:
        flags.set_ = [*(flags.set_ or []), f"unilvseg.labels_per_clip={labels_per_clip}"]
    cfg, opts, split = _setup(data, flags, "train")
    print_metrics(train(data, out, cfg, opts, arch=arch, init=flags.init_path, split=split))


@run_command("config", "trainer")
def reproduce_cmd(out: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("outputs/unilvseg"),
                  data: Annotated[Optional[Path], typer.Option("--data", help="EchoNet-format data (default: simulate).")] = None,
                  videos: Annotated[Optional[int], typer.Option("--videos", help="Videos to simulate (default: the preset's).")] = None,
                  *, flags: RunFlags):
    """2D frame-by-frame vs. 3D U-Net (scratch, temporal masking) vs. super image on the same data."""
    from echossl.pipelines.unilvseg import reproduce_unilvseg

    if data is not None:
        require_dir(data)
    reproduce_unilvseg(out, data, flags.preset, flags.config_file, accelerator=flags.accelerator,
                       devices=flags.devices, videos=videos, seed=flags.seed,
                       labeled_fraction=flags.labeled_fraction)


def register(*, pretrain: typer.Typer, train: typer.Typer, reproduce: typer.Typer, **_) -> None:
    pretrain.command("temporal-masking")(pretrain_cmd)
    train.command("video-seg")(train_cmd)
    reproduce.command("unilvseg")(reproduce_cmd)
