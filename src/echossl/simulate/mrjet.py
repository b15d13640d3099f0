"""Synthetic colour-Doppler echo videos with mitral-regurgitation (MR) jets.

``simulate_mrjet(out, videos)`` writes::

    OUT/MRJetList.csv            one row per video (columns below)
    OUT/Videos/<FileName>.avi    MJPG, RGB, size x size: grey apical view + colour box
    OUT/Masks/<FileName>.npz     per-frame ground truth (arrays below)
    OUT/meta.json                generator settings and this description

``MRJetList.csv`` columns:

- ``FileName`` (no ``.avi``), ``Split`` (TRAIN/VAL/TEST),
- ``NumberOfFrames``, ``FrameHeight``, ``FrameWidth``, ``FPS``,
- ``HasJet`` (0/1), ``MaxFrames`` (0-based frame indices of maximal jet area,
  one per systole whose jet peak lies in the video, separated by spaces; empty when no jet),
- ``MaxJetRatio`` (largest jet-area / LA-area over the max frames, 0 without jet),
- ``Severity`` (``none`` | ``mild`` < 0.2 <= ``moderate`` < 0.4 <= ``severe``,
  from ``MaxJetRatio``; :func:`severity_grade`), ``JetAngle`` (degrees off the LV axis).

``Masks/<FileName>.npz`` arrays (``F`` frames, ``H x W`` pixels):

- ``jet``  ``(F, H, W)`` bool — true jet mask of every frame,
- ``la``   ``(F, H, W)`` bool — left-atrium cavity of every frame,
- ``e``    ``(F,)`` uint8 — the one-hot ``E`` of the paper: 1 at each max frame,
- ``jet_area``, ``la_area`` ``(F,)`` int64 pixels, ``ratio`` ``(F,)`` float32,
- ``max_frames`` ``(K,)`` int64, ``severity`` int64 (index into :data:`SEVERITIES`).

Scene: the grey apical four-chamber heart of :mod:`echossl.simulate.heart`
(several cardiac cycles per video), with a colour-Doppler box over the mitral
valve and the left atrium, coloured by the velocity-variance map of
:func:`velocity_colour`. Blood shows laminar flow (towards the probe: red,
diastolic LV inflow, which aliases to yellow/cyan in videos with a low Nyquist
limit) or away (blue), with some turbulence (green) and colour-noise flecks;
box size, Nyquist limit, colour gain and turbulence vary per video. In videos
with MR, during every systole a jet — a high-velocity flow away from the
probe, fastest at the valve, aliased into a mosaic and turbulent — grows from
the mitral-annulus midpoint into the LA, peaks, then fades. Jet
length, width, eccentricity (angle off the LV axis; eccentric jets are clipped
by the atrial wall and hug it), peak timing and per-beat amplitude vary; about
``no_jet`` of the videos have no jet.

A beat's max frame is the frame of largest true jet area among the frames of
its systole; every systole whose jet peak (in continuous time) lies inside the
video gets one, also when the video cuts the systole's start or end, so every
visible jet peak is labelled. Every video is a pure function of ``(seed, index)``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from echossl.data.video import write_video
from echossl.errors import ConfigError
from echossl.simulate import heart as hm
from echossl.simulate.echonet import assign_splits, file_names, pixel_spacing_cm, progress_bar

INDEX_FILE = "MRJetList.csv"
COLUMNS = ["FileName", "Split", "NumberOfFrames", "FrameHeight", "FrameWidth", "FPS", "HasJet", "MaxFrames",
           "MaxJetRatio", "Severity", "JetAngle"]
SEVERITIES = ("none", "mild", "moderate", "severe")
#: jet/LA area ratio thresholds between mild|moderate and moderate|severe (the usual 20% / 40%).
SEVERITY_CUTS = (0.2, 0.4)

_VIDEO = 11  # domain tag of the per-video random stream (different from the EchoNet simulator's)

# Colour-Doppler palette (RGB): aliasing turbulence shows every hue at once.
MOSAIC = np.array([[235, 40, 30], [40, 90, 245], [250, 225, 50], [60, 215, 80], [80, 225, 235], [250, 150, 40]],
                  dtype=np.float32)


def severity_grade(ratio) -> np.ndarray | int:
    """Grade index into :data:`SEVERITIES` of jet/LA area ratios: 0 none (ratio 0), 1-3 mild..severe."""
    r = np.asarray(ratio, dtype=np.float64)
    grade = np.where(r <= 0, 0, 1 + np.searchsorted(np.asarray(SEVERITY_CUTS), r, side="right"))
    return int(grade) if grade.ndim == 0 else grade


def _systole_phase(schedule: hm.BeatSchedule, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Beat index and phase ``u`` in [0, 1] of systole (NaN outside systole) at frame times ``t``."""
    k = np.clip(np.searchsorted(schedule.ed_times, t, side="right") - 1, 0, len(schedule.es_times) - 1)
    start, es = schedule.ed_times[k], schedule.es_times[k]
    u = (t - start) / (es - start)
    return k, np.where((u >= 0) & (u <= 1), u, np.nan)


def _smooth_noise(rng, shape, sigma) -> np.ndarray:
    n = cv2.GaussianBlur(rng.standard_normal(shape, dtype=np.float32), (0, 0), sigma)
    return n / (n.std() + 1e-6)


def simulate_video(seed: int, index: int, size: int = 112, no_jet: float = 0.2) -> dict:
    """Simulate one colour-Doppler video in memory, deterministic in ``(seed, index)``.

    Returns a dict with ``frames`` ``(F, H, W, 3)`` uint8 RGB, ``jet`` and ``la``
    ``(F, H, W)`` bool, ``e`` ``(F,)`` uint8, ``max_frames``, ``ratio``, ``fps``,
    ``has_jet``, ``angle_deg``, ``severity``.
    """
    rng = np.random.default_rng([seed, _VIDEO, index])
    spacing = pixel_spacing_cm(size)
    has_jet = bool(rng.random() >= no_jet)
    fps = int(rng.integers(18, 31))
    frames_per_beat = rng.uniform(18.0, 26.0)
    n_frames = int(rng.integers(48, 73))
    systole_fraction = rng.uniform(0.36, 0.44)
    heart = hm.sample_heart(rng, hm.sample_ef(rng), spacing, size, size)
    schedule = hm.build_schedule(rng, n_frames, frames_per_beat, systole_fraction, irregular=bool(rng.random() < 0.2))
    look = hm.sample_look(rng, "default", spacing)

    t = np.arange(n_frames, dtype=np.float64)
    levels = schedule.level(t)
    tracings = hm.quantize_tracings(hm.lv_tracings(heart, levels))
    lv = np.stack([hm.tracing_mask(tr, (size, size)) for tr in tracings])
    apex = (size / 2.0, -0.01 * size)
    sector = hm.sector_mask(size, size, apex, 0.98 * size, look.sector_half_angle)
    grey, labels = hm.render(rng, heart, look, tracings, levels, lv, sector, apex, labels=True)
    la = labels == 3

    # --- jet: an irregular ellipse from the annulus midpoint, clipped to the LA
    beat, u = _systole_phase(schedule, t)
    angle = float(rng.choice([-1.0, 1.0]) * (rng.uniform(0.0, 0.15) if rng.random() < 0.5 else rng.uniform(0.25, 0.65)))
    la_len = 2.0 * heart.la[0]
    length_max = rng.uniform(0.3, 1.05) * la_len
    width_max = length_max * rng.uniform(0.35, 0.7)
    timing = rng.uniform(0.75, 1.3)  # peak earlier (<1) or later (>1) in systole
    amplitude = rng.uniform(0.8, 1.0, len(schedule.es_times))
    strength = np.where(np.isnan(u), 0.0, np.sin(np.pi * np.power(np.nan_to_num(u), timing)) ** 1.2)
    strength = strength * amplitude[beat] if has_jet else np.zeros(n_frames)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    ca, sa = math.cos(angle), math.sin(angle)
    jet = np.zeros((n_frames, size, size), dtype=bool)
    roughness = _smooth_noise(rng, (size, size), 2.5)
    for f in np.flatnonzero(strength > 0.08):
        base = tracings[f, 0, 2:]
        axis = heart.axis_u
        d = np.array([ca * axis[0] - sa * axis[1], sa * axis[0] + ca * axis[1]])
        along = (xs - base[0]) * d[0] + (ys - base[1]) * d[1]
        across = -(xs - base[0]) * d[1] + (ys - base[1]) * d[0]
        half_len, half_wid = 0.5 * length_max * strength[f], 0.5 * width_max * strength[f] + 1.0
        roughness = 0.75 * roughness + 0.66 * _smooth_noise(rng, (size, size), 2.5)
        inside = ((along - half_len) / half_len) ** 2 + (across / half_wid) ** 2 <= 1.0 + 0.3 * roughness
        jet[f] = inside & (along >= 0) & la[f]

    jet_area = jet.sum(axis=(1, 2)).astype(np.int64)
    la_area = la.sum(axis=(1, 2)).astype(np.int64)
    ratio = np.where(la_area > 0, jet_area / np.maximum(la_area, 1), 0.0).astype(np.float32)
    max_frames = []
    if has_jet:
        peak_phase = 0.5 ** (1.0 / timing)  # where sin(pi * u**timing) is largest
        for k, (start, es) in enumerate(zip(schedule.ed_times[:-1], schedule.es_times)):
            if not 1.0 <= start + peak_phase * (es - start) <= n_frames - 2:
                continue  # the jet's peak of this systole falls outside the video
            window = np.flatnonzero((t >= start) & (t <= es))
            if window.size and jet_area[window].max() > 0:
                max_frames.append(int(window[np.argmax(jet_area[window])]))
    max_frames = np.asarray(sorted(set(max_frames)), dtype=np.int64)
    e = np.zeros(n_frames, dtype=np.uint8)
    e[max_frames] = 1
    max_ratio = float(ratio[max_frames].max()) if max_frames.size else 0.0

    rgb = _colour_doppler(rng, grey, lv, la, jet, levels, tracings, heart, apex, sector)
    return {"frames": rgb, "jet": jet, "la": la, "e": e, "max_frames": max_frames, "jet_area": jet_area,
            "la_area": la_area, "ratio": ratio, "fps": fps, "has_jet": bool(max_frames.size), "angle_deg":
            math.degrees(angle) if has_jet else 0.0, "max_ratio": max_ratio, "severity": severity_grade(max_ratio)}


def velocity_colour(v: np.ndarray, variance: np.ndarray) -> np.ndarray:
    """The BGY velocity-variance colour map of echo machines: ``(...)`` velocity, variance -> ``(..., 3)`` RGB.

    ``v`` is in units of the Nyquist velocity, already aliased into [-1, 1]:
    towards the probe (> 0) is red turning yellow as it nears the Nyquist limit,
    away (< 0) blue turning cyan; turbulence (``variance`` in [0, 1]) adds green.
    An aliased, turbulent jet therefore shows a mosaic of every hue, but so do
    fast normal inflow near its aliasing velocity and turbulent noise: the hue
    of one pixel does not tell a jet from normal flow, its pattern does.
    """
    m = np.clip(np.abs(v), 0.0, 1.0)
    pos = v > 0
    r = np.where(pos, 120 + 135 * np.sqrt(m), 30 * m**2)
    g = np.where(pos, 200 * m**2, 40 + 200 * m**2)
    b = np.where(pos, 20 * (1 - m), 140 + 115 * np.sqrt(m))
    g = np.clip(g + 180 * np.clip(variance, 0.0, 1.0), 0, 255)
    return np.stack([r, g, b], axis=-1).astype(np.float32)


def _alias(v: np.ndarray) -> np.ndarray:
    """Wrap velocities (Nyquist units) into [-1, 1), as pulsed Doppler does."""
    return np.mod(v + 1.0, 2.0) - 1.0


def _colour_doppler(rng, grey, lv, la, jet, levels, tracings, heart, apex, sector) -> np.ndarray:
    """Overlay the colour box on grey frames: a velocity map over blood, with the jet as a flow pattern.

    Per video, the colour box's width and depth, the Nyquist limit (so how much
    normal inflow aliases), the colour gain (the velocity below which no colour
    is shown) and the turbulence of normal flow vary, independently of the jet,
    so the number of coloured pixels and the hues present do not give away
    whether, or how much, there is regurgitation. The jet is a high-velocity
    flow *away* from the probe, fastest at the vena contracta on the valve and
    slowing along its length, aliased (mosaic) and turbulent (green variance),
    with a turbulence texture that decorrelates frame to frame.

    Returns ``(F, H, W, 3)`` uint8 RGB.
    """
    n_frames, size, _ = grey.shape
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    radius = np.hypot(xs - apex[0], ys - apex[1])
    bearing = np.arctan2(xs - apex[0], ys - apex[1])
    valve = tracings[:, 0, 2:].mean(axis=0)
    v_r = math.hypot(valve[0] - apex[0], valve[1] - apex[1])
    v_b = math.atan2(valve[0] - apex[0], valve[1] - apex[1])
    box = (radius > rng.uniform(0.35, 0.7) * v_r) & (radius < v_r + rng.uniform(1.6, 3.0) * heart.la[0])
    box &= np.abs(bearing - v_b - rng.uniform(-0.08, 0.08)) < rng.uniform(0.25, 0.5)
    box &= sector
    velocity = np.gradient(levels)  # > 0: LV filling (inflow, towards the probe)
    velocity = velocity / (np.abs(velocity).max() + 1e-6)
    inflow_peak = rng.uniform(0.6, 1.6)  # Nyquist units: above 1 the normal inflow aliases too
    threshold = rng.uniform(0.08, 0.3)  # colour gain / wall filter
    base_turb = rng.uniform(0.0, 0.35)
    jet_peak = rng.uniform(1.6, 3.5)
    out = np.repeat(grey[..., None], 3, axis=-1).astype(np.float32)
    turb = _smooth_noise(rng, (size, size), 1.2)
    for f in range(n_frames):
        annulus = tracings[f, 0, 2:]
        dist = np.hypot(xs - annulus[0], ys - annulus[1])
        near_valve = np.exp(-dist / (0.35 * heart.length))
        turb = 0.5 * turb + 0.87 * _smooth_noise(rng, (size, size), 1.2)  # decorrelates over ~2 frames
        flow = np.zeros((size, size), dtype=np.float32)
        flow[lv[f]] = velocity[f] * inflow_peak * near_valve[lv[f]]
        flow[la[f]] = 0.35 * abs(velocity[f]) * near_valve[la[f]]  # pulmonary-venous inflow, towards the probe
        variance = base_turb * np.abs(flow) * (0.5 + 0.5 * np.abs(turb))
        flow = flow * (1.0 + 0.25 * turb)
        if jet[f].any():
            j = jet[f]
            # away from the probe, fastest at the valve, slowing along the jet; turbulent everywhere
            speed = jet_peak * np.exp(-dist / rng.uniform(0.3, 0.6) / max(heart.la[0], 1.0))
            flow[j] = -(speed[j] + 0.6 * turb[j] * speed[j])
            variance[j] = np.clip(0.4 + 0.4 * np.abs(turb[j]), 0.0, 1.0)
        blood = lv[f] | la[f] | jet[f]
        shown = box & blood & (np.abs(flow) > threshold)
        colour = velocity_colour(_alias(flow), variance)
        out[f][shown] = colour[shown]
        # colour noise: a few isolated flecks with random velocity anywhere in the box's blood
        flecks = box & blood & ~shown & (rng.random((size, size)) < 0.01)
        k = int(flecks.sum())
        out[f][flecks] = velocity_colour(rng.uniform(-1, 1, k), rng.uniform(0, 1, k))
    return np.clip(out, 0, 255).astype(np.uint8)


def _write_one(task: tuple) -> dict:
    out, index, name, seed, size, no_jet = task
    sim = simulate_video(seed, index, size, no_jet)
    out = Path(out)
    write_video(out / "Videos" / f"{name}.avi", sim["frames"], sim["fps"])
    tmp = out / "Masks" / f".{name}.tmp.npz"
    np.savez_compressed(tmp, jet=sim["jet"], la=sim["la"], e=sim["e"], jet_area=sim["jet_area"],
                        la_area=sim["la_area"], ratio=sim["ratio"], max_frames=sim["max_frames"],
                        severity=np.int64(sim["severity"]))
    tmp.replace(out / "Masks" / f"{name}.npz")
    return {"FileName": name, "NumberOfFrames": int(sim["frames"].shape[0]), "FrameHeight": size,
            "FrameWidth": size, "FPS": sim["fps"], "HasJet": int(sim["has_jet"]),
            "MaxFrames": " ".join(str(int(k)) for k in sim["max_frames"]), "MaxJetRatio": sim["max_ratio"],
            "Severity": SEVERITIES[sim["severity"]], "JetAngle": sim["angle_deg"]}


def simulate_mrjet(out: str | Path, videos: int, seed: int = 0, size: int = 112, no_jet: float = 0.2,
                   progress: bool = True) -> pd.DataFrame:
    """Write a synthetic MR-jet colour-Doppler data set to ``out``; returns the index table.

    Args:
        out: output folder (created; files of the same names are replaced).
        videos: number of videos. seed: base seed; video ``i`` depends only on ``(seed, i)``.
        size: frame height and width in pixels. no_jet: share of videos without MR.

    Raises:
        ConfigError: an option is out of range.
    """
    if not isinstance(videos, (int, np.integer)) or videos < 1:
        raise ConfigError(f"--videos must be a positive integer, got {videos}.")
    if seed < 0:
        raise ConfigError(f"--seed must be a non-negative integer, got {seed}.")
    if not 48 <= size <= 512:
        raise ConfigError(f"--size must be between 48 and 512 pixels, got {size}.")
    if not 0.0 <= no_jet < 1.0:
        raise ConfigError(f"the share of videos without a jet must be in [0, 1), got {no_jet}.")
    out = Path(out)
    (out / "Videos").mkdir(parents=True, exist_ok=True)
    (out / "Masks").mkdir(parents=True, exist_ok=True)
    names = file_names(seed, videos)
    rows = []
    with progress_bar(progress, "simulate mrjet", videos) as advance:
        for i in range(videos):
            rows.append(_write_one((str(out), i, names[i], seed, size, no_jet)))
            advance()
    table = pd.DataFrame(rows)
    table.insert(1, "Split", assign_splits(seed, videos))
    table = table[COLUMNS]
    tmp = out / (INDEX_FILE + ".tmp")
    table.to_csv(tmp, index=False, float_format="%.4f")
    tmp.replace(out / INDEX_FILE)
    meta = {"generator": "echossl.simulate.mrjet", "format": "mrjet", "seed": seed, "videos": videos, "size": size,
            "no_jet": no_jet, "severity_cuts": list(SEVERITY_CUTS), "severities": list(SEVERITIES),
            "description": __doc__}
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return table
