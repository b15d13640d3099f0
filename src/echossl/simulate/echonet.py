"""Synthetic echocardiography videos in EchoNet-Dynamic's exact on-disk layout.

``simulate_echonet(out, videos)`` writes::

    OUT/FileList.csv           FileName,EF,ESV,EDV,FrameHeight,FrameWidth,FPS,NumberOfFrames,Split
    OUT/VolumeTracings.csv     FileName,X1,Y1,X2,Y2,Frame   (FileName with .avi; ES rows, then ED rows)
    OUT/Videos/<FileName>.avi  MJPG, 3 identical grey channels, size x size
    OUT/echossl_truth/<FileName>.npz   ground truth that EchoNet readers ignore
    OUT/echossl_truth/meta.json

Each traced frame has 21 rows: the long axis (apex -> mitral-annulus midpoint)
then 20 perpendicular chords. Because the simulated LV *is* that polygon (see
:mod:`echossl.simulate.heart`), the reference mask rule
``skimage.draw.polygon(rint(y), rint(x))`` with ``x = X1[1:] + reversed(X2[1:])``
reproduces the truth mask exactly, and EDV/ESV/EF in FileList.csv are the
method-of-disks values of the written tracings (pixel spacing
``0.14 * 112 / size`` cm, so volumes do not depend on ``size``).

Every video is a pure function of ``(seed, index)``, so the output is the same
whatever the number of worker processes.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

from echossl.data.video import write_video
from echossl.errors import ConfigError
from echossl.simulate import heart as hm

STYLES = ("default", "easy", "shifted")
FILELIST_COLUMNS = ["FileName", "EF", "ESV", "EDV", "FrameHeight", "FrameWidth", "FPS", "NumberOfFrames", "Split"]
TRACING_COLUMNS = ["FileName", "X1", "Y1", "X2", "Y2", "Frame"]

# Domain tags: independent random streams for names, splits and each video.
_NAMES, _SPLITS, _VIDEO = 2, 3, 1


def pixel_spacing_cm(size: int) -> float:
    """Pixel length in cm: 0.14 cm at 112 px, so the field of view is 15.7 cm at every size."""
    return 0.14 * 112.0 / size


def file_names(seed: int, n: int) -> list[str]:
    """``n`` unique EchoNet-like names, ``"0X"`` + 16 upper-case hex digits, deterministic by seed."""
    rng = np.random.default_rng([seed, _NAMES])
    names: list[str] = []
    seen: set[str] = set()
    while len(names) < n:
        name = "0X" + "".join(f"{b:02X}" for b in rng.integers(0, 256, 8, dtype=np.uint8))
        if name not in seen:
            seen.add(name)
            names.append(name)
    return names


def assign_splits(seed: int, n: int) -> np.ndarray:
    """TRAIN/VAL/TEST ≈ 75/12.5/12.5 by a seeded permutation; each non-empty when ``n >= 8``."""
    rng = np.random.default_rng([seed, _SPLITS])
    order = rng.permutation(n)
    n_val = int(round(0.125 * n))
    n_test = int(round(0.125 * n))
    if n >= 8:
        n_val, n_test = max(1, n_val), max(1, n_test)
    split = np.full(n, "TRAIN", dtype=object)
    split[order[:n_val]] = "VAL"
    split[order[n_val : n_val + n_test]] = "TEST"
    return split


def simulate_video(seed: int, index: int, size: int = 112, style: str = "default", irregular: float = 0.1) -> dict:
    """Simulate one video in memory (no files), deterministic in ``(seed, index)``.

    Returns a dict with ``frames`` ``(F, H, W)`` uint8, ``tracings`` ``(F, 21, 4)``
    (4-decimal, as written), ``masks`` ``(F, H, W)`` bool, ``volume`` ``(F,)`` mL,
    ``ed_frames``, ``es_frames``, ``traced_ed``, ``traced_es``, ``fps``, ``ef``
    (the method-of-disks EF of the traced pair), ``edv``, ``esv``, ``irregular``.
    """
    rng = np.random.default_rng([seed, _VIDEO, index])
    spacing = pixel_spacing_cm(size)
    is_irregular = bool(rng.random() < irregular)
    fps = int(rng.integers(30, 61))
    heart_rate = rng.uniform(50.0, 110.0)
    n_frames = int(rng.integers(100, 221))
    systole_fraction = rng.uniform(0.35, 0.40)
    ef_drawn = hm.sample_ef(rng)
    if style == "easy":
        heart = hm.sample_heart(rng, ef_drawn, spacing, size, size)
        schedule = hm.build_schedule(rng, n_frames, fps * 60.0 / heart_rate, systole_fraction, is_irregular)
        look = hm.sample_look(rng, style, spacing)  # last, so the style changes only the rendering
        shift, artefacts_needed = None, False
        apex, tilt = (size / 2.0, -0.01 * size), 0.0
    else:
        wall_cm = (1.2, 1.6) if style == "shifted" else (0.6, 1.4)
        heart = hm.sample_heart_varied(rng, ef_drawn, spacing, size, size, wall_cm=wall_cm)
        schedule = hm.build_schedule(rng, n_frames, fps * 60.0 / heart_rate, systole_fraction, is_irregular)
        shift = hm.sample_motion(rng, n_frames, fps, spacing)
        # probe offset: the fan's apex moves sideways and the fan tilts
        apex = (size / 2.0 + rng.uniform(-0.8, 0.8) / spacing, -0.01 * size)
        tilt = rng.uniform(-0.12, 0.12)
        look = hm.sample_look(rng, style, spacing)
        heart = hm.fit_heart(heart, apex, 0.98 * size, look.sector_half_angle, tilt, size, size,
                             margin=hm.motion_margin(shift) + 1.0)
        artefacts_needed = True

    levels = schedule.level(np.arange(n_frames))
    tracings = hm.quantize_tracings(hm.lv_tracings(heart, levels, shift))
    masks = np.stack([hm.tracing_mask(t, (size, size)) for t in tracings])
    volume = hm.tracing_volumes(tracings, spacing)
    ed_frames, es_frames = schedule.extremum_frames(volume)

    sector = hm.sector_mask(size, size, apex, 0.98 * size, look.sector_half_angle, tilt)
    artefacts = (
        hm.sample_artefacts(rng, heart, look, shift, size, size, apex, tilt) if artefacts_needed else None
    )
    frames = hm.render(rng, heart, look, tracings, levels, masks, sector, apex, artefacts=artefacts)

    ed, es = schedule.traced_ed, schedule.traced_es
    edv, esv = float(volume[ed]), float(volume[es])
    return {
        "frames": frames,
        "tracings": tracings,
        "masks": masks,
        "volume": volume,
        "ed_frames": ed_frames,
        "es_frames": es_frames,
        "traced_ed": ed,
        "traced_es": es,
        "fps": fps,
        "edv": edv,
        "esv": esv,
        "ef": 100.0 * (edv - esv) / edv,
        "irregular": is_irregular,
    }


def _write_one(task: tuple) -> dict:
    """Worker: simulate video ``index``, write its AVI and truth file, return its CSV rows."""
    out, index, name, seed, size, style, irregular = task
    sim = simulate_video(seed, index, size, style, irregular)
    out = Path(out)
    frames = sim["frames"]
    write_video(out / "Videos" / f"{name}.avi", np.repeat(frames[..., None], 3, axis=-1), sim["fps"])
    np.savez_compressed(
        out / "echossl_truth" / f"{name}.npz",
        masks=sim["masks"],
        volume=sim["volume"],
        ed_frames=sim["ed_frames"],
        es_frames=sim["es_frames"],
        traced_ed=np.int64(sim["traced_ed"]),
        traced_es=np.int64(sim["traced_es"]),
    )
    rows = []
    # ES first, ED last: the reference loader takes the first traced frame as ES.
    for frame in (sim["traced_es"], sim["traced_ed"]):
        for x1, y1, x2, y2 in sim["tracings"][frame]:
            rows.append((f"{name}.avi", x1, y1, x2, y2, frame))
    return {
        "index": index,
        "row": {
            "FileName": name,
            "EF": sim["ef"],
            "ESV": sim["esv"],
            "EDV": sim["edv"],
            "FrameHeight": size,
            "FrameWidth": size,
            "FPS": sim["fps"],
            "NumberOfFrames": int(frames.shape[0]),
        },
        "tracings": rows,
    }


def _init_worker() -> None:
    import cv2

    cv2.setNumThreads(1)  # one process per core already; OpenCV threads would only contend


@contextmanager
def progress_bar(enabled: bool, description: str, total: int):
    """Yield an ``advance()`` callable driving a rich progress bar (a no-op when disabled)."""
    if not enabled:
        yield lambda: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    ) as bar:
        task = bar.add_task(description, total=total)
        yield lambda: bar.advance(task)


def _check(videos: int, seed: int, size: int, style: str, irregular: float, workers: int | None) -> None:
    if not isinstance(videos, (int, np.integer)) or videos < 1:
        raise ConfigError(f"--videos must be a positive integer, got {videos}.")
    if seed < 0:
        raise ConfigError(f"--seed must be a non-negative integer, got {seed}.")
    if size < 32 or size > 1024:
        raise ConfigError(f"--size must be between 32 and 1024 pixels, got {size}.")
    if style not in STYLES:
        raise ConfigError(f"--style must be one of {', '.join(STYLES)}, got {style!r}.")
    if not 0.0 <= irregular <= 1.0:
        raise ConfigError(f"--irregular must be a fraction between 0 and 1, got {irregular}.")
    if workers is not None and workers < 1:
        raise ConfigError(f"workers must be at least 1, got {workers}.")


def simulate_echonet(
    out: str | Path,
    videos: int,
    seed: int = 0,
    size: int = 112,
    style: str = "default",
    irregular: float = 0.1,
    workers: int | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Write a synthetic EchoNet-Dynamic data set to ``out`` and return its FileList.

    Args:
        out: output folder (created; existing files of the same names are replaced).
        videos: number of videos.
        seed: base seed; video ``i`` depends only on ``(seed, i)``.
        size: frame height and width in pixels (112 like EchoNet).
        style: ``"default"`` (varied anatomy and ultrasound artefacts), ``"easy"``
            (the original clean look, for fast tests) or ``"shifted"`` (a different
            look, for external tests).
        irregular: fraction of videos whose beat lengths and amplitudes vary beat to beat.
        workers: processes; ``None`` means ``min(2, os.cpu_count())``.
        progress: show a rich progress bar.

    Returns:
        The FileList as written (columns :data:`FILELIST_COLUMNS`).

    Raises:
        ConfigError: an option is out of range.
    """
    style = str(style).lower()
    _check(videos, seed, size, style, irregular, workers)
    out = Path(out)
    (out / "Videos").mkdir(parents=True, exist_ok=True)
    (out / "echossl_truth").mkdir(parents=True, exist_ok=True)
    workers = min(2, os.cpu_count() or 1) if workers is None else workers
    names = file_names(seed, videos)
    tasks = [(str(out), i, names[i], seed, size, style, irregular) for i in range(videos)]
    results: list[dict | None] = [None] * videos

    with progress_bar(progress, "simulate echonet", videos) as advance:
        if workers == 1 or videos == 1:
            for task in tasks:
                res = _write_one(task)
                results[res["index"]] = res
                advance()
        else:
            # spawn, not fork: the parent may hold OpenCV/torch threads, and a
            # forked child inheriting their locks can deadlock
            with mp.get_context("spawn").Pool(min(workers, videos), initializer=_init_worker) as pool:
                for res in pool.imap_unordered(_write_one, tasks, chunksize=1):
                    results[res["index"]] = res
                    advance()

    filelist = pd.DataFrame([r["row"] for r in results], columns=FILELIST_COLUMNS[:-1])
    filelist["Split"] = assign_splits(seed, videos)
    filelist = filelist[FILELIST_COLUMNS]
    tracings = pd.DataFrame([row for r in results for row in r["tracings"]], columns=TRACING_COLUMNS)
    _write_csv(filelist, out / "FileList.csv", float_format="%.6f")
    _write_csv(tracings, out / "VolumeTracings.csv", float_format="%.4f")
    meta = {
        "generator": "echossl.simulate.echonet",
        "format": "EchoNet-Dynamic",
        "seed": seed,
        "videos": videos,
        "size": size,
        "style": style,
        "irregular": irregular,
        "pixel_spacing_cm": pixel_spacing_cm(size),
        "n_chords": hm.N_CHORDS,
        "truth_files": "echossl_truth/<FileName>.npz: masks (F,H,W) bool, volume (F,) mL, "
        "ed_frames, es_frames, traced_ed, traced_es (0-based frames)",
    }
    (out / "echossl_truth" / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return filelist


def _write_csv(df: pd.DataFrame, path: Path, float_format: str) -> None:
    # temp-then-rename: a reader never sees half a CSV
    tmp = path.with_name(path.name + ".tmp")
    df.to_csv(tmp, index=False, float_format=float_format)
    tmp.replace(path)
