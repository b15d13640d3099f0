"""CLI of video-speech-contrastive.md: simulate sweeps, pre-train, fine-tune, compare.

::

    echossl simulate sweep OUT --videos N [--seed S] [--size 64] [--fps 15] [--seconds 60]
    echossl pretrain video-speech --data DIR --out RUN [--variant full|contrast|baseline|video-only]
    echossl train plane    --data DIR --out RUN [--init PRETRAIN_RUN_OR_CKPT]
    echossl train saliency --data DIR --out RUN [--init PRETRAIN_RUN_OR_CKPT]
    echossl reproduce video-speech --out DIR [--data DIR]

All training commands take the common flags (CONTRACT.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from echossl.cli.common import (
    Compile, Threads, Accelerator, ConfigFile, Devices, Init, LabeledFraction, MaxEpochs, MaxSteps, NumNodes, Out, Precision,
    Preset, Resume, Seed, Strategy, require_dir, resolve,
)

SweepData = Annotated[Path, typer.Option("--data", help="Sweep folder (sweeps.csv, Videos/, Audio/, Labels/).")]


def _setup(preset, config, seed, labeled_fraction, section, *, max_epochs, max_steps, resume, devices, accelerator,
           num_nodes, strategy, precision, compile_=False, threads=None):
    from echossl.engine import TrainerOptions
    from echossl.pipelines.video_speech import _section, stage_options

    cfg = resolve(preset, config, seed=seed)
    vs = _section(cfg)
    if labeled_fraction is not None:
        for task in ("plane", "saliency"):
            vs[task]["labeled_fraction"] = labeled_fraction
    try:
        devices_value: str | int = int(devices)
    except ValueError:
        devices_value = devices
    base = TrainerOptions(devices=devices_value, accelerator=accelerator, num_nodes=num_nodes, strategy=strategy,
                          precision=precision, compile=compile_, threads=threads, resume=resume, seed=cfg["seed"])
    opts = stage_options(base, vs, section, max_epochs, max_steps) if section else base
    return cfg, opts


def _report(run: Path) -> None:
    import json

    from rich.console import Console

    metrics = json.loads((Path(run) / "metrics.json").read_text())
    shown = {k: v for k, v in metrics.items() if not k.endswith("_ci95")}
    Console().print(f"[bold]{run}[/bold] " + ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in shown.items()))


def simulate_sweep_cmd(
    out: Path = typer.Argument(..., help="Output folder (sweeps.csv, Videos/, Audio/, Labels/, Saliency/)."),
    videos: int = typer.Option(..., "--videos", help="Number of scans."),
    seed: int = typer.Option(0, "--seed", help="Base seed; scan i depends only on (seed, i)."),
    size: int = typer.Option(64, "--size", help="Frame height and width in pixels."),
    fps: float = typer.Option(15.0, "--fps", help="Frames per second (the paper's scans: 30)."),
    seconds: float = typer.Option(60.0, "--seconds", help="Length of every scan in seconds."),
) -> None:
    """Simulate narrated fetal-style sweeps: video, 24 kHz narration WAV, plane labels, gaze saliency."""
    import time

    from rich.console import Console

    from echossl.simulate.sweep import simulate_sweep

    start = time.perf_counter()
    table = simulate_sweep(out, videos, seed=seed, size=size, fps=fps, seconds=seconds, progress=True)
    counts = table["Split"].value_counts().to_dict()
    Console(stderr=True).print(
        f"wrote {len(table)} scans to {out} (TRAIN {counts.get('TRAIN', 0)}, VAL {counts.get('VAL', 0)}, "
        f"TEST {counts.get('TEST', 0)}) in {time.perf_counter() - start:.1f} s")


def pretrain_cmd(data: SweepData, out: Out,
                 variant: Annotated[Optional[str], typer.Option("--variant", help="full | contrast | baseline | video-only (default: the preset's).")] = None,
                 preset: Preset = "cpu", config: ConfigFile = None, max_epochs: MaxEpochs = None,
                 max_steps: MaxSteps = None, seed: Seed = None, labeled_fraction: LabeledFraction = None,
                 init: Init = None, resume: Resume = False, devices: Devices = "1", accelerator: Accelerator = "cpu",
                 num_nodes: NumNodes = 1, strategy: Strategy = "auto", precision: Precision = "32-true", compile_: Compile = False, threads: Threads = None):
    """Video-speech pre-training: hard pairs, L_cls + L_cont on high affinity, frame order on low affinity."""
    from echossl.errors import EchosslError
    from echossl.methods.video_speech import VARIANTS
    from echossl.pipelines.video_speech import pretrain

    require_dir(data)
    if variant is not None and variant not in VARIANTS:
        raise EchosslError(f"--variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
    cfg, opts = _setup(preset, config, seed, labeled_fraction, "pretrain", max_epochs=max_epochs,
                       max_steps=max_steps, resume=resume, devices=devices, accelerator=accelerator,
                       num_nodes=num_nodes, strategy=strategy, precision=precision, compile_=compile_, threads=threads)
    _report(pretrain(data, out, cfg, opts, variant=variant, init=str(init) if init else None))


def _train(task: str):
    def command(data: SweepData, out: Out, preset: Preset = "cpu", config: ConfigFile = None,
                max_epochs: MaxEpochs = None, max_steps: MaxSteps = None, seed: Seed = None,
                labeled_fraction: LabeledFraction = None, init: Init = None, resume: Resume = False,
                devices: Devices = "1", accelerator: Accelerator = "cpu", num_nodes: NumNodes = 1,
                strategy: Strategy = "auto", precision: Precision = "32-true", compile_: Compile = False, threads: Threads = None):
        from echossl.pipelines import video_speech as pipe

        require_dir(data)
        cfg, opts = _setup(preset, config, seed, labeled_fraction, task, max_epochs=max_epochs,
                           max_steps=max_steps, resume=resume, devices=devices, accelerator=accelerator,
                           num_nodes=num_nodes, strategy=strategy, precision=precision, compile_=compile_, threads=threads)
        fn = pipe.train_plane if task == "plane" else pipe.train_saliency
        _report(fn(data, out, cfg, opts, init=str(init) if init else None))

    command.__doc__ = {
        "plane": "Standard-plane classification (14 classes), fine-tuned from --init (a video-speech run) or random.",
        "saliency": "Gaze saliency prediction (KL, NSS, AUC, CC, SIM), fine-tuned from --init or random.",
    }[task]
    return command


def reproduce_cmd(out: Out,
                  data: Annotated[Optional[Path], typer.Option("--data", help="Sweep folder; default: simulate one into OUT/data.")] = None,
                  preset: Preset = "cpu", config: ConfigFile = None, max_epochs: MaxEpochs = None,
                  max_steps: MaxSteps = None, seed: Seed = None, labeled_fraction: LabeledFraction = None,
                  devices: Devices = "1", accelerator: Accelerator = "cpu", num_nodes: NumNodes = 1,
                  strategy: Strategy = "auto", precision: Precision = "32-true", compile_: Compile = False, threads: Threads = None):
    """Tables 1-3: random init, video-only, baseline, + cm. contrast, full; plane detection and gaze saliency."""
    from rich.console import Console
    from rich.table import Table

    from echossl.pipelines import video_speech as pipe
    from echossl.simulate.sweep import simulate_sweep

    cfg, base = _setup(preset, config, seed, labeled_fraction, None, max_epochs=max_epochs, max_steps=max_steps,
                       resume=False, devices=devices, accelerator=accelerator, num_nodes=num_nodes,
                       strategy=strategy, precision=precision, compile_=compile_, threads=threads)
    vs = pipe._section(cfg)
    if data is None:
        data = out / "data"
        if not (data / "sweeps.csv").is_file():
            s = vs["simulate"]
            simulate_sweep(data, s["videos"], seed=cfg["seed"], size=s["size"], fps=s["fps"], seconds=s["seconds"],
                           progress=True)
    require_dir(data)
    result = pipe.reproduce(data, out, cfg, lambda section: pipe.stage_options(base, vs, section, max_epochs, max_steps))
    table = Table(title=f"video-speech comparison on {data} (TEST)")
    for col in ("method", "Prec.[%]", "Rec.[%]", "F1[%]", "KL↓", "NSS↑", "AUC↑", "CC↑", "SIM↑"):
        table.add_column(col)
    for r in result["rows"]:
        table.add_row(r["method"], f"{100 * r['precision']:.1f}", f"{100 * r['recall']:.1f}", f"{100 * r['f1']:.1f}",
                      f"{r['kl']:.2f}", f"{r['nss']:.2f}", f"{r['auc']:.3f}", f"{r['cc']:.3f}", f"{r['sim']:.3f}")
    console = Console()
    console.print(table)
    t = result["target"]
    console.print(f"full beats video-only: F1 {'yes' if t['full_beats_video_only_f1'] else 'NO'}, "
                  f"NSS {'yes' if t['full_beats_video_only_nss'] else 'NO'}; wrote {out / 'results.json'}")


def register(*, simulate, pretrain, train, reproduce, **_) -> None:
    simulate.command("sweep")(simulate_sweep_cmd)
    pretrain.command("video-speech")(pretrain_cmd)
    train.command("plane")(_train("plane"))
    train.command("saliency")(_train("saliency"))
    reproduce.command("video-speech")(reproduce_cmd)
