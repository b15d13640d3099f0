"""``echossl bench``: side-by-side speed measurements on simulated data.

Every figure is a ratio of two paths measured in one run on the same data and
machine, because an absolute time on a shared CPU is noise:

1. clip loading: frame cache vs frame-by-frame OpenCV (:mod:`.loading`);
2. whole-video EF inference: batched ``inference_mode`` vs a batch-1 loop (:mod:`.inference`);
3. training steps per model family: samples/s, data-wait share, method-loss share (:mod:`.training`);
4. scaling: one process vs 2-process DDP (gloo on CPU), with both loss curves;
5. memory: peak RSS per family (each family runs in its own process, :mod:`.worker`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from echossl.bench.training import FAMILIES

__all__ = ["run_bench", "targets", "simulate_all", "warm_cache", "SIZES", "FAMILIES"]

# (quick, full) sizes of each part
SIZES = {
    "echonet_videos": (48, 96), "mrjet_videos": (8, 16), "sweep_videos": (8, 12),
    "load_seconds": (2.0, 5.0), "infer_videos": (3, 10),
    "steps": (5, 20), "warmup": (2, 3), "ddp_steps": (8, 30),
}


def _size(name: str, quick: bool):
    return SIZES[name][0 if quick else 1]


def simulate_all(root: Path, quick: bool) -> dict:
    """The three simulated data sets the families train on."""
    from echossl.simulate.echonet import simulate_echonet
    from echossl.simulate.mrjet import simulate_mrjet
    from echossl.simulate.sweep import simulate_sweep

    data = {"echonet": root / "echonet", "mrjet": root / "mrjet", "sweep": root / "sweep"}
    simulate_echonet(data["echonet"], _size("echonet_videos", quick), seed=0, progress=False)
    simulate_mrjet(data["mrjet"], _size("mrjet_videos", quick), seed=0, progress=False)
    simulate_sweep(data["sweep"], _size("sweep_videos", quick), seed=0, seconds=10 if quick else 30)
    return data


def warm_cache(data: dict) -> None:
    """Decode every video once, as a first epoch would: the bench measures the steady state after it."""
    from echossl.data.cache import FrameCache

    cache = FrameCache()
    for root in data.values():
        for path in sorted((root / "Videos").glob("*.avi")):
            cache.get(path)


def _worker(part: str, family: str, data: dict, scratch: Path, *, steps: int, warmup: int, threads: int = 1,
            devices: int = 1, strategy: str = "auto", workers: int | None = None, timeout: float = 900) -> dict:
    """Run one :mod:`echossl.bench.worker` process and read back its JSON."""
    tag = f"{part}-{family}-p{devices}-t{threads}"
    out_json = scratch / f"{tag}.json"
    cmd = [sys.executable, "-m", "echossl.bench.worker", family, "--out", str(scratch / tag), "--json", str(out_json),
           "--steps", str(steps), "--warmup", str(warmup), "--threads", str(threads), "--devices", str(devices),
           "--strategy", strategy] + ([] if workers is None else ["--workers", str(workers)])
    for key, path in data.items():
        cmd += [f"--{key}", str(path)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"family": family, "error": f"no result within {timeout:.0f} s"}
    if proc.returncode != 0 or not out_json.exists():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        return {"family": family, "error": " | ".join(tail) or f"exit code {proc.returncode}"}
    return json.loads(out_json.read_text())


def bench_loading_part(data: dict, scratch: Path, quick: bool) -> dict:
    from echossl.bench.loading import bench_loading
    from echossl.data.cache import FrameCache

    paths = sorted((data["echonet"] / "Videos").glob("*.avi"))[:8]
    return bench_loading(paths, FrameCache(scratch / "cache"), _size("load_seconds", quick))


def bench_inference_part(data: dict, quick: bool) -> dict:
    """Random-initialised cpu-preset EF model (speed does not depend on training) on TEST videos."""
    import numpy as np
    import torch

    from echossl.bench.inference import bench_inference
    from echossl.config import load_config
    from echossl.data.cache import FrameCache
    from echossl.methods.ef import EFRegression
    from echossl.pipelines.semisupervised_ef import _normalise

    ef = load_config("cpu")["ef"]
    torch.manual_seed(0)
    module = EFRegression(model=ef["model"], model_kwargs=ef.get("model_kwargs"), mean_target=55.0)
    norm = {"mean": [30.0] * 3, "std": [40.0] * 3, "size": ef["size"]}
    cache = FrameCache()
    paths = sorted((data["echonet"] / "Videos").glob("*.avi"))[: _size("infer_videos", quick)]
    videos = [_normalise(np.asarray(cache.get(p)), norm, torch.device("cpu")) for p in paths]
    result = bench_inference(module, videos, length=ef["length"], period=ef["period"], batch_size=ef["infer_batch"])
    result.update(model=ef["model"], frame_size=ef["size"], clip_length=ef["length"])
    return result


def bench_training_part(data: dict, scratch: Path, quick: bool, progress) -> tuple[dict, dict]:
    """Each family at the cpu preset (no DataLoader workers); those waiting >= 10% again with 1 worker."""
    steps, warmup = _size("steps", quick), _size("warmup", quick)
    preset, one_worker = {}, {}
    for family in FAMILIES:
        progress(f"training steps: {family}")
        preset[family] = _worker("training", family, data, scratch, steps=steps, warmup=warmup, threads=2)
    for family, r in preset.items():
        if (r.get("data_wait_share") or 0) >= 0.10:
            progress(f"training steps: {family}, 1 DataLoader worker")
            one_worker[family] = _worker("workers1", family, data, scratch, steps=steps, warmup=warmup, threads=2,
                                         workers=1)
    return preset, one_worker


def bench_scaling_part(data: dict, scratch: Path, quick: bool, progress) -> dict:
    """EF family: 1 process x 1 thread, 1 process x 2 threads, 2 DDP processes x 1 thread, same samples seen."""
    steps = _size("ddp_steps", quick)
    runs = {}
    progress("scaling: 1 process, 1 thread")
    runs["1 process x 1 thread"] = _worker("scaling", "ef", data, scratch, steps=steps, warmup=2, threads=1)
    progress("scaling: 1 process, 2 threads")
    runs["1 process x 2 threads"] = _worker("scaling", "ef", data, scratch, steps=steps, warmup=2, threads=2)
    progress("scaling: 2-process DDP (gloo)")
    runs["2 DDP processes x 1 thread"] = _worker("scaling", "ef", data, scratch, steps=steps // 2, warmup=1, threads=1,
                                                 devices=2, strategy="ddp")
    base = runs["1 process x 1 thread"].get("samples_per_s")
    ddp = runs["2 DDP processes x 1 thread"].get("samples_per_s")
    return {"runs": runs, "ddp_speedup": ddp / base if base and ddp else None, "cpu_cores": os.cpu_count()}


def run_bench(out_json: str | Path, *, quick: bool = False, progress=print) -> dict:
    """Run every part and write ``out_json`` plus ``<out_json stem>_throughput.png`` and ``_ddp_loss.png``."""
    out_json = Path(out_json)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="echossl-bench-") as tmp:
        scratch = Path(tmp)
        old_cache = os.environ.get("ECHOSSL_CACHE")
        os.environ["ECHOSSL_CACHE"] = str(scratch / "cache")  # workers share one warm cache, the user's stays clean
        try:
            progress("simulating data")
            data = simulate_all(scratch / "data", quick)
            progress("decoding every video into the frame cache")
            warm_cache(data)
            progress("clip loading: cache vs OpenCV")
            result = {"quick": quick, "loading": bench_loading_part(data, scratch, quick)}
            progress("whole-video EF inference")
            result["inference"] = bench_inference_part(data, quick)
            result["training"], result["training_1_worker"] = bench_training_part(data, scratch, quick, progress)
            result["scaling"] = bench_scaling_part(data, scratch, quick, progress)
        finally:
            if old_cache is None:
                os.environ.pop("ECHOSSL_CACHE", None)
            else:
                os.environ["ECHOSSL_CACHE"] = old_cache
    result["targets"] = targets(result)
    result["seconds"] = time.perf_counter() - started
    from echossl.bench.report import write_outputs

    write_outputs(result, out_json)
    return result


def targets(result: dict) -> dict:
    """Each target of the performance issue: the measured figure and whether it is met."""
    t = {
        "cache_vs_opencv_>=5x": result["loading"]["ratio"],
        "inference_vs_naive_>=2x": result["inference"]["ratio"],
        "ddp_2proc_>=1.6x": result["scaling"]["ddp_speedup"],
    }
    for family, r in result["training"].items():
        t[f"{family}_data_wait_<10%"] = r.get("data_wait_share")
        if family in result.get("training_1_worker", {}):
            t[f"{family}_data_wait_1_worker_<10%"] = result["training_1_worker"][family].get("data_wait_share")
        if "loss_share" in r:
            t[f"{family}_loss_<=5%"] = r["loss_share"]
    limits = {">=5x": (5, 1), ">=2x": (2, 1), ">=1.6x": (1.6, 1), "<10%": (0.10, -1), "<=5%": (0.05, -1)}
    out = {}
    for name, value in t.items():
        limit, sign = next(v for k, v in limits.items() if name.endswith(k))
        out[name] = {"value": value, "met": None if value is None else bool(sign * (value - limit) >= 0)}
    return out
