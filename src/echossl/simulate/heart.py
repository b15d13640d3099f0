"""Shared scene model of the simulators: cardiac cycle, LV shape, and B-mode rendering.

Both :mod:`echossl.simulate.echonet` and :mod:`echossl.simulate.camus` draw the
same apical four-chamber heart; only the file formats differ.

The LV shape is parameterised *exactly as an EchoNet-Dynamic tracing*: a long
axis from the apex to the mitral-annulus midpoint and ``N_CHORDS`` = 20 chords
perpendicular to it at evenly spaced levels ``(i + 0.5) / 20`` of the axis,
each with its own left and right half-width. The cavity polygon *is* the chord
endpoints (left ends apex-to-base, then right ends base-to-apex), and the true
LV mask is that polygon rasterised with the same ``skimage.draw.polygon`` call
the EchoNet reader uses. A reader's mask of a traced frame therefore equals the
ground truth pixel for pixel, and the method-of-disks volume of the tracing is
the ground-truth volume, not an approximation of it.

Units: positions and lengths are in pixels unless the name ends in ``_cm``;
``x`` is the column and ``y`` the row (apex at the top, as in the reference data).

The cycle is a per-frame "filling level" ``v``: 1 at end-diastole (ED), 0 at
end-systole (ES). A frame's chords are the ED chords scaled by
``chord_es ** (1 - v)`` and its long axis by ``axis_es ** (1 - v)``; with
``chord_es ** 2 * axis_es == ESV / EDV`` the method-of-disks EF of the ED/ES
pair equals the EF that was drawn, and the volume is monotone in ``v``, so the
volume's maxima and minima are the cycle's ED and ES.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np
from skimage.draw import polygon as _sk_polygon

from echossl.geometry import disks_volumes

N_CHORDS = 20
#: Relative positions of the chords along the long axis (0 apex, 1 annulus).
LEVELS = (np.arange(N_CHORDS) + 0.5) / N_CHORDS
_SHIFT = 4  # cv2 drawing with 4 fractional bits: sub-pixel shapes without a float rasteriser


# --------------------------------------------------------------------------- EF


def sample_ef(rng: np.random.Generator, n: int | None = None):
    """Draw ejection fractions (percent) like a clinical echo population.

    A two-component mixture, because a single normal with mean 55 and sd 12
    gives only ~11% below 40 where echo cohorts have ~15% with reduced EF:
    83% N(60, 8) and 17% N(33, 7), clipped to [10, 85]. Mean ≈ 55, sd ≈ 12.5.
    """
    size = 1 if n is None else n
    low = rng.random(size) < 0.17
    ef = np.where(low, rng.normal(33.0, 7.0, size), rng.normal(60.0, 8.0, size))
    ef = np.clip(ef, 10.0, 85.0)
    return float(ef[0]) if n is None else ef


def es_scales(ef: float) -> tuple[float, float]:
    """ES shrink factors ``(chord, axis)`` whose method-of-disks volume ratio is ``1 - EF/100``.

    The volume scales as ``chord**2 * axis``; splitting the exponent 0.8/0.2
    shortens the long axis less than the chords, as in real hearts (the apex
    barely moves; fractional shortening of the diameter is larger).
    """
    ratio = 1.0 - ef / 100.0
    return ratio**0.4, ratio**0.2


# ------------------------------------------------------------------------ cycle


def _systole_shape(u):
    """1 at ED (u=0) to 0 at ES (u=1); exact at both ends, zero slope at both."""
    return 0.5 * (1.0 + np.cos(np.pi * u))


def _diastole_shape(u):
    """0 at ES (u=0) to 1 at the next ED (u=1); ``u**0.7`` front-loads the rise
    (rapid early filling, then diastasis and atrial kick)."""
    return 0.5 * (1.0 - np.cos(np.pi * np.power(u, 0.7)))


@dataclass
class BeatSchedule:
    """Beat timing and per-beat amplitudes, in frame units.

    Beat ``k`` runs from ``ed_times[k]`` to ``ed_times[k + 1]`` with ES at
    ``es_times[k]``; the filling level falls from ``ed_levels[k]`` to
    ``es_levels[k]`` in systole and rises to ``ed_levels[k + 1]`` in diastole.
    Beat ``traced`` lies wholly inside the video, starts on an integer frame,
    has an integer systole and levels exactly 1 and 0, so its ED and ES frames
    are sampled at the true extremes.
    """

    ed_times: np.ndarray  # (K + 1,)
    es_times: np.ndarray  # (K,)
    ed_levels: np.ndarray  # (K + 1,)
    es_levels: np.ndarray  # (K,)
    traced: int

    def level(self, t) -> np.ndarray:
        """Filling level ``v`` at (fractional) frame times ``t``; 1 = ED, 0 = ES."""
        t = np.asarray(t, dtype=np.float64)
        k = np.clip(np.searchsorted(self.ed_times, t, side="right") - 1, 0, len(self.es_times) - 1)
        start, es, end = self.ed_times[k], self.es_times[k], self.ed_times[k + 1]
        lo = self.es_levels[k]
        u_sys = np.clip((t - start) / (es - start), 0.0, 1.0)
        u_dia = np.clip((t - es) / (end - es), 0.0, 1.0)
        v_sys = lo + (self.ed_levels[k] - lo) * _systole_shape(u_sys)
        v_dia = lo + (self.ed_levels[k + 1] - lo) * _diastole_shape(u_dia)
        return np.where(t <= es, v_sys, v_dia)

    @property
    def traced_ed(self) -> int:
        return int(round(self.ed_times[self.traced]))

    @property
    def traced_es(self) -> int:
        return int(round(self.es_times[self.traced]))

    def extremum_frames(self, volume: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Frame indices of every beat's volume maximum (ED) and minimum (ES).

        An ED whose true time lies in the video is the largest-volume frame
        strictly between the neighbouring ES times (and vice versa), so the
        answer is the sampled extreme even when the true peak falls between frames.
        """
        n = len(volume)
        frames = np.arange(n)
        es_t, ed_t = self.es_times, self.ed_times

        def pick(times, lows, highs, fn):
            out = []
            for t, lo, hi in zip(times, lows, highs):
                if not 0 <= t <= n - 1:
                    continue
                window = frames[(frames > lo) & (frames < hi)]
                if window.size:
                    out.append(int(window[fn(volume[window])]))
            return np.asarray(sorted(set(out)), dtype=np.int64)

        inf = np.array([np.inf])
        ed = pick(ed_t, np.concatenate([-inf, es_t]), np.concatenate([es_t, inf]), np.argmax)
        es = pick(es_t, ed_t[:-1], ed_t[1:], np.argmin)
        return ed, es


def build_schedule(
    rng: np.random.Generator,
    n_frames: int,
    frames_per_beat: float,
    systole_fraction: float,
    irregular: bool = False,
) -> BeatSchedule:
    """Beats covering frames ``[0, n_frames - 1]`` with one full traced beat inside.

    Irregular videos (atrial-fibrillation-like) draw every other beat's length
    (log-normal, sd 15%, clipped to 0.7-1.35x) and its ED/ES levels (sd 0.06)
    independently; regular videos repeat one beat exactly.
    """
    period = float(frames_per_beat)
    sys_len = max(2, int(round(systole_fraction * period)))
    last_start = n_frames - 1 - int(math.ceil(period))
    if last_start < 1:
        raise ValueError(f"{n_frames} frames cannot hold a full beat of {period:.1f} frames")
    e0 = int(rng.integers(1, last_start + 1))

    def other_beat():
        p = period
        frac = systole_fraction
        if irregular:
            p *= float(np.clip(np.exp(rng.normal(0.0, 0.15)), 0.7, 1.35))
            frac = float(np.clip(systole_fraction + rng.normal(0.0, 0.015), 0.3, 0.45))
        return p, frac

    # beats as (start, period, systole length); traced beat first, then extended both ways
    beats = [(float(e0), period, float(sys_len))]
    while beats[0][0] > 0:
        p, frac = other_beat()
        beats.insert(0, (beats[0][0] - p, p, frac * p))
    traced = len(beats) - 1
    while beats[-1][0] + beats[-1][1] <= n_frames - 1:
        p, frac = other_beat()
        beats.append((beats[-1][0] + beats[-1][1], p, frac * p))

    starts = np.array([b[0] for b in beats] + [beats[-1][0] + beats[-1][1]])
    es_times = np.array([b[0] + b[2] for b in beats])
    k = len(beats)
    if irregular:
        ed_levels = np.clip(1.0 + rng.normal(0.0, 0.06, k + 1), 0.88, 1.1)
        es_levels = np.clip(rng.normal(0.0, 0.06, k), -0.1, 0.12)
    else:
        ed_levels, es_levels = np.ones(k + 1), np.zeros(k)
    ed_levels[traced] = 1.0
    es_levels[traced] = 0.0
    return BeatSchedule(starts, es_times, ed_levels, es_levels, traced)


# ------------------------------------------------------------------------ shape


@dataclass
class Heart:
    """One heart's geometry at ED in pixels, plus how it changes over the cycle.

    Attributes:
        apex: ``(x, y)`` of the LV apex (fixed over the cycle; the base moves).
        theta: tilt of the long axis from vertical, radians (positive: base to the right).
        length: ED long-axis length.
        half_left, half_right: ``(20,)`` ED chord half-widths on each side of the axis.
        chord_es, axis_es: ES scale factors from :func:`es_scales`.
        wall: myocardial thickness at ED (it thickens by 40% at ES).
        thin_wall: wall of the other chambers.
        rv, la, ra: ``(along, across)`` ED semi-axes of the RV, LA and RA ellipses.
    """

    apex: np.ndarray
    theta: float
    length: float
    half_left: np.ndarray
    half_right: np.ndarray
    chord_es: float
    axis_es: float
    wall: float
    thin_wall: float
    rv: tuple[float, float]
    la: tuple[float, float]
    ra: tuple[float, float]
    rv_pos: float = 0.6  # RV centre as a fraction of the long axis from the apex
    thickening: float = 0.4  # fractional wall thickening at ES
    la_offset: float = 0.0  # LA centre offset across the axis, pixels (+ = X2 side)
    ra_gap: float = 0.0  # extra septal gap to the RV/RA, pixels
    axis_u: np.ndarray = field(init=False)  # unit vector apex -> base
    axis_n: np.ndarray = field(init=False)  # unit normal, pointing to the X2 (right) side

    def __post_init__(self):
        self.axis_u = np.array([math.sin(self.theta), math.cos(self.theta)])
        self.axis_n = np.array([math.cos(self.theta), -math.sin(self.theta)])


def sample_heart(
    rng: np.random.Generator,
    ef: float,
    spacing_cm: float,
    width: int,
    height: int,
    wall_cm: tuple[float, float] = (0.8, 1.15),
) -> Heart:
    """Draw one heart in an apical four-chamber view, sized in cm and placed in pixels.

    ED long axis 7.0-9.8 cm and maximal half-width 1.6-2.6 cm (wider when EF
    is low: dilated ventricles), which gives EDV ≈ 40-200 mL by the method of
    disks. The LV sits right of the image centre with its base tilted right,
    the RV to its left, the atria below, as in EchoNet-Dynamic's A4C videos.
    """
    cm = 1.0 / spacing_cm
    length = rng.uniform(7.0, 9.8) * cm
    half_max = rng.uniform(1.6, 2.6) * (1.0 + 0.008 * max(0.0, 50.0 - ef)) * cm
    narrowing = rng.uniform(0.12, 0.3)  # the annulus is narrower than the mid-cavity
    profile = np.sqrt(1.0 - (1.0 - LEVELS) ** 2) * (1.0 - narrowing * LEVELS**3)
    profile /= profile.max()
    skew = rng.uniform(-0.08, 0.08)
    # mild, smooth wall irregularity (a random walk along each side)
    bulge = 1.0 + rng.normal(0.0, 0.006, (2, N_CHORDS)).cumsum(axis=1)
    apex = np.array([width / 2.0 + rng.uniform(-0.2, 0.5) * cm, rng.uniform(1.0, 1.8) * cm])
    return _assemble_heart(rng, cm, ef, apex=apex, theta=rng.uniform(0.0, 0.2), length=length, half_max=half_max,
                           profile=profile, skew=skew, bulge=bulge, wall_cm=wall_cm, thin_wall=(0.25, 0.4),
                           rv=((0.33, 0.42), (0.55, 0.75)), la=((0.27, 0.35), (0.75, 0.9)),
                           ra=((0.25, 0.32), (0.6, 0.8)))


def _assemble_heart(rng: np.random.Generator, cm: float, ef: float, *, apex, theta: float, length: float,
                    half_max: float, profile, skew: float, bulge, wall_cm, thin_wall, rv, la, ra,
                    extra=()) -> Heart:
    """The :class:`Heart` of a drawn LV outline; draws the walls and the other chambers.

    Shared by :func:`sample_heart` (easy) and :func:`sample_heart_varied` (default).
    The draws happen in a fixed order (wall, thin wall, RV, LA, RA, then ``extra``),
    so each style's stream of random numbers, and therefore its pixels, is what it
    was when the two functions spelled this out separately.

    Args:
        rv, la, ra: ``((lo, hi), (lo, hi))`` ranges of the chamber's (length, width)
            as fractions of the LV's long axis and maximal half-width.
        extra: ``(field, lo, hi, scale)`` rows; ``field = uniform(lo, hi) * scale``.
    """
    fields = {"apex": apex, "theta": theta, "length": length,
              "half_left": half_max * profile * (1.0 + skew) * bulge[0],
              "half_right": half_max * profile * (1.0 - skew) * bulge[1]}
    fields["chord_es"], fields["axis_es"] = es_scales(ef)
    fields["wall"] = rng.uniform(*wall_cm) * cm
    fields["thin_wall"] = rng.uniform(*thin_wall) * cm
    for name, (along, across) in (("rv", rv), ("la", la), ("ra", ra)):
        fields[name] = (length * rng.uniform(*along), half_max * rng.uniform(*across))
    for name, lo, hi, scale in extra:
        fields[name] = rng.uniform(lo, hi) * scale
    return Heart(**fields)


def lv_tracings(heart: Heart, v, shift=None) -> np.ndarray:
    """EchoNet-style tracings of the LV at filling levels ``v``.

    Args:
        v: ``(F,)`` filling levels (1 = ED, 0 = ES).
        shift: optional ``(F, 2)`` per-frame translation ``(dx, dy)`` in pixels
            (breathing / probe motion); the whole LV moves, its volume does not change.

    Returns:
        ``(F, 21, 4)`` float64 rows ``(X1, Y1, X2, Y2)``: row 0 the long axis
        from apex to annulus midpoint, rows 1-20 the chords from apex to base,
        X1 on the left and X2 on the right of the axis.
    """
    v = np.atleast_1d(np.asarray(v, dtype=np.float64))[:, None]
    chord = heart.chord_es ** (1.0 - v)
    axis_len = heart.length * heart.axis_es ** (1.0 - v)  # (F, 1)
    (ux, uy), (nx, ny) = heart.axis_u, heart.axis_n
    ax, ay = heart.apex
    along = axis_len * LEVELS  # (F, 20)
    cx, cy = ax + along * ux, ay + along * uy
    hl, hr = heart.half_left * chord, heart.half_right * chord
    out = np.empty((v.shape[0], N_CHORDS + 1, 4))
    out[:, 0] = np.column_stack([np.full(v.shape[0], ax), np.full(v.shape[0], ay),
                                 ax + axis_len[:, 0] * ux, ay + axis_len[:, 0] * uy])
    out[:, 1:, 0] = cx - hl * nx
    out[:, 1:, 1] = cy - hl * ny
    out[:, 1:, 2] = cx + hr * nx
    out[:, 1:, 3] = cy + hr * ny
    if shift is not None:
        out += np.tile(np.asarray(shift, dtype=np.float64), 2)[:, None, :]
    return out


def quantize_tracings(tracings: np.ndarray, decimals: int = 4) -> np.ndarray:
    """Round coordinates to what the CSV stores, away from rounding ties.

    The CSV keeps ``decimals`` decimals; the truth is computed from the stored
    values so that a reader recomputes it exactly. A coordinate whose fraction
    is within 1e-3 of .5 is nudged by 2e-3, because ``np.rint`` of an exact .5
    rounds to even and a reader's float parsing must not be able to flip a pixel.
    """
    q = np.round(tracings, decimals)
    frac = q - np.floor(q)
    q = np.where(np.abs(frac - 0.5) < 1e-3, q + 2e-3, q)
    return np.round(q, decimals)


def tracing_mask(tracing: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The reference mask of one ``(21, 4)`` tracing: EchoNet's polygon rule, exactly."""
    x = np.concatenate([tracing[1:, 0], tracing[1:, 2][::-1]])
    y = np.concatenate([tracing[1:, 1], tracing[1:, 3][::-1]])
    rr, cc = _sk_polygon(np.rint(y), np.rint(x), shape)
    mask = np.zeros(shape, dtype=bool)
    mask[rr, cc] = True
    return mask


def tracing_volumes(tracings: np.ndarray, spacing_cm: float) -> np.ndarray:
    """``(F,)`` method-of-disks volumes in mL of ``(F, 21, 4)`` tracings."""
    return disks_volumes(tracings, spacing_cm)


# ---------------------------------------------------------------------- render


@dataclass
class Look:
    """Image-formation parameters (what ``--style`` and image quality change).

    Attributes:
        sector_half_angle: half opening of the fan, radians.
        speckle_sigma: smoothing of the complex speckle field, pixels (larger = coarser grain).
        tissue, myocardium, wall, blood: mean reflectivities in [0, 1].
        gain, gamma: output mapping ``gain * I ** gamma``.
        noise: sd of additive per-frame noise (fraction of full scale).
        haze: near-field clutter (fraction of full scale), cavities included.
        temporal: frame-to-frame correlation of the speckle (0 = new every frame).
        blur: smoothing of the reflectivity map, pixels (finite resolution).
    """

    sector_half_angle: float
    speckle_sigma: float
    tissue: float
    myocardium: float
    wall: float
    blood: float
    gain: float
    gamma: float
    noise: float
    haze: float
    temporal: float
    blur: float


def sample_look(rng: np.random.Generator, style: str, spacing_cm: float, quality: str | None = None) -> Look:
    """Per-video imaging parameters for ``style`` in {easy, default, shifted, camus, camus-easy}.

    ``easy`` (and ``camus-easy``) is the original, clean look. ``default`` (and
    ``camus``) varies every parameter much more: gain 0.6-1.5, gamma 0.7-1.35,
    tissue/myocardium/blood contrast, speckle grain and its temporal
    decorrelation (0 = new speckle every frame), resolution and noise; its
    haze comes from :func:`sample_artefacts`. ``shifted`` is a deliberate
    domain shift for external testing: coarser speckle, narrower sector,
    higher contrast and gain, more noise and haze (its thicker wall is drawn by
    the caller). For CAMUS, ``quality`` (Good/Medium/Poor) sets the noise and haze.
    """
    px = 1.0 / spacing_cm  # speckle grain is physical (~1 mm), so scale with spacing
    if style in ("default", "camus"):
        look = Look(
            sector_half_angle=rng.uniform(0.55, 0.8),
            speckle_sigma=rng.uniform(0.07, 0.16) * px,
            tissue=rng.uniform(0.15, 0.4),
            myocardium=rng.uniform(0.35, 0.75),
            wall=rng.uniform(0.45, 0.85),
            blood=rng.uniform(0.01, 0.08),
            gain=rng.uniform(0.6, 1.5),
            gamma=rng.uniform(0.7, 1.35),
            noise=rng.uniform(0.01, 0.07),
            haze=0.0,
            temporal=rng.uniform(0.0, 0.7),
            blur=rng.uniform(0.05, 0.12) * px,
        )
        if style == "camus":
            look.noise *= {"Good": 0.6, "Medium": 1.0, "Poor": 1.8}[quality]
            if quality == "Poor":
                look.myocardium *= 0.75
        return look
    if style == "shifted":
        return Look(
            sector_half_angle=rng.uniform(0.48, 0.58),
            speckle_sigma=rng.uniform(0.22, 0.3) * px,
            tissue=rng.uniform(0.3, 0.38),
            myocardium=rng.uniform(0.6, 0.72),
            wall=rng.uniform(0.7, 0.85),
            blood=rng.uniform(0.04, 0.08),
            gain=rng.uniform(1.1, 1.35),
            gamma=rng.uniform(1.15, 1.35),
            noise=rng.uniform(0.06, 0.1),
            haze=rng.uniform(0.08, 0.16),
            temporal=rng.uniform(0.2, 0.4),
            blur=0.1 * px,
        )
    look = Look(
        sector_half_angle=rng.uniform(0.66, 0.78),
        speckle_sigma=rng.uniform(0.08, 0.12) * px,
        tissue=rng.uniform(0.25, 0.35),
        myocardium=rng.uniform(0.55, 0.7),
        wall=rng.uniform(0.65, 0.8),
        blood=rng.uniform(0.02, 0.05),
        gain=rng.uniform(0.8, 1.2),
        gamma=rng.uniform(0.8, 1.0),
        noise=rng.uniform(0.01, 0.04),
        haze=rng.uniform(0.0, 0.06),
        temporal=rng.uniform(0.3, 0.6),
        blur=0.06 * px,
    )
    if style == "camus-easy":
        look.sector_half_angle = rng.uniform(0.62, 0.72)
        noise, haze = {"Good": (0.015, 0.02), "Medium": (0.05, 0.08), "Poor": (0.1, 0.18)}[quality]
        look.noise = noise * rng.uniform(0.8, 1.2)
        look.haze = haze * rng.uniform(0.8, 1.2)
        if quality == "Poor":
            look.myocardium *= 0.75  # poor windows also lose endocardial contrast
    return look


def sector_mask(
    height: int, width: int, apex_xy: tuple[float, float], radius: float, half_angle: float, tilt: float = 0.0
) -> np.ndarray:
    """``(H, W)`` bool fan: within ``radius`` of the apex and ``half_angle`` of its axis.

    ``tilt`` (radians, positive to the right) rotates the fan's axis from vertical.
    """
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    dx, dy = xs - apex_xy[0], ys - apex_xy[1]
    return (np.hypot(dx, dy) <= radius) & (np.abs(np.arctan2(dx, dy) - tilt) <= half_angle)


def _pts(xy: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(xy) * (1 << _SHIFT)).astype(np.int32).reshape(-1, 1, 2)


def _ellipse(img, center, axes, angle_deg, value):
    c = tuple(int(round(a * (1 << _SHIFT))) for a in center)
    ax = tuple(max(1, int(round(a * (1 << _SHIFT)))) for a in axes)
    cv2.ellipse(img, c, ax, angle_deg, 0, 360, value, -1, cv2.LINE_8, _SHIFT)


def _epicardium(heart: Heart, tracing: np.ndarray, wall: float) -> np.ndarray:
    """Outer wall polygon: the chord ends pushed out by ``wall``, with an apical cap."""
    n, u = heart.axis_n, heart.axis_u
    left = tracing[1:, :2] - wall * n
    right = tracing[1:, 2:] + wall * n
    apex = tracing[0, :2]
    cap = [apex - wall * u - 0.6 * wall * n, apex - 1.1 * wall * u, apex - wall * u + 0.6 * wall * n]
    return np.concatenate([np.array(cap[:2]), left, right[::-1], np.array(cap[2:])])


def _chambers(heart: Heart, tracing: np.ndarray, v: float, shifted: bool = False):
    """Centres, semi-axes of the RV, LA, RA at this frame (they follow the LV's base and cycle)."""
    u, n = heart.axis_u, heart.axis_n
    base = tracing[0, 2:]
    chord = heart.chord_es ** (1.0 - v)
    lv_half = float(heart.half_left.max()) * chord
    gap = 0.5 * heart.thin_wall
    rv_scale = 0.88 + 0.12 * v  # the RV ejects with the LV
    atrial_scale = 1.0 + 0.12 * (1.0 - v)  # the atria fill while the ventricles empty
    rv_a, rv_b = heart.rv[0] * rv_scale, heart.rv[1] * rv_scale
    la_a, la_b = heart.la[0] * atrial_scale, heart.la[1] * atrial_scale
    ra_a, ra_b = heart.ra[0] * atrial_scale, heart.ra[1] * atrial_scale
    wall = heart.wall * (1.0 + heart.thickening * (1.0 - v))
    apex = tracing[0, :2] if shifted else heart.apex
    side = lv_half + wall + heart.thin_wall + heart.ra_gap
    rv_c = apex + heart.rv_pos * heart.length * u - (side + rv_b) * n
    la_c = base + (gap + heart.thin_wall + la_a) * u + heart.la_offset * n
    ra_c = base + (gap + heart.thin_wall + ra_a) * u - (side + ra_b) * n
    return [(rv_c, (rv_a, rv_b)), (la_c, (la_a, la_b)), (ra_c, (ra_a, ra_b))], wall


@dataclass
class Artefacts:
    """Per-video ultrasound artefacts of the ``default`` look (``None`` for ``easy``).

    All maps are static in the image (they come from the probe and the acoustic
    window, not from the heart) except the breathing / translation ``shift``,
    which moves the heart under them.

    Attributes:
        dropout: ``(H, W)`` in [0, 1]: fraction of echo contrast lost (lateral
            wall and sometimes septum, where the wall runs parallel to the beams).
        shadow: ``(H, W)`` multiplicative, < 1 behind a rib / lung edge.
        clutter: ``(H, W)`` reflectivity added before speckle (apical clutter
            over the apex of the cavity, reverberation bands).
        haze: ``(H, W)`` additive after speckle (near-field haze).
        tgc: ``(H, W)`` depth- and angle-dependent gain (time-gain compensation).
        shift: ``(F, 2)`` per-frame heart translation in pixels.
    """

    dropout: np.ndarray
    shadow: np.ndarray
    clutter: np.ndarray
    haze: np.ndarray
    tgc: np.ndarray
    shift: np.ndarray


def sample_heart_varied(
    rng: np.random.Generator,
    ef: float,
    spacing_cm: float,
    width: int,
    height: int,
    wall_cm: tuple[float, float] = (0.6, 1.4),
) -> Heart:
    """A heart of the ``default`` look: much wider anatomical variation than :func:`sample_heart`.

    LV long axis 6.0-10.5 cm, maximal half-width 1.3-2.6 cm (wider when EF is
    low), sphericity (profile exponent), annular narrowing, left/right
    asymmetry and wall bumps vary; the long axis tilts -0.25..0.45 rad; the apex
    sits 0.5-3 cm deep and up to ±1.5 cm off centre; wall thickness, systolic
    thickening, the other chambers' sizes and their positions vary. The heart
    still has to fit the sector: :func:`fit_heart` shrinks and moves it.
    """
    cm = 1.0 / spacing_cm
    length = rng.uniform(6.0, 10.5) * cm
    half_max = rng.uniform(1.3, 2.6) * (1.0 + 0.008 * max(0.0, 50.0 - ef)) * cm
    narrowing = rng.uniform(0.05, 0.4)
    sphericity = rng.uniform(1.4, 3.2)  # low: bullet-shaped (pointed apex); high: round
    profile = (1.0 - (1.0 - LEVELS) ** sphericity) ** (1.0 / sphericity) * (1.0 - narrowing * LEVELS**3)
    profile /= profile.max()
    skew = rng.uniform(-0.2, 0.2)
    bulge = 1.0 + cv2.GaussianBlur(rng.normal(0.0, 0.05, (2, N_CHORDS)), (0, 0), 2.0, sigmaY=0.01)
    apex = np.array([width / 2.0 + rng.uniform(-1.5, 1.5) * cm, rng.uniform(0.5, 3.0) * cm])
    return _assemble_heart(rng, cm, ef, apex=apex, theta=rng.uniform(-0.25, 0.45), length=length,
                           half_max=half_max, profile=profile, skew=skew, bulge=bulge, wall_cm=wall_cm,
                           thin_wall=(0.15, 0.5), rv=((0.25, 0.5), (0.4, 0.95)), la=((0.2, 0.4), (0.6, 1.05)),
                           ra=((0.2, 0.38), (0.5, 0.9)),
                           extra=(("rv_pos", 0.45, 0.75, 1.0), ("thickening", 0.2, 0.6, 1.0),
                                  ("la_offset", -0.4, 0.4, half_max), ("ra_gap", 0.0, 0.5, cm)))


def fit_heart(heart: Heart, sector_apex, radius: float, half_angle: float, tilt: float, width: int,
              height: int, margin: float) -> Heart:
    """Shrink and move ``heart`` until its ED cavity, a third of its wall and ``margin`` pixels lie in the fan.

    The LV cavity must be wholly visible (its tracing and mask are the truth);
    the outer wall and the other chambers may be cut by the sector edge, as in
    real views.
    Each failing step turns the long axis 0.03 rad towards the fan's axis,
    moves the apex 20% of the way to the fan's axis, half a
    pixel deeper if the top of the heart is outside the narrow tip of the fan,
    and shrinks the heart by 3% if it leaves the fan lower down; the shape
    itself (and so EF) is unchanged.
    """
    from dataclasses import replace

    sx, sy = sector_apex
    for _ in range(60):
        ed = lv_tracings(heart, np.ones(1))[0]
        pts = np.concatenate([_epicardium(heart, ed, 0.35 * heart.wall), ed[0:1, 2:]])
        dx, dy = pts[:, 0] - sx, pts[:, 1] - sy
        r = np.hypot(dx, dy)
        ang = np.arctan2(dx, dy) - tilt
        # perpendicular distance to the nearer straight edge of the fan
        edge = r * np.sin(half_angle - np.abs(ang))
        inside_edges = (edge >= margin) & (np.abs(ang) < half_angle)
        inside_arc = r <= radius - margin
        in_image = (pts[:, 0] >= margin) & (pts[:, 0] <= width - 1 - margin) & (pts[:, 1] >= margin) & (
            pts[:, 1] <= height - 1 - margin)
        if np.all(inside_edges & inside_arc & in_image):
            return heart
        target_x = sx + (heart.apex[1] - sy) * math.tan(tilt)
        apex = heart.apex.copy()
        apex[0] += 0.2 * (target_x - apex[0])
        if not np.all(inside_edges[r < 0.35 * radius]):
            apex[1] += 0.5  # too near the narrow top of the fan: go deeper
        k = 1.0 if np.all(inside_arc & in_image) and np.all(inside_edges[r >= 0.35 * radius]) else 0.97
        theta = heart.theta + float(np.clip(tilt - heart.theta, -0.03, 0.03))  # turn towards the fan's axis
        heart = replace(
            heart, apex=apex, theta=theta, length=heart.length * k, half_left=heart.half_left * k,
            half_right=heart.half_right * k, wall=heart.wall * k, rv=tuple(a * k for a in heart.rv),
            la=tuple(a * k for a in heart.la), ra=tuple(a * k for a in heart.ra), la_offset=heart.la_offset * k,
        )
    return heart


def sample_motion(rng: np.random.Generator, n_frames: int, fps: float, spacing_cm: float) -> np.ndarray:
    """``(F, 2)`` heart translation in pixels: breathing, slow drift and small jitter.

    Breathing is a sinusoid of 3-6 s period and 0.1-0.6 cm amplitude in a mostly
    vertical direction; drift is linear, up to 0.4 cm over the clip; jitter a
    smoothed random walk of ~0.05 cm. Its extent is returned by the caller to
    :func:`fit_heart` as a margin.
    """
    cm = 1.0 / spacing_cm
    t = np.arange(n_frames) / float(fps)
    amp = rng.uniform(0.1, 0.6) * cm
    direction = rng.uniform(-0.6, 0.6) + math.pi / 2  # mostly along y
    phase = rng.uniform(0, 2 * math.pi)
    breath = amp * np.sin(2 * math.pi * t / rng.uniform(3.0, 6.0) + phase)
    drift = rng.uniform(-0.4, 0.4, 2) * cm * (t / max(t[-1], 1e-6))[:, None]
    jitter = cv2.GaussianBlur(rng.normal(0.0, 0.05 * cm, (n_frames, 2)), (0, 0), 0.01, sigmaY=2.0)
    shift = np.stack([breath * math.cos(direction), breath * math.sin(direction)], axis=1) + drift + jitter
    return shift - shift.mean(axis=0)


def motion_margin(shift: np.ndarray) -> float:
    """Largest displacement in ``shift`` (pixels), plus one pixel."""
    return float(np.abs(shift).max()) + 1.0


def sample_artefacts(
    rng: np.random.Generator,
    heart: Heart,
    look: Look,
    shift: np.ndarray,
    height: int,
    width: int,
    sector_apex,
    tilt: float,
    severity: float = 1.0,
) -> Artefacts:
    """Draw one video's artefact maps (see :class:`Artefacts`); ``severity`` scales them (CAMUS quality).

    - lateral-wall dropout (always, 30-95% of the contrast lost over a patch of
      the lateral wall 25-60% of the axis long) and septal dropout (40% of videos);
    - a rib/lung shadow (55% of videos): an angular band 0.04-0.16 rad wide,
      from 20-60% depth on, 40-90% darker;
    - apical clutter (80%): speckled reflectivity over the apical 10-35% of the
      cavity; near-field haze, 0.04-0.25 of full scale, decaying over 1-3.5 cm;
    - reverberation (60%): 1-3 bright bands at multiples of a near-field depth;
    - TGC: a smooth random gain along depth (±35%) and across the fan (±15%).
    """
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    dx, dy = xs - sector_apex[0], ys - sector_apex[1]
    r = np.hypot(dx, dy)
    ang = np.arctan2(dx, dy) - tilt
    scale = float(max(height, width))
    depth = r / scale
    u, n = heart.axis_u, heart.axis_n
    L = heart.length
    # heart-frame coordinates of every pixel (static: the mean position over the clip)
    apex = heart.apex + shift.mean(axis=0)
    px, py = xs - apex[0], ys - apex[1]
    along = (px * u[0] + py * u[1]) / L  # 0 at the apex, 1 at the base
    across = px * n[0] + py * n[1]  # pixels, + towards X2 (lateral wall)
    half = float(max(heart.half_left.max(), heart.half_right.max()))

    def patch(center_along, width_along, center_across, width_across):
        return np.exp(-0.5 * ((along - center_along) / width_along) ** 2
                      - 0.5 * ((across - center_across) / width_across) ** 2).astype(np.float32)

    wall_mid = heart.wall * 0.5
    dropout = rng.uniform(0.3, 0.95) * patch(rng.uniform(0.35, 0.75), rng.uniform(0.12, 0.3),
                                             half * 0.9 + wall_mid, heart.wall * rng.uniform(1.2, 2.5))
    if rng.random() < 0.4:
        dropout = np.maximum(dropout, rng.uniform(0.2, 0.7) * patch(
            rng.uniform(0.3, 0.7), rng.uniform(0.08, 0.2), -half * 0.9 - wall_mid, heart.wall * 1.5))
    dropout = np.clip(dropout * severity, 0.0, 0.97)

    shadow = np.ones((height, width), np.float32)
    if rng.random() < 0.55:
        a0 = rng.uniform(-look.sector_half_angle, look.sector_half_angle)
        w = rng.uniform(0.04, 0.16)
        start = rng.uniform(0.2, 0.6)
        band = np.exp(-0.5 * ((ang - a0) / w) ** 6) * (1.0 / (1.0 + np.exp(-(depth - start) / 0.02)))
        shadow -= (rng.uniform(0.4, 0.9) * min(1.0, severity) * band).astype(np.float32)

    clutter = np.zeros((height, width), np.float32)
    if rng.random() < 0.8:
        reach = rng.uniform(0.1, 0.35)
        blob = np.exp(-0.5 * (np.maximum(along, 0.0) / reach) ** 2) * np.exp(-0.5 * (across / (1.1 * half)) ** 2)
        blob *= 1.0 / (1.0 + np.exp(-(along + 0.05) / 0.03))
        clutter += (rng.uniform(0.08, 0.35) * severity * blob).astype(np.float32)
    if rng.random() < 0.6:
        d0 = rng.uniform(0.07, 0.18)
        lateral = 1.0 + 0.5 * np.sin(ang * rng.uniform(3, 9) + rng.uniform(0, 6.3))
        amp = rng.uniform(0.05, 0.2) * severity
        for k in range(1, 4):
            clutter += (amp * 0.55 ** (k - 1) * lateral * np.exp(-0.5 * ((depth - k * d0) / 0.008) ** 2)).astype(
                np.float32)

    haze = (rng.uniform(0.04, 0.25) * severity * np.exp(-depth / rng.uniform(0.07, 0.22))).astype(np.float32)

    knots = rng.uniform(0.65, 1.35, 5)
    tgc_depth = np.interp(depth, np.linspace(0.0, 1.0, 5), knots)
    lat = rng.uniform(0.85, 1.15, 3)
    tgc_lat = np.interp(ang, np.linspace(-look.sector_half_angle, look.sector_half_angle, 3), lat)
    tgc = (tgc_depth * tgc_lat).astype(np.float32)
    return Artefacts(dropout.astype(np.float32), shadow, clutter, haze, tgc, np.asarray(shift, np.float64))


def render(
    rng: np.random.Generator,
    heart: Heart,
    look: Look,
    tracings: np.ndarray,
    levels: np.ndarray,
    masks: np.ndarray,
    sector: np.ndarray,
    sector_apex: tuple[float, float],
    labels: bool = False,
    artefacts: Artefacts | None = None,
):
    """Render B-mode frames of the scene, and optionally CAMUS-style label maps.

    The reflectivity map is drawn per frame (tissue, other chambers with bright
    walls, LV myocardium, then the LV cavity = ``masks[f]`` exactly), blurred to
    the system resolution and multiplied by speckle: the magnitude of a smoothed
    complex Gaussian field (Rayleigh-distributed), anisotropic (wider laterally,
    as beams are) and partly renewed every frame. Depth attenuation, near-field
    haze, gain/gamma and additive noise follow; outside the sector is black.

    With ``artefacts`` (the ``default`` look) the echo contrast is lost where
    ``dropout`` is high, ``clutter`` is added to the reflectivity (so it is
    speckled like tissue), shadows and TGC multiply the envelope and the haze
    map replaces the easy look's radial haze. The tracings already carry the
    motion, so the masks, labels and walls all move together.

    Args:
        tracings: ``(F, 21, 4)`` from :func:`lv_tracings`.
        levels: ``(F,)`` filling levels.
        masks: ``(F, H, W)`` bool true LV cavity.
        sector: ``(H, W)`` bool fan.
        labels: also return ``(F, H, W)`` uint8 labels (0 bg, 1 LV, 2 myocardium, 3 LA).
        artefacts: optional :class:`Artefacts` of this video.

    Returns:
        ``(F, H, W)`` uint8 grey frames, or ``(frames, labels)``.
    """
    n_frames, height, width = masks.shape
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    depth = np.hypot(xs - sector_apex[0], ys - sector_apex[1]) / float(max(height, width))
    attenuation = (1.0 - 0.35 * depth**1.5).astype(np.float32)
    texture = cv2.GaussianBlur(rng.standard_normal((height, width), dtype=np.float32), (0, 0), 3.0)
    texture /= texture.std() + 1e-6
    tissue = (look.tissue * np.clip(1.0 + 0.25 * texture, 0.4, 1.8)).astype(np.float32)
    if artefacts is None:
        haze = (look.haze * np.exp(-depth / 0.18)).astype(np.float32)
        envelope = attenuation
        keep_contrast = None
    else:
        haze = artefacts.haze + (look.haze * np.exp(-depth / 0.18)).astype(np.float32)
        envelope = (attenuation * artefacts.shadow * artefacts.tgc).astype(np.float32)
        keep_contrast = 1.0 - artefacts.dropout
    sx, sy = 1.6 * look.speckle_sigma, look.speckle_sigma
    keep = look.temporal
    renew = math.sqrt(1.0 - keep**2)
    field_re = field_im = None
    out = np.empty((n_frames, height, width), dtype=np.uint8)
    lab = np.zeros((n_frames, height, width), dtype=np.uint8) if labels else None
    angle_deg = math.degrees(math.atan2(heart.axis_u[1], heart.axis_u[0]))
    shifted = artefacts is not None

    for f in range(n_frames):
        refl = tissue.copy()
        chambers, wall = _chambers(heart, tracings[f], float(levels[f]), shifted)
        for centre, (a, b) in chambers:
            _ellipse(refl, centre, (a + heart.thin_wall, b + heart.thin_wall), angle_deg, look.wall)
        for centre, (a, b) in chambers:
            _ellipse(refl, centre, (a, b), angle_deg, look.blood)
        epi = _pts(_epicardium(heart, tracings[f], wall))
        cv2.fillPoly(refl, [epi], look.myocardium, cv2.LINE_8, _SHIFT)
        refl[masks[f]] = look.blood
        if keep_contrast is not None:
            # dropout: echoes from walls parallel to the beam are lost, tissue falls to the blood level
            refl = look.blood + (refl - look.blood) * keep_contrast + artefacts.clutter
        if look.blur > 0.3:
            refl = cv2.GaussianBlur(refl, (0, 0), look.blur)

        new_re = cv2.GaussianBlur(rng.standard_normal((height, width), dtype=np.float32), (0, 0), sx, sigmaY=sy)
        new_im = cv2.GaussianBlur(rng.standard_normal((height, width), dtype=np.float32), (0, 0), sx, sigmaY=sy)
        if field_re is None:
            field_re, field_im = new_re, new_im
        else:
            field_re = keep * field_re + renew * new_re
            field_im = keep * field_im + renew * new_im
        speckle = np.sqrt(field_re * field_re + field_im * field_im)
        speckle /= speckle.mean() + 1e-6

        img = refl * speckle * envelope + haze
        img = look.gain * np.power(np.maximum(img, 0.0), look.gamma)
        img += look.noise * rng.standard_normal((height, width), dtype=np.float32)
        img = np.clip(img * 255.0, 0.0, 255.0)
        img[~sector] = 0.0
        out[f] = img.astype(np.uint8)

        if labels:
            canvas = np.zeros((height, width), dtype=np.uint8)
            la_centre, (la_a, la_b) = chambers[1]
            _ellipse(canvas, la_centre, (la_a, la_b), angle_deg, 3)
            cv2.fillPoly(canvas, [epi], 2, cv2.LINE_8, _SHIFT)
            canvas[masks[f]] = 1
            if shifted:
                # walls and atria cut by the fan edge are not seen, so not labelled (the cavity always fits)
                canvas[~sector & (canvas != 1)] = 0
            lab[f] = canvas
    return (out, lab) if labels else out
