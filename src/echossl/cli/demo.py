"""``echossl demo``: the main job (Table IV on simulated or given data)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from echossl.cli.common import Accelerator, ConfigFile, Devices, Preset


def demo_cmd(out: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("outputs/demo"),
             data: Annotated[Optional[Path], typer.Option("--data", help="EchoNet-format data (default: simulate).")] = None,
             preset: Preset = "cpu", config: ConfigFile = None,
             videos: Annotated[Optional[int], typer.Option("--videos", help="Videos to simulate (default: the preset's).")] = None,
             accelerator: Accelerator = "cpu", devices: Devices = "1"):
    """Semi-supervised EF at 1/8 labels: the four rows of Table IV, a table, results.json and report.html."""
    from echossl.cli.common import require_dir
    from echossl.pipelines.demo import run_demo

    if data is not None:
        require_dir(data)
    run_demo(out, data, preset, config, accelerator=accelerator, devices=devices, videos=videos)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo_cmd)
