"""Clip loading: the decoded-frame cache against frame-by-frame OpenCV decoding.

The reference loader (EchoNet-Dynamic's ``loadvideo``) opens the AVI with
``cv2.VideoCapture`` and decodes frame by frame on every access. Here it decodes
only up to the clip's last frame, which flatters OpenCV. Both paths return the
same ``(T, H, W, 3)`` uint8 RGB clip; the benchmark checks that they agree.
"""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np

from echossl.data.cache import FrameCache
from echossl.data.sampling import all_starts, clip_indices, take_frames


def opencv_clip(path: Path, idx: np.ndarray) -> np.ndarray:
    """Decode frame by frame up to ``idx.max()`` and keep the wanted frames (the reference's read loop)."""
    cap = cv2.VideoCapture(str(path))
    wanted = set(idx.tolist())
    got = {}
    for f in range(int(idx.max()) + 1):
        ok, frame = cap.read()
        if not ok:
            break
        if f in wanted:
            got[f] = frame[:, :, ::-1]
    cap.release()
    h, w = next(iter(got.values())).shape[:2]
    out = np.zeros((len(idx), h, w, 3), np.uint8)
    for k, f in enumerate(idx):
        if f in got:
            out[k] = got[f]
    return out


def cache_clip(cache: FrameCache, path: Path, idx: np.ndarray) -> np.ndarray:
    return np.array(take_frames(cache.get(path), idx))


def bench_loading(paths: list[Path], cache: FrameCache, seconds: float, *, length: int = 32, period: int = 2,
                  seed: int = 0) -> dict:
    """Clips/s of each path, each run for ``seconds`` on the same random (video, start) sequence.

    The cache is warmed first: its one-off decode is the first epoch's cost, not the steady state.
    """
    for p in paths:
        cache.get(p)

    def plans():
        rng = np.random.default_rng(seed)
        while True:
            p = paths[rng.integers(len(paths))]
            n = cache.get(p).shape[0]
            yield p, clip_indices(n, length, period, int(rng.choice(all_starts(n, length, period))))

    result = {"length": length, "period": period, "videos": len(paths)}
    for name, load in (("cache", lambda p, i: cache_clip(cache, p, i)), ("opencv", opencv_clip)):
        count, plan, t0 = 0, plans(), time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            load(*next(plan))
            count += 1
        result[f"{name}_clips_per_s"] = count / (time.perf_counter() - t0)
    p, idx = next(plans())
    result["identical_pixels"] = bool(np.array_equal(cache_clip(cache, p, idx), opencv_clip(p, idx)))
    result["ratio"] = result["cache_clips_per_s"] / result["opencv_clips_per_s"]
    return result
