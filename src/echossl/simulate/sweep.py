"""Synthetic fetal ultrasound sweeps with a synchronised sonographer narration.

Stands in for the multi-modal fetal ultrasound data of video-speech-contrastive.md
(Sec. 3.1): a scan that moves through standard planes, the sonographer's speech
recorded by an open microphone, and eye-gaze. ``simulate_sweep(out, n)`` writes::

    OUT/sweeps.csv              FileName,Split,NumberOfFrames,FPS,FrameHeight,FrameWidth,SampleRate,Seconds
    OUT/sweep.json              {"planes": [14 names], "fps", "sample_rate", "gaze_window_frames", "gaze_sigma_px"}
    OUT/Videos/<name>.avi       MJPG, grey frames (3 identical channels)
    OUT/Audio/<name>.wav        mono int16 PCM at 24 kHz (scipy.io.wavfile)
    OUT/Labels/<name>.csv       Frame,Plane,GazeX,GazeY   (one row per frame; Plane is a name
                                from sweep.json, GazeX/GazeY the sonographer's gaze in pixels)
    OUT/Saliency/<name>.npz     maps: (F, H, W) uint8 gaze saliency per frame (max 255)
    OUT/echossl_truth/<name>.json   what the reader never needs: narration lag, audio events

Video: 14 classes (the paper's 13 standard planes + ``Background``). The probe
dwells 3-6 s on a plane, with 1-3 s of background search in between. Each plane
has its own anatomy (ellipses, rings and dot rows in a distinct layout; the four
heart views share the thorax and differ only inside the heart, as in the paper's
fine-grained confusions). Speckle grain, gain, gamma, depth gain (TGC), zoom and
the surrounding tissue's echogenicity are drawn per dwell independently of the
plane, so the plane is in the layout, not in a global statistic. Speckle is fixed to the
tissue and the anatomy drifts, turns and zooms smoothly, so frame order is
visible in the motion. Frames are inside an ultrasound fan.

Audio (a pure function of the same seed): air-conditioning rumble and mains hum
throughout, button clicks at random times, and speech-like sounds built from
harmonics of a speaker's pitch shaped by formant resonances, in syllables at
about 4-5 per second. While the probe dwells on a plane, the sonographer
usually narrates it with words made of that plane's own three vowel patterns
(the same "language" for every video and seed), starting up to 0.3 s before
(lead) or 0.5 s after (lag) the video, per video. Unrelated chatter (random
formants, uncorrelated with the plane) fills some of the remaining time; the
rest is background noise only.

Gaze: the sonographer's gaze moves between the plane's landmark structures and
follows them as they drift; the saliency map of frame t is the sum of Gaussians
(sigma ``gaze_sigma_px``) at the gaze points of frames ``t - w .. t + w``,
scaled to a maximum of 255 (``w = gaze_window_frames``).

Every video is a pure function of ``(seed, index)``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage
from scipy.io import wavfile
from scipy.special import expit

from echossl.data.video import write_video
from echossl.errors import ConfigError
from echossl.io import atomic_write_text

PLANES = ("3VT", "4CH", "Abdomen", "Femur", "BrainTv", "Kidneys", "LVOT", "Lips", "Profile", "RVOT",
          "BrainTc", "SpineCor", "SpineSag", "Background")
BACKGROUND = PLANES.index("Background")
SAMPLE_RATE = 24_000
SWEEP_COLUMNS = ["FileName", "Split", "NumberOfFrames", "FPS", "FrameHeight", "FrameWidth", "SampleRate", "Seconds"]
LABEL_COLUMNS = ["Frame", "Plane", "GazeX", "GazeY"]

# Independent random streams.
_VIDEO, _SPLITS, _LANGUAGE = 11, 12, 13
# The narration "language" is the same for every data set: a model trained on one
# simulated set meets the same words for a plane in another.
_LANGUAGE_SEED = 20210927

# --------------------------------------------------------------------------- #
# Anatomy: (kind, cx, cy, ax, ay, angle_deg, intensity, landmark) in anatomy units
# (1 = anatomy radius). "fill" = solid ellipse, "ring" = ellipse outline; a
# negative intensity is fluid (dark).
# --------------------------------------------------------------------------- #
_THORAX = [("ring", 0, 0, 1.0, 0.95, 0, 0.5, False), ("fill", 0.2, 0.75, 0.09, 0.09, 0, 0.9, False),
           ("fill", -0.1, -0.1, 0.5, 0.45, 0, 0.25, False)]
_SKULL = [("ring", 0, 0, 1.0, 0.8, 0, 0.9, False)]
ANATOMY: dict[str, list[tuple]] = {
    "BrainTv": _SKULL + [("fill", 0, 0, 0.8, 0.03, 0, 0.5, False), ("fill", 0.35, -0.3, 0.25, 0.1, 0, -0.5, True),
                         ("fill", 0.35, -0.3, 0.1, 0.05, 0, 0.6, False), ("fill", -0.3, 0, 0.12, 0.07, 0, -0.4, True)],
    "BrainTc": [("ring", 0, 0, 1.0, 0.85, 0, 0.9, False), ("fill", -0.2, 0, 0.55, 0.03, 0, 0.4, False),
                ("fill", 0.55, -0.2, 0.15, 0.18, 0, -0.4, False), ("fill", 0.55, 0.2, 0.15, 0.18, 0, -0.4, False),
                ("fill", 0.55, 0, 0.06, 0.12, 0, 0.6, True), ("fill", 0.82, 0, 0.08, 0.15, 0, -0.5, True)],
    "Abdomen": [("ring", 0, 0, 0.9, 0.9, 0, 0.5, False), ("fill", -0.3, -0.35, 0.25, 0.15, 0, -0.6, True),
                ("fill", 0.25, 0.1, 0.2, 0.06, 30, -0.5, True), ("fill", 0, 0.7, 0.08, 0.08, 0, 0.9, False),
                ("fill", -0.12, 0.62, 0.05, 0.05, 0, 0.7, False), ("fill", 0.12, 0.62, 0.05, 0.05, 0, 0.7, False)],
    "Femur": [("fill", 0, 0, 1.0, 0.35, 20, 0.15, False), ("fill", 0, 0, 0.9, 0.07, 20, 1.0, True),
              ("fill", 0.85, 0.31, 0.1, 0.1, 0, 0.6, True), ("fill", -0.85, -0.31, 0.1, 0.1, 0, 0.6, False)],
    "Kidneys": [("ring", 0, 0, 0.95, 0.9, 0, 0.3, False), ("fill", 0, 0.6, 0.09, 0.09, 0, 0.9, False),
                ("ring", -0.4, 0.25, 0.22, 0.32, 15, 0.6, True), ("ring", 0.4, 0.25, 0.22, 0.32, -15, 0.6, True),
                ("fill", -0.4, 0.25, 0.06, 0.1, 0, -0.4, False), ("fill", 0.4, 0.25, 0.06, 0.1, 0, -0.4, False)],
    "Lips": [("fill", 0, -0.2, 0.45, 0.1, 0, 0.8, True), ("fill", 0, 0.2, 0.4, 0.09, 0, 0.8, True),
             ("fill", 0, 0, 0.35, 0.04, 0, -0.3, False), ("fill", -0.15, -0.55, 0.06, 0.05, 0, -0.5, False),
             ("fill", 0.15, -0.55, 0.06, 0.05, 0, -0.5, False)],
    "Profile": [("ring", 0.3, 0, 0.9, 1.0, 0, 0.7, False), ("fill", -0.65, -0.1, 0.15, 0.08, 0, 0.9, True),
                ("fill", -0.5, 0.6, 0.12, 0.1, 0, 0.7, True), ("fill", -0.45, -0.7, 0.1, 0.14, 0, 0.5, False)],
    "SpineCor": [("fill", side * 0.25, k * 0.2, 0.07, 0.06, 0, 0.9, abs(k) <= 1) for side in (-1, 1)
                 for k in range(-4, 5)],
    "SpineSag": [("fill", 0.1 * np.sin(k * 0.5), k * 0.2, 0.09, 0.05, 0, 0.9, abs(k) <= 1) for k in range(-4, 5)]
    + [("fill", -0.35, 0, 0.04, 1.0, 0, 0.5, False)],
    "4CH": _THORAX + [("fill", -0.3, -0.3, 0.15, 0.15, 0, -0.6, False), ("fill", 0.1, -0.3, 0.15, 0.15, 0, -0.6, False),
                      ("fill", -0.3, 0.1, 0.15, 0.15, 0, -0.6, False), ("fill", 0.1, 0.1, 0.15, 0.15, 0, -0.6, False),
                      ("fill", -0.1, -0.1, 0.05, 0.05, 0, 0.6, True)],
    "LVOT": _THORAX + [("fill", -0.3, -0.1, 0.16, 0.18, 0, -0.6, False), ("fill", 0.05, 0.1, 0.15, 0.15, 0, -0.6, False),
                       ("fill", 0.1, -0.35, 0.3, 0.07, -35, -0.6, True)],
    "RVOT": _THORAX + [("fill", -0.2, 0.05, 0.2, 0.16, 0, -0.6, False), ("fill", -0.05, -0.4, 0.35, 0.07, 35, -0.6, True),
                       ("fill", 0.25, -0.55, 0.07, 0.07, 0, -0.5, False)],
    "3VT": _THORAX[:2] + [("fill", -0.1, 0.05, 0.4, 0.3, 0, 0.2, False), ("fill", -0.35, -0.2, 0.1, 0.1, 0, -0.6, True),
                          ("fill", -0.1, -0.25, 0.08, 0.08, 0, -0.6, True), ("fill", 0.12, -0.28, 0.06, 0.06, 0, -0.6, False),
                          ("ring", 0.15, -0.05, 0.06, 0.06, 0, 0.6, False)],
}
# Speckle grain (in anatomy-grid pixels), gain and gamma are drawn per dwell from ranges that
# do not depend on the plane, so no plane can be told from its texture or brightness alone
# (issue 14: six global intensity statistics must not classify planes).
GRAIN_RANGE = (0.6, 1.8)
GAIN_RANGE = (0.65, 1.45)
GAMMA_RANGE = (0.38, 0.7)


def _language() -> dict:
    """Per plane three vowel patterns (F1, F2, F3 in Hz) and two consonant kinds."""
    rng = np.random.default_rng([_LANGUAGE_SEED, _LANGUAGE])
    vocab = {}
    for p in range(len(PLANES)):
        f1 = rng.uniform(260, 900, 3)
        f2 = rng.uniform(850, 2500, 3)
        f3 = rng.uniform(2300, 3300, 3)
        vocab[p] = {"vowels": np.stack([f1, np.maximum(f2, f1 + 250), f3], 1), "consonants": rng.choice(4, 2, replace=False)}
    return vocab


LANGUAGE = _language()


# --------------------------------------------------------------------------- #
# Video
# --------------------------------------------------------------------------- #

def plane_schedule(rng: np.random.Generator, n_frames: int, fps: float) -> list[tuple[int, int, int]]:
    """Dwell segments ``[(plane, start, end)]`` covering ``0..n_frames``; background between planes."""
    segments, t, last = [], 0, -1
    background = bool(rng.random() < 0.5)
    while t < n_frames:
        if background:
            plane, length = BACKGROUND, rng.uniform(1.0, 3.0)
        else:
            choices = [p for p in range(len(PLANES) - 1) if p != last]
            plane, length = int(rng.choice(choices)), rng.uniform(3.0, 6.0)
            last = plane
        end = min(n_frames, t + max(2, int(round(length * fps))))
        segments.append((plane, t, end))
        t, background = end, not background
    return segments


def _smooth_walk(rng, n: int, scale: float, smooth: float) -> np.ndarray:
    """A smooth random walk of ``n`` steps (cumulated low-pass noise), zero at the start."""
    steps = ndimage.gaussian_filter1d(rng.normal(0, 1, n), smooth, mode="nearest")
    steps = steps / (np.abs(steps).max() + 1e-9) * scale
    walk = np.cumsum(steps)
    return walk - walk[0]


def _dwell_motion(rng, n: int, fps: float, size: int) -> dict:
    """Per-frame anatomy centre (px), angle (rad) and scale for one dwell."""
    drift_px_per_frame = rng.uniform(3.0, 7.0) * size / 64.0 / fps
    direction = rng.uniform(0, 2 * np.pi)
    # steady drift plus wander: frame order is visible, but not trivially linear
    t = np.arange(n)
    cx = size / 2 + rng.normal(0, 0.06 * size) + np.cos(direction) * drift_px_per_frame * (t - n / 2) \
        + _smooth_walk(rng, n, 0.4 * drift_px_per_frame, fps / 3)
    cy = size * 0.55 + rng.normal(0, 0.05 * size) + np.sin(direction) * drift_px_per_frame * (t - n / 2) \
        + _smooth_walk(rng, n, 0.4 * drift_px_per_frame, fps / 3)
    angle = rng.uniform(-0.5, 0.5) + rng.uniform(-0.25, 0.25) * t / max(n, 1)
    scale = rng.uniform(0.85, 1.15) * (1 + rng.uniform(-0.12, 0.12) * t / max(n, 1))
    return {"cx": cx, "cy": cy, "angle": angle, "scale": scale}


def _anatomy_coords(motion: dict, size: int, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Pixel grid -> anatomy coordinates for every frame of a dwell: two ``(n, H, W)`` arrays."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    dx = xx[None] - motion["cx"][:, None, None]
    dy = yy[None] - motion["cy"][:, None, None]
    ang = np.broadcast_to(np.asarray(motion["angle"], dtype=np.float32), motion["cx"].shape)[:, None, None]
    r = radius * np.broadcast_to(np.asarray(motion["scale"], dtype=np.float32), motion["cx"].shape)[:, None, None]
    u = (np.cos(ang) * dx + np.sin(ang) * dy) / r
    v = (-np.sin(ang) * dx + np.cos(ang) * dy) / r
    return u.astype(np.float32), v.astype(np.float32)


def _structures(rng, plane: int) -> list[tuple]:
    if plane != BACKGROUND:
        return ANATOMY[PLANES[plane]]
    # search clutter: a few random blobs, new for every background dwell
    return [("fill", rng.uniform(-1, 1), rng.uniform(-1, 1), rng.uniform(0.1, 0.5), rng.uniform(0.1, 0.4),
             rng.uniform(0, 180), rng.uniform(-0.5, 0.6), False) for _ in range(int(rng.integers(3, 7)))]


def _render_structures(structures, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Echogenicity ``(n, H, W)`` of ellipses and rings at anatomy coordinates."""
    tissue = np.zeros_like(u)
    for kind, cx, cy, ax, ay, angle, intensity, _ in structures:
        a = np.deg2rad(angle)
        du, dv = u - cx, v - cy
        p = (np.cos(a) * du + np.sin(a) * dv) / ax
        q = (-np.sin(a) * du + np.cos(a) * dv) / ay
        r = np.sqrt(p * p + q * q)
        if kind == "ring":
            tissue += intensity * np.exp(-((r - 1.0) / 0.12) ** 2)
        else:
            tissue += intensity * expit((1.0 - r) * 12.0)
    return tissue


def _speckle(rng, grain: float, u: np.ndarray, v: np.ndarray, extent: float = 3.0, grid: int = 96) -> np.ndarray:
    """Tissue-fixed Rayleigh speckle of grain ``grain`` (grid pixels), sampled at anatomy coordinates."""
    field = ndimage.gaussian_filter(rng.normal(size=(grid, grid)), grain) + 1j * ndimage.gaussian_filter(
        rng.normal(size=(grid, grid)), grain)
    mag = np.abs(field)
    mag /= mag.mean() + 1e-9
    coords = np.stack([(v + extent) / (2 * extent) * (grid - 1), (u + extent) / (2 * extent) * (grid - 1)])
    return ndimage.map_coordinates(mag, coords.reshape(2, -1), order=1, mode="wrap").reshape(u.shape)


def sector_mask(size: int, half_angle: float = np.deg2rad(40)) -> np.ndarray:
    """``(H, W)`` bool ultrasound fan with its apex at the top centre."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    dx, dy = xx - size / 2, yy + 0.02 * size
    r, theta = np.hypot(dx, dy), np.arctan2(dx, dy)
    return (r <= 1.02 * size) & (np.abs(theta) <= half_angle)


def render_video(rng, segments, size: int, fps: float) -> dict:
    """Frames ``(F, H, W)`` uint8 and the landmark positions ``(F, L, 2)`` (x, y px; NaN padded)."""
    n_frames = segments[-1][2]
    frames = np.zeros((n_frames, size, size), dtype=np.uint8)
    landmarks = np.full((n_frames, 6, 2), np.nan, dtype=np.float32)
    fan = sector_mask(size)
    rows = np.linspace(0.0, 1.0, size, dtype=np.float32)[:, None]
    gain = rng.uniform(0.8, 1.25)  # per scan (machine, patient)
    for plane, start, end in segments:
        n = end - start
        motion = _dwell_motion(rng, n, fps, size)
        radius = 0.3 * size * rng.uniform(0.75, 1.3)  # zoom / gestational age: anatomy size is no class cue
        u, v = _anatomy_coords(motion, size, radius)
        structures = _structures(rng, plane)
        tissue = rng.uniform(0.08, 0.3) + _render_structures(structures, u, v)
        speckle = _speckle(rng, rng.uniform(*GRAIN_RANGE), u, v)
        # per-dwell gain, TGC (depth slope) and gamma: the sonographer re-adjusts them, whatever the plane
        tgc = 1.0 - rng.uniform(0.0, 0.5) * rows + rng.uniform(-0.15, 0.15) * (rows - 0.5) ** 2
        img = np.clip(tissue, 0.02, None) * speckle * gain * rng.uniform(*GAIN_RANGE) * tgc
        img += rng.normal(0, rng.uniform(0.01, 0.06), img.shape).astype(np.float32)  # electronic noise
        img = np.clip(img, 0, 1.6) / 1.6
        frames[start:end] = (np.power(img, rng.uniform(*GAMMA_RANGE)) * 255 * fan).astype(np.uint8)
        marks = [(s[1], s[2]) for s in structures if s[7]][:6]
        if plane == BACKGROUND or not marks:
            marks = [(0.0, 0.0)]
        m = np.asarray(marks, dtype=np.float32)  # (L, 2) anatomy units
        ang = np.broadcast_to(motion["angle"], (n,))[:, None]
        sc = radius * np.broadcast_to(motion["scale"], (n,))[:, None]
        # inverse of _anatomy_coords: rotate by +angle
        x = motion["cx"][:, None] + sc * (np.cos(ang) * m[None, :, 0] - np.sin(ang) * m[None, :, 1])
        y = motion["cy"][:, None] + sc * (np.sin(ang) * m[None, :, 0] + np.cos(ang) * m[None, :, 1])
        landmarks[start:end, : len(m), 0] = x
        landmarks[start:end, : len(m), 1] = y
    return {"frames": frames, "landmarks": landmarks}


def gaze_track(rng, landmarks: np.ndarray, fps: float, size: int) -> np.ndarray:
    """The gaze point ``(F, 2)`` (x, y px): fixations on landmarks, switching every 0.3-0.8 s."""
    n = len(landmarks)
    available = np.isfinite(landmarks[:, :, 0])
    gaze = np.zeros((n, 2), dtype=np.float32)
    t = 0
    while t < n:
        dur = max(1, int(round(rng.uniform(0.3, 0.8) * fps)))
        idx = np.flatnonzero(available[t])
        target = int(rng.choice(idx)) if idx.size else 0
        sl = slice(t, min(n, t + dur))
        # the dwell may end during the fixation: fall back to the next plane's first landmark
        target_xy = landmarks[sl, target]
        gaze[sl] = np.where(np.isfinite(target_xy), target_xy, landmarks[sl, 0])
        t += dur
    gaze += rng.normal(0, 0.02 * size, gaze.shape)  # fixational jitter and tracker noise
    return np.clip(gaze, 0, size - 1)


def saliency_maps(gaze: np.ndarray, size: int, window: int, sigma: float) -> np.ndarray:
    """``(F, H, W)`` uint8: Gaussians at the gaze points of frames ``t-window..t+window``, max 255."""
    n = len(gaze)
    counts = np.zeros((n, size, size), dtype=np.float32)
    xi = np.clip(np.rint(gaze[:, 0]).astype(int), 0, size - 1)
    yi = np.clip(np.rint(gaze[:, 1]).astype(int), 0, size - 1)
    counts[np.arange(n), yi, xi] = 1.0
    # temporal window (box) then spatial Gaussian; separable, so one filter call each
    acc = ndimage.uniform_filter1d(counts, 2 * window + 1, axis=0, mode="constant") * (2 * window + 1)
    maps = ndimage.gaussian_filter(acc, sigma=(0, sigma, sigma), mode="constant")
    maps /= maps.reshape(n, -1).max(1)[:, None, None] + 1e-12
    return np.rint(maps * 255).astype(np.uint8)


# --------------------------------------------------------------------------- #
# Audio
# --------------------------------------------------------------------------- #

def syllable(rng, f0: float, formants: np.ndarray, consonant: int, sr: int = SAMPLE_RATE) -> np.ndarray:
    """One speech-like syllable: a consonant burst, then harmonics of ``f0`` shaped by ``formants``.

    ``formants``: (3,) Hz. Consonants: 0 none, 1 fricative (high-band noise),
    2 plosive (short broadband burst), 3 nasal (low murmur).
    """
    dur = rng.uniform(0.14, 0.24)
    t = np.arange(int(dur * sr)) / sr
    contour = f0 * (1 + 0.06 * np.sin(2 * np.pi * rng.uniform(1, 3) * t + rng.uniform(0, 6.28)))
    phase = 2 * np.pi * np.cumsum(contour) / sr
    harmonics = np.arange(1, int(4500 // f0) + 1)
    f = formants * rng.uniform(0.96, 1.04, 3)
    bandwidth = np.array([90.0, 120.0, 180.0])
    hz = harmonics[:, None] * f0
    amp = (1.0 / (1.0 + ((hz - f[None]) / bandwidth[None]) ** 2)).sum(1) / np.sqrt(harmonics)
    voiced = (amp[:, None] * np.sin(harmonics[:, None] * phase[None])).sum(0)
    envelope = np.sin(np.pi * t / dur) ** 0.7  # syllable-rate amplitude envelope
    out = voiced / (np.sqrt(np.mean(voiced ** 2)) + 1e-9) * envelope
    if consonant:
        nb = int(rng.uniform(0.02, 0.05) * sr)
        burst = rng.normal(0, 1, nb)
        if consonant == 1:
            burst = np.diff(burst, prepend=0.0)  # high-pass: a fricative hiss
        elif consonant == 3:
            burst = np.sin(2 * np.pi * 250 * np.arange(nb) / sr) + 0.1 * burst
        burst *= np.hanning(nb) * (0.6 if consonant != 2 else 1.0)
        out = np.concatenate([burst, out])
    return out


def phrase(rng, f0: float, vowels: np.ndarray, consonants, n_words: int, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Words of 2-3 syllables drawn from ``vowels`` (V, 3) and ``consonants``, with pauses."""
    parts = []
    for _ in range(n_words):
        for _ in range(int(rng.integers(2, 4))):
            parts.append(syllable(rng, f0, vowels[rng.integers(len(vowels))], int(rng.choice(consonants)), sr))
            parts.append(np.zeros(int(rng.uniform(0.02, 0.06) * sr)))
        parts.append(np.zeros(int(rng.uniform(0.12, 0.25) * sr)))
    return np.concatenate(parts)


def render_audio(rng, segments, fps: float, sr: int = SAMPLE_RATE) -> dict:
    """The microphone signal ``(N,)`` float in [-1, 1] and its events, for a video of ``segments``."""
    seconds = segments[-1][2] / fps
    n = int(round(seconds * sr))
    lag = rng.uniform(-0.3, 0.5)  # narration leads (<0) or lags (>0) the video
    f0 = rng.uniform(95, 210)
    tract = rng.uniform(0.93, 1.07)  # speaker's vocal-tract scaling of all formants
    speech = np.zeros(n)
    busy = np.zeros(n, dtype=bool)
    events = []

    def place(signal, start_s, kind, plane=None, end_limit=None):
        a = int(round(start_s * sr))
        if a < 0 or a >= n:
            return
        b = min(n, a + len(signal), int(round(end_limit * sr)) if end_limit else n)
        if b - a < int(0.2 * sr) or busy[a:b].any():
            return
        fade = np.ones(b - a)
        k = min(240, (b - a) // 2)
        fade[-k:] = np.linspace(1, 0, k)
        speech[a:b] += signal[: b - a] * fade * rng.uniform(0.07, 0.13)
        busy[a:b] = True
        events.append({"kind": kind, "start": a / sr, "end": b / sr, "plane": None if plane is None else PLANES[plane]})

    for plane, start, end in segments:
        p_narrate = 0.2 if plane == BACKGROUND else 0.85
        if rng.random() >= p_narrate:
            continue
        voc = LANGUAGE[plane]
        sig = phrase(rng, f0, voc["vowels"] * tract, voc["consonants"], int(rng.integers(3, 7)), sr)
        t0 = start / fps + lag + rng.uniform(0.2, 0.8)
        place(sig, t0, "narration", plane, end_limit=end / fps + lag)
    # unrelated chatter (weather, travel, ...): random formants, any time the sonographer is not narrating
    for _ in range(int(rng.poisson(seconds / 12))):
        vowels = np.stack([rng.uniform(260, 900, 4), rng.uniform(850, 2500, 4), rng.uniform(2300, 3300, 4)], 1) * tract
        sig = phrase(rng, f0 * rng.uniform(0.9, 1.6), vowels, rng.choice(4, 2, replace=False), int(rng.integers(2, 6)), sr)
        place(sig, rng.uniform(0, seconds - 1), "chatter")

    t = np.arange(n) / sr
    hum = 0.004 * sum(np.sin(2 * np.pi * 50 * k * t + k) / k for k in (1, 2, 3))
    aircon = ndimage.gaussian_filter1d(rng.normal(0, 1, n), 6)
    aircon *= 0.004 / (aircon.std() + 1e-12)
    clicks = np.zeros(n)
    for c in rng.uniform(0, seconds, int(rng.poisson(seconds * 0.3))):
        a = int(c * sr)
        k = np.arange(min(int(0.004 * sr), n - a))
        clicks[a: a + len(k)] += rng.uniform(0.15, 0.4) * np.exp(-k / (0.0008 * sr)) * rng.choice([-1, 1], len(k))
        events.append({"kind": "click", "start": a / sr, "end": (a + len(k)) / sr, "plane": None})
    audio = np.clip(speech + hum + aircon + clicks, -1, 1)
    return {"audio": audio.astype(np.float32), "lag": float(lag), "events": sorted(events, key=lambda e: e["start"])}


# --------------------------------------------------------------------------- #
# Data set
# --------------------------------------------------------------------------- #

def simulate_sweep_video(seed: int, index: int, size: int = 64, fps: float = 15.0, seconds: float = 60.0,
                         gaze_window: int | None = None, gaze_sigma: float | None = None) -> dict:
    """One scan in memory: ``frames`` (F, H, W) uint8, ``audio`` (N,) float32, ``planes`` (F,) int,
    ``gaze`` (F, 2), ``saliency`` (F, H, W) uint8, ``segments``, ``lag``, ``events``."""
    rng = np.random.default_rng([seed, _VIDEO, index])
    n_frames = max(int(round(seconds * fps)), 8)
    segments = plane_schedule(rng, n_frames, fps)
    video = render_video(rng, segments, size, fps)
    planes = np.zeros(n_frames, dtype=np.int64)
    for plane, start, end in segments:
        planes[start:end] = plane
    gaze = gaze_track(rng, video["landmarks"], fps, size)
    window = gaze_window if gaze_window is not None else max(1, int(round(0.25 * fps)))
    sigma = gaze_sigma if gaze_sigma is not None else 0.05 * size
    audio = render_audio(np.random.default_rng([seed, _VIDEO, index, 1]), segments, fps)
    return {"frames": video["frames"], "planes": planes, "gaze": gaze,
            "saliency": saliency_maps(gaze, size, window, sigma), "segments": segments,
            "window": window, "sigma": sigma, **audio}


def file_names(seed: int, n: int) -> list[str]:
    return [f"sweep{seed:03d}_{i:04d}" for i in range(n)]


def assign_splits(seed: int, n: int) -> np.ndarray:
    """TRAIN/VAL/TEST = 75/12.5/12.5 by a seeded permutation; each non-empty when ``n >= 8``."""
    rng = np.random.default_rng([seed, _SPLITS])
    order = rng.permutation(n)
    n_val = n_test = int(round(0.125 * n))
    if n >= 8:
        n_val, n_test = max(1, n_val), max(1, n_test)
    split = np.full(n, "TRAIN", dtype=object)
    split[order[:n_val]] = "VAL"
    split[order[n_val:n_val + n_test]] = "TEST"
    return split


def simulate_sweep(out, videos: int, *, seed: int = 0, size: int = 64, fps: float = 15.0, seconds: float = 60.0,
                   progress: bool = False) -> pd.DataFrame:
    """Write ``videos`` narrated scans to ``out`` (layout in the module docstring); returns sweeps.csv."""
    if not isinstance(videos, (int, np.integer)) or videos < 1:
        raise ConfigError(f"--videos must be a positive integer, got {videos}.")
    if seed < 0:
        raise ConfigError(f"--seed must be a non-negative integer, got {seed}.")
    if not 32 <= size <= 512:
        raise ConfigError(f"--size must be between 32 and 512 pixels, got {size}.")
    if not 5 <= fps <= 60:
        raise ConfigError(f"--fps must be between 5 and 60, got {fps}.")
    if not 10 <= seconds <= 3600:
        raise ConfigError(f"--seconds must be between 10 and 3600, got {seconds}.")
    out = Path(out)
    for sub in ("Videos", "Audio", "Labels", "Saliency", "echossl_truth"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    names = file_names(seed, videos)
    splits = assign_splits(seed, videos)
    rows = []
    indices = range(videos)
    if progress:
        from echossl.progress import progress_bar

        indices = progress_bar(indices, "simulating sweeps")
    window = sigma = None
    for i in indices:
        sim = simulate_sweep_video(seed, i, size, fps, seconds)
        name = names[i]
        write_video(out / "Videos" / f"{name}.avi", np.repeat(sim["frames"][..., None], 3, axis=-1), fps)
        pcm = np.rint(sim["audio"] * 32767).astype(np.int16)
        tmp = out / "Audio" / f".{name}.tmp.wav"
        wavfile.write(tmp, SAMPLE_RATE, pcm)
        tmp.replace(out / "Audio" / f"{name}.wav")
        labels = pd.DataFrame({"Frame": np.arange(len(sim["planes"])), "Plane": [PLANES[p] for p in sim["planes"]],
                               "GazeX": np.round(sim["gaze"][:, 0], 2), "GazeY": np.round(sim["gaze"][:, 1], 2)})
        atomic_write_text(out / "Labels" / f"{name}.csv", labels.to_csv(index=False))
        tmp = out / "Saliency" / f".{name}.tmp.npz"
        np.savez_compressed(tmp, maps=sim["saliency"])
        tmp.replace(out / "Saliency" / f"{name}.npz")
        truth = {"lag_seconds": sim["lag"], "events": sim["events"],
                 "segments": [{"plane": PLANES[p], "start_frame": a, "end_frame": b} for p, a, b in sim["segments"]]}
        atomic_write_text(out / "echossl_truth" / f"{name}.json", json.dumps(truth, indent=1))
        window, sigma = sim["window"], sim["sigma"]
        rows.append({"FileName": name, "Split": splits[i], "NumberOfFrames": len(sim["frames"]), "FPS": fps,
                     "FrameHeight": size, "FrameWidth": size, "SampleRate": SAMPLE_RATE,
                     "Seconds": round(len(sim["audio"]) / SAMPLE_RATE, 4)})
    table = pd.DataFrame(rows, columns=SWEEP_COLUMNS)
    atomic_write_text(out / "sweeps.csv", table.to_csv(index=False))
    meta = {"planes": list(PLANES), "fps": fps, "sample_rate": SAMPLE_RATE,
            "gaze_window_frames": window, "gaze_sigma_px": sigma}
    atomic_write_text(out / "sweep.json", json.dumps(meta, indent=1))
    return table
