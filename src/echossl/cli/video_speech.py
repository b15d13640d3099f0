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

from echossl.cli.common import Out, RunFlags, print_metrics, require_dir, run_command

SweepData = Annotated[Path, typer.Option("--data", help="Sweep folder (sweeps.csv, Videos/, Audio/, Labels/).")]


def _setup(flags: RunFlags, section: str | None):
    """Resolved config and trainer options; each stage keeps its own epochs unless --max-epochs/--max-steps."""
    from echossl.pipelines.video_speech import _section, stage_options

    cfg = flags.config("video_speech")
    vs = _section(cfg)
    base = flags.trainer(cfg, None)
    opts = stage_options(base, vs, section, flags.max_epochs, flags.max_steps) if section else base
    return cfg, opts


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


@run_command("config", "trainer", "resume", "init")
def pretrain_cmd(data: SweepData, out: Out,
                 variant: Annotated[Optional[str], typer.Option("--variant", help="full | contrast | baseline | video-only (default: the preset's).")] = None,
                 *, flags: RunFlags):
    """Video-speech pre-training: hard pairs, L_cls + L_cont on high affinity, frame order on low affinity."""
    from echossl.errors import EchosslError
    from echossl.methods.video_speech import VARIANTS
    from echossl.pipelines.video_speech import pretrain

    require_dir(data)
    if variant is not None and variant not in VARIANTS:
        raise EchosslError(f"--variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
    cfg, opts = _setup(flags, "pretrain")
    print_metrics(pretrain(data, out, cfg, opts, variant=variant, init=flags.init_path))


def _train(task: str):
    @run_command("config", "trainer", "resume", "init")
    def command(data: SweepData, out: Out, *, flags: RunFlags):
        from echossl.pipelines import video_speech as pipe

        require_dir(data)
        cfg, opts = _setup(flags, task)
        fn = pipe.train_plane if task == "plane" else pipe.train_saliency
        print_metrics(fn(data, out, cfg, opts, init=flags.init_path))

    command.__doc__ = {
        "plane": "Standard-plane classification (14 classes), fine-tuned from --init (a video-speech run) or random.",
        "saliency": "Gaze saliency prediction (KL, NSS, AUC, CC, SIM), fine-tuned from --init or random.",
    }[task]
    return command


@run_command("config", "trainer")
def reproduce_cmd(out: Out,
                  data: Annotated[Optional[Path], typer.Option("--data", help="Sweep folder; default: simulate one into OUT/data.")] = None,
                  *, flags: RunFlags):
    """Tables 1-3: random init, video-only, baseline, + cm. contrast, full; plane detection and gaze saliency."""
    from rich.console import Console
    from rich.table import Table

    from echossl.pipelines import video_speech as pipe
    from echossl.simulate.sweep import simulate_sweep

    cfg, base = _setup(flags, None)
    max_epochs, max_steps = flags.max_epochs, flags.max_steps
    vs = pipe._section(cfg)
    if data is None:
        data = out / "data"
        if not (data / "sweeps.csv").is_file():
            s = vs["simulate"]
            simulate_sweep(data, s["videos"], seed=cfg["seed"], size=s["size"], fps=s["fps"], seconds=s["seconds"],
                           progress=True)
    require_dir(data)
    result = pipe.reproduce(data, out, cfg, lambda section: pipe.stage_options(base, vs, section, max_epochs, max_steps))
    table = Table(title=f"video-speech comparison on {data} ({result['folds']}-fold CV, {result['n_test']} TEST scans)")
    for col in ("method", "Prec.[%]", "Rec.[%]", "F1[%]", "KL↓", "NSS↑", "AUC↑", "CC↑", "SIM↑"):
        table.add_column(col)
    for r in result["rows"]:
        table.add_row(r["method"], f"{100 * r['precision']:.1f}", f"{100 * r['recall']:.1f}", f"{100 * r['f1']:.1f}",
                      f"{r['kl']:.2f}", f"{r['nss']:.2f}", f"{r['auc']:.3f}", f"{r['cc']:.3f}", f"{r['sim']:.3f}")
    console = Console()
    console.print(table)
    pipe.print_claims(result)
    console.print(f"wrote {out / 'results.json'} and {out / 'results.md'} in {result['seconds']} s")


def register(*, simulate, pretrain, train, reproduce, **_) -> None:
    simulate.command("sweep")(simulate_sweep_cmd)
    pretrain.command("video-speech")(pretrain_cmd)
    train.command("plane")(_train("plane"))
    train.command("saliency")(_train("saliency"))
    reproduce.command("video-speech")(reproduce_cmd)
