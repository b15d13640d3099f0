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


def reproduce_table4_cmd(
        out: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("outputs/table4"),
        data: Annotated[Optional[Path], typer.Option("--data", help="EchoNet-format data (default: simulate).")] = None,
        fractions: Annotated[str, typer.Option("--fractions", help="Labeled fractions, comma-separated.")] = "3/32,4/32,6/32,8/32,16/32",
        seeds: Annotated[int, typer.Option("--seeds", help="Seeds per fraction.")] = 5,
        preset: Preset = "cpu", config: ConfigFile = None,
        accelerator: Accelerator = "cpu", devices: Devices = "1"):
    """Table IV / Fig. 6: the four rows at several label fractions, mean +- sd over seeds."""
    from echossl.cli.common import require_dir
    from echossl.pipelines.demo import reproduce_table4

    if data is not None:
        require_dir(data)
    reproduce_table4(out, data, parse_fractions(fractions), seeds, preset, config,
                     accelerator=accelerator, devices=devices)


def parse_fractions(text: str) -> list[float]:
    """``"3/32,0.25"`` -> ``[0.09375, 0.25]``; each must lie in (0, 1]."""
    from fractions import Fraction

    from echossl.errors import ConfigError

    values = []
    for part in text.split(","):
        try:
            value = float(Fraction(part.strip()))
        except (ValueError, ZeroDivisionError):
            raise ConfigError(f"--fractions: {part.strip()!r} is not a fraction like 3/32 or 0.25") from None
        if not 0 < value <= 1:
            raise ConfigError(f"--fractions: {part.strip()} is not in (0, 1]")
        values.append(value)
    return values


def register(app: typer.Typer, reproduce: typer.Typer, **_) -> None:
    app.command("demo")(demo_cmd)
    reproduce.command("table4")(reproduce_table4_cmd)
