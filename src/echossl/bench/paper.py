"""``echossl bench --paper``: the ``paper`` preset's three models, trained for a few hundred steps.

A GPU user's check before a multi-day run: each model of the CSS paper trains
through its real pipeline (the function the CLI calls) at the ``paper`` settings
on simulated 112-px EchoNet-Dynamic data, and the bench reports samples/s and
the training-loss curve of every step:

- ``seg_css``: DeepLabV3-ResNet50 with ``L_seg + w_css L_css`` (SGD lr 1e-5,
  20 ED + 20 ES frames and one 40-frame clip per step, the reference's summed BCE);
- ``ef``: R(2+1)D-18 video-only EF regression (SGD lr 1e-4, batch 20 of 32-frame clips);
- ``distill``: the video-only student from a 4-channel R(2+1)D-18 teacher
  (20 labeled + 10 unlabeled clips per step). Its teacher is randomly
  initialised and reads the simulator's true masks: speed does not depend on
  what the teacher knows, and this keeps the bench to one training per model.

The step timer (:class:`echossl.bench.training.StepTimer`) ends each run after
its steps, so no evaluation runs. On a CPU a step of these models takes tens of
seconds; ``--steps`` makes the check short.
"""

from __future__ import annotations

import copy
import math
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from echossl.bench.training import StepsMeasured, StepTimer
from echossl.config import deep_merge, load_config

PAPER_MODELS = ("seg_css", "ef", "distill")
DEFAULT_STEPS = 300
WARMUP = 3


def _write_true_masks(root: Path, out: Path) -> Path:
    """``out/masks/<FileName>.npy`` from the simulator's per-frame truth, as a seg run writes them."""
    from echossl.data.echonet import load_truth, read_filelist

    masks = out / "masks"
    masks.mkdir(parents=True, exist_ok=True)
    for name in read_filelist(root)["FileName"]:
        truth = load_truth(root, name)
        if truth is not None:
            np.save(masks / f"{name}.npy", (np.asarray(truth["masks"]) > 0).astype(np.uint8) * 255)
    return masks


def _random_teacher(cfg: dict, split, masks_dir: Path, out: Path) -> Path:
    """A 4-channel EF teacher checkpoint at the preset's settings, randomly initialised."""
    from echossl.methods.ef import EFRegression

    ef = cfg["ef"]
    module = EFRegression(model=ef["model"], in_channels=4, mean_target=55.0, optimizer=ef["optimizer"],
                          lr=ef["lr"], momentum=ef["momentum"], weight_decay=ef["weight_decay"],
                          step_size=ef["step_size"], norm={**split.norm, "size": ef.get("size", split.norm["size"])},
                          masks_dir=str(masks_dir), model_kwargs=ef.get("model_kwargs"))
    path = out / "checkpoints" / "best.ckpt"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}, path)
    return out


def _train(model: str, data: Path, scratch: Path, cfg: dict, opts, split) -> None:
    from echossl.pipelines.semisupervised_ef import train_distill, train_ef, train_seg

    if model == "seg_css":
        train_seg(data, scratch / "seg", cfg, opts, css=True, split=split)
    elif model == "ef":
        train_ef(data, scratch / "ef", cfg, opts, split=split)
    elif model == "distill":
        teacher = _random_teacher(cfg, split, _write_true_masks(data, scratch / "masks-run"), scratch / "teacher")
        train_distill(data, scratch / "distill", cfg, opts, teacher_run=teacher, split=split)
    else:
        raise ValueError(f"unknown paper model {model!r}; one of {', '.join(PAPER_MODELS)}")


def _describe(model: str, cfg: dict) -> dict:
    seg, ef, dst = cfg["seg"], cfg["ef"], cfg["distill"]
    if model == "seg_css":
        return {"network": seg["model"], "optimizer": seg["optimizer"], "lr": seg["lr"],
                "batch": f"{2 * seg['batch_size']} ED/ES frames + {seg['css'].get('clips_per_step', 1)} clip(s) of "
                         f"{seg['css']['length']} frames", "loss_reduction": seg.get("loss_reduction", "mean")}
    if model == "ef":
        return {"network": ef["model"], "optimizer": ef["optimizer"], "lr": ef["lr"],
                "batch": f"{ef['batch_size']} clips of {ef['length']} frames"}
    return {"network": ef["model"], "optimizer": ef["optimizer"], "lr": ef["lr"], "w_ulb": dst["w_ulb"],
            "batch": f"{dst['labeled_batch']} labeled + {dst['unlabeled_batch']} unlabeled clips of "
                     f"{ef['length']} frames"}


def bench_paper_model(model: str, data: Path, scratch: Path, cfg: dict, *, steps: int, warmup: int = WARMUP,
                      accelerator: str = "auto", devices="1", precision: str = "32-true",
                      threads: int | None = None) -> dict:
    """Train ``model`` for ``warmup + steps`` steps; samples/s over the timed steps and every step's loss."""
    from echossl.engine import TrainerOptions
    from echossl.pipelines.semisupervised_ef import split_data

    timer = StepTimer(steps=steps, warmup=warmup)
    # the timer ends the run; max_steps is only a backstop, and epochs never end it
    opts = TrainerOptions(max_epochs=-1, max_steps=warmup + steps + 2, accelerator=accelerator, devices=devices,
                          precision=precision, progress=False, threads=threads, callbacks=(timer,), seed=0)
    split = split_data(data, cfg)
    started = time.perf_counter()
    with timer.loader_clock():
        try:
            _train(model, data, scratch, cfg, opts, split)
        except StepsMeasured:
            pass
    summary = timer.summary()
    losses = [float(v) for v in timer.losses]
    first, last = _mean_finite(losses[:3]), _mean_finite(losses[-3:])
    return {"model": model, **_describe(model, cfg), **summary, "seconds": time.perf_counter() - started,
            "loss_curve": losses, "loss_first3": first, "loss_last3": last,
            "loss_ratio_last_first": last / first if first and last is not None else None}


def _mean_finite(values) -> float | None:
    values = [v for v in values if math.isfinite(v)]
    return sum(values) / len(values) if values else None


def run_paper_bench(out_json: str | Path | None = None, *, steps: int = DEFAULT_STEPS, warmup: int = WARMUP,
                    models=PAPER_MODELS, videos: int = 40, overrides: dict | None = None, preset: str = "paper",
                    accelerator: str = "auto", devices="1", precision: str = "32-true", threads: int | None = None,
                    progress=print) -> dict:
    """Simulate 112-px data, train each of ``models`` for ``steps`` timed steps, write ``out_json``.

    Args:
        steps: timed steps per model (after ``warmup`` untimed ones).
        videos: simulated videos (every TRAIN video labeled: the bench wants steps).
        overrides: merged over the preset, e.g. smaller batches for a CPU test.
        preset: ``paper``; the tests also use ``cpu`` to check the plumbing quickly.

    Returns:
        ``{"preset", "steps", "device", "models": {name: result}, "seconds"}``.
    """
    started = time.perf_counter()
    cfg = load_config(preset, None, {"seed": 0, "labeled_fraction": 1.0})
    cfg = deep_merge(cfg, overrides or {})
    result = {"preset": preset, "steps": steps, "warmup": warmup, "videos": videos, "simulated_size": 112,
              "frame_size": cfg["data"]["size"] or 112,
              "device": _device_name(accelerator), "torch": torch.__version__, "models": {}}
    with tempfile.TemporaryDirectory(prefix="echossl-bench-paper-") as tmp:
        scratch = Path(tmp)
        old_cache = os.environ.get("ECHOSSL_CACHE")
        os.environ["ECHOSSL_CACHE"] = str(scratch / "cache")  # the user's frame cache stays clean
        try:
            from echossl.simulate.echonet import simulate_echonet

            progress(f"simulating {videos} EchoNet-Dynamic videos at 112 px")
            data = scratch / "echonet"
            simulate_echonet(data, videos, seed=0, size=112, progress=False)
            for model in models:
                progress(f"{model}: {warmup} + {steps} steps")
                result["models"][model] = bench_paper_model(
                    model, data, scratch / model, copy.deepcopy(cfg), steps=steps, warmup=warmup,
                    accelerator=accelerator, devices=devices, precision=precision, threads=threads)
        finally:
            if old_cache is None:
                os.environ.pop("ECHOSSL_CACHE", None)
            else:
                os.environ["ECHOSSL_CACHE"] = old_cache
    result["seconds"] = time.perf_counter() - started
    if out_json is not None:
        import json

        from echossl.io import atomic_write_text

        atomic_write_text(out_json, json.dumps(result, indent=1, default=float) + "\n")
    return result


def _device_name(accelerator: str) -> str:
    if accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"cpu ({os.cpu_count()} cores, {torch.get_num_threads()} threads)"


def curve_points(losses: list[float], n: int = 8) -> list[tuple[int, float]]:
    """``n`` evenly spaced ``(step, loss)`` points of a curve, first and last included."""
    if not losses:
        return []
    idx = sorted({round(i * (len(losses) - 1) / max(n - 1, 1)) for i in range(min(n, len(losses)))})
    return [(i + 1, losses[i]) for i in idx]


def print_paper_summary(result: dict, console=None) -> None:
    """One table: per model its batch, samples/s, median step and the loss curve at a few steps."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    table = Table(title=f"echossl bench --paper ({result['preset']} preset, {result['device']}, "
                        f"{result['steps']} timed steps each)", title_justify="left")
    for col in ("model", "network", "batch", "samples/s", "step ms", "training loss (step: value)", "last3/first3"):
        table.add_column(col)
    for name, r in result["models"].items():
        curve = ", ".join(f"{s}: {v:.4g}" for s, v in curve_points(r["loss_curve"]))
        ratio = r.get("loss_ratio_last_first")
        table.add_row(name, str(r["network"]), r["batch"], _fmt(r.get("samples_per_s"), "{:.2f}"),
                      _fmt(r.get("step_ms_median"), "{:.0f}"), curve, _fmt(ratio, "{:.3f}"))
    console.print(table)


def _fmt(value, pattern: str) -> str:
    return "-" if value is None else pattern.format(value)
