"""``echossl demo``: the main job (Table IV on simulated or given data)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from echossl.cli.common import RunFlags, run_command


def _pipeline_kwargs(fn, flags: RunFlags) -> dict:
    """The common flags a demo/reproduce pipeline function accepts (it declares them as keywords)."""
    import inspect

    accepted = inspect.signature(fn).parameters
    given = {"accelerator": flags.accelerator, "devices": flags.devices, "seed": flags.seed,
             "split_seed": flags.split_seed, "sets": flags.set_, "strategy": flags.strategy,
             "precision": flags.precision, "num_nodes": flags.num_nodes, "threads": flags.threads}
    return {k: v for k, v in given.items() if k in accepted and v is not None}


@run_command("config", "trainer")
def demo_cmd(out: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("outputs/demo"),
             data: Annotated[Optional[Path], typer.Option("--data", help="EchoNet-format data (default: simulate).")] = None,
             videos: Annotated[Optional[int], typer.Option("--videos", help="Videos to simulate (default: the preset's).")] = None,
             *, flags: RunFlags):
    """Semi-supervised EF at 1/8 labels: the rows of Table IV, claims with paired CIs, results.json and report.html."""
    from echossl.cli.common import require_dir
    from echossl.pipelines.demo import run_demo

    if data is not None:
        require_dir(data)
    flags.check()
    run_demo(out, data, flags.preset, flags.config_file, videos=videos, **_pipeline_kwargs(run_demo, flags))


@run_command("config", "trainer")
def reproduce_table4_cmd(
        out: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("outputs/table4"),
        data: Annotated[Optional[Path], typer.Option("--data", help="EchoNet-format data (default: simulate).")] = None,
        fractions: Annotated[str, typer.Option("--fractions", help="Labeled fractions, comma-separated.")] = "3/32,4/32,6/32,8/32,16/32",
        seeds: Annotated[int, typer.Option("--seeds", help="Training seeds per fraction (the labeled subset stays fixed by --split-seed).")] = 5,
        *, flags: RunFlags):
    """Table IV / Fig. 6: the rows at several label fractions, mean +- sd over seeds, with paired claims."""
    from echossl.cli.common import require_dir
    from echossl.pipelines.demo import reproduce_table4

    if data is not None:
        require_dir(data)
    flags.check()
    reproduce_table4(out, data, parse_fractions(fractions), seeds, flags.preset, flags.config_file,
                     **_pipeline_kwargs(reproduce_table4, flags))


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
