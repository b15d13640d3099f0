"""One measurement in its own process: ``python -m echossl.bench.worker FAMILY ...``.

A fresh process per family gives each its own peak RSS, and lets Lightning's
DDP launcher re-run this same command for rank 1. Rank 0 writes ``--json``.
"""

from __future__ import annotations

import argparse
import json
import resource
from pathlib import Path

from echossl.bench.training import FAMILIES, LOSSES


def _rss_mb() -> float:
    """Peak RSS of this process in MB.

    Linux's ``ru_maxrss`` survives ``execve``, so a worker started from a big
    parent would report the parent's peak; ``VmHWM`` belongs to this process's
    own address space.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux, bytes on macOS


def run_family(family: str, data: dict, out: Path, opts, cfg: dict) -> None:
    """Train ``family`` through its real pipeline; returns when the step timer stops it."""
    if family == "ef":
        from echossl.pipelines.semisupervised_ef import train_ef

        train_ef(data["echonet"], out, cfg, opts)
    elif family == "seg_css":
        from echossl.pipelines.semisupervised_ef import train_seg

        train_seg(data["echonet"], out, cfg, opts, css=True)
    elif family == "unet3d":
        from echossl.pipelines.unilvseg import train

        train(data["echonet"], out, cfg, opts, arch="unet3d")
    elif family == "vit":
        from echossl.pipelines.discover import pretrain

        pretrain(data["echonet"], out, cfg, opts, variant="discover", evaluate=False)
    elif family == "jigsaw":
        from echossl.pipelines.mrjet import pretrain_jigsaw

        pretrain_jigsaw(data["mrjet"], out, cfg, opts)
    elif family == "video_speech":
        from echossl.pipelines.video_speech import pretrain

        pretrain(data["sweep"], out, cfg, opts, variant="full")
    else:
        raise ValueError(f"unknown family {family!r}; one of {', '.join(FAMILIES)}")


def measure(args) -> dict | None:
    import contextlib
    import warnings

    import torch

    from echossl.bench.training import StepsMeasured, StepTimer, recording, time_loss
    from echossl.config import load_config
    from echossl.engine import TrainerOptions

    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    rss_start = _rss_mb()
    # every TRAIN video labeled: the bench wants steps, not a realistic label budget
    cfg = load_config("cpu", None, {"seed": 0, "labeled_fraction": 1.0})
    cfg["discover"]["max_epochs"] = cfg["ef"]["max_epochs"] = 1000  # the timer ends the run, not the epochs
    if args.workers is not None:
        cfg["data"]["workers"] = args.workers
        cfg["video_speech"]["data"]["workers"] = args.workers
    timer = StepTimer(steps=args.steps, warmup=args.warmup)
    # max_steps is a backstop: the timer normally ends the run first
    opts = TrainerOptions(max_epochs=1000, max_steps=args.warmup + args.steps + 2, devices=args.devices, strategy=args.strategy, progress=False,
                          threads=args.threads, callbacks=(timer,), seed=0)
    data = {"echonet": args.echonet, "mrjet": args.mrjet, "sweep": args.sweep}
    module_name, loss_names = LOSSES[args.family]
    with contextlib.ExitStack() as stack:
        stack.enter_context(timer.loader_clock())
        recorded = {n: stack.enter_context(recording(module_name, n)) for n in loss_names}
        try:
            run_family(args.family, data, args.out, opts, cfg)
        except StepsMeasured:
            pass
    if timer.global_rank != 0:
        return None
    world = timer.world_size
    result = {"family": args.family, "threads": args.threads, "workers": cfg["data"]["workers"], **timer.summary()}
    if loss_names:
        import importlib

        module = importlib.import_module(module_name)
        loss_s = sum(time_loss(getattr(module, n), *recorded[n][0]) for n in loss_names if recorded[n])
        called = all(recorded[n] for n in loss_names)
        step_s = result["step_ms_median"] / 1000
        result["loss"] = "+".join(loss_names)
        result["loss_ms"] = 1000 * loss_s if called else None
        result["loss_share"] = loss_s / step_s if called else None
    result["loss_curve"] = {"samples_per_step": world * (sum(timer.samples) / max(len(timer.samples), 1)),
                            "loss": timer.losses}
    result["peak_rss_mb"] = _rss_mb()
    result["rss_after_import_mb"] = rss_start
    return result


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("family", choices=FAMILIES)
    ap.add_argument("--echonet", type=Path)
    ap.add_argument("--mrjet", type=Path)
    ap.add_argument("--sweep", type=Path)
    ap.add_argument("--out", type=Path, required=True, help="scratch run folder")
    ap.add_argument("--json", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--devices", type=int, default=1)
    ap.add_argument("--strategy", default="auto")
    ap.add_argument("--workers", type=int, help="DataLoader worker processes (default: the cpu preset's)")
    args = ap.parse_args(argv)
    result = measure(args)
    if result is not None:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
