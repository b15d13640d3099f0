"""DISCOVER commands: ``pretrain discover`` and ``reproduce discover``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from echossl.cli.common import Data, Out, RunFlags, print_metrics, require_dir, run_command

Variant = Annotated[str, typer.Option("--variant", help="discover (full method), videomae (pixel "
                                      "reconstruction) or video-dino (video self-distillation only).")]
Camus = Annotated[Optional[Path], typer.Option("--camus", help="CAMUS folder for the frozen segmentation "
                                               "protocol (skipped when not given).")]


@run_command()
def pretrain_cmd(data: Data, out: Out, variant: Variant = "discover", camus: Camus = None, *, flags: RunFlags):
    """Self-supervised video pre-training (DISCOVER eqs. 1-9, or a baseline), then every protocol on TEST."""
    from echossl.pipelines.discover import pretrain
    from echossl.pipelines.semisupervised_ef import split_data

    require_dir(data)
    if camus is not None:
        require_dir(camus, "CAMUS folder")
    init = flags.init_path
    cfg = flags.config()
    opts = flags.trainer(cfg, "discover")
    split = split_data(data, cfg, strict=flags.strict)
    print_metrics(pretrain(data, out, cfg, opts, variant=variant, init=init, split=split, camus=camus))


@run_command("config", "trainer")
def reproduce_cmd(out: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("outputs/discover"),
                  data: Annotated[Optional[Path], typer.Option("--data", help="EchoNet-format data (default: simulate).")] = None,
                  camus: Annotated[Optional[Path], typer.Option("--camus", help="CAMUS-format data (default: simulate).")] = None,
                  methods: Annotated[Optional[str], typer.Option("--methods", help="Comma-separated subset of videomae,video-dino,discover.")] = None,
                  *, flags: RunFlags):
    """Random init vs VideoMAE-style vs video-DINO vs DISCOVER on the same data: kNN, probes, fine-tuning,
    segmentation, training memory and inference FLOPs; writes OUT/results.json."""
    from echossl.pipelines.discover import reproduce_discover

    if data is not None:
        require_dir(data)
    if camus is not None:
        require_dir(camus, "CAMUS folder")
    cfg = flags.config()
    reproduce_discover(out, cfg, flags.trainer(cfg, "discover"), data=data, camus=camus,
                       methods=[m.strip() for m in methods.split(",") if m.strip()] if methods else None)


def register(*, pretrain: typer.Typer, reproduce: typer.Typer, **_) -> None:
    pretrain.command("discover")(pretrain_cmd)
    reproduce.command("discover")(reproduce_cmd)
