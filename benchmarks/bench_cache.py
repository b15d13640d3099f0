"""Clips per second: FrameCache memmap vs decoding the AVI with OpenCV.

Loads a 32-frame clip at period 2 from a random start, either from the decoded
frame cache or by decoding the AVI frame by frame with ``cv2.VideoCapture`` up
to the clip's last frame (what the reference loader does, minus decoding the
rest of the video, so the comparison flatters OpenCV). Both produce the same
``(32, H, W, 3)`` uint8 RGB array.

    python benchmarks/bench_cache.py                 # makes its own 112x112 videos
    python benchmarks/bench_cache.py --data DIR      # an EchoNet-Dynamic folder

Not a test: prints numbers only.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from echossl.data.cache import FrameCache
from echossl.data.sampling import all_starts, clip_indices, take_frames
from echossl.data.video import write_video

LENGTH, PERIOD = 32, 2


def make_videos(folder: Path, n: int, frames: int, size: int = 112, seed: int = 0) -> list[Path]:
    """Echo-like videos: a dark sector with a pulsing bright blob plus speckle noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    paths = []
    for v in range(n):
        t = np.arange(frames)[:, None, None]
        radius = size * (0.18 + 0.05 * np.sin(2 * np.pi * t / 40 + v))
        blob = ((yy - size / 2) ** 2 + (xx - size / 2) ** 2) < radius**2
        grey = np.where(blob, 40, 160) + rng.normal(0, 25, (frames, size, size))
        grey = np.clip(grey, 0, 255).astype(np.uint8)
        path = folder / f"bench{v:03d}.avi"
        write_video(path, np.repeat(grey[..., None], 3, axis=-1), fps=50)
        paths.append(path)
    return paths


def opencv_clip(path: Path, idx: np.ndarray) -> np.ndarray:
    """Decode frame by frame up to the last index (the reference's read loop)."""
    cap = cv2.VideoCapture(str(path))
    wanted = set(idx.tolist())
    got = {}
    last = int(idx.max())
    for f in range(last + 1):
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


def run(paths: list[Path], cache: FrameCache, seconds: float, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    for p in paths:  # warm the cache once (the first epoch's cost)
        cache.get(p)

    def plan():
        p = paths[rng.integers(len(paths))]
        n = cache.get(p).shape[0]
        starts = all_starts(n, LENGTH, PERIOD)
        return p, clip_indices(n, LENGTH, PERIOD, int(rng.choice(starts)))

    rates = {}
    for name, load in (("cache", lambda p, i: np.array(take_frames(cache.get(p), i))),
                       ("opencv", opencv_clip)):
        count, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            p, idx = plan()
            clip = load(p, idx)
            assert clip.shape[0] == LENGTH
            count += 1
        rates[name] = count / (time.perf_counter() - t0)
    # same pixels from both paths
    p, idx = plan()
    assert np.array_equal(np.array(take_frames(cache.get(p), idx)), opencv_clip(p, idx))
    rates["ratio"] = rates["cache"] / rates["opencv"]
    return rates


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, help="EchoNet-Dynamic folder (uses its Videos/*.avi)")
    ap.add_argument("--videos", type=int, default=6)
    ap.add_argument("--frames", type=int, default=150, help="frames per made-up video (real mean ~175)")
    ap.add_argument("--seconds", type=float, default=3.0, help="time per method")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.data:
            paths = sorted((args.data / "Videos").glob("*.avi"))[: args.videos]
        else:
            paths = make_videos(tmp / "videos", args.videos, args.frames)
        r = run(paths, FrameCache(tmp / "cache"), args.seconds)
    print(f"clip: {LENGTH} frames, period {PERIOD}, {len(paths)} videos")
    print(f"cache : {r['cache']:9.1f} clips/s")
    print(f"opencv: {r['opencv']:9.1f} clips/s")
    print(f"ratio : {r['ratio']:9.1f}x")


if __name__ == "__main__":
    main()
