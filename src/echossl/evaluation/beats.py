"""Beat-to-beat analysis: ED/ES frames from an LV-area curve, EF per beat.

EchoNet-Dynamic (Ouyang et al., Nature 2020) finds end-systole as the minima of the
segmented LV area, ``scipy.signal.find_peaks(-area, distance=20,
prominence=0.5·(max − min))``, and averages EF over beats; the reference did the
beat-to-beat part only in R, and users ask for EF computed from masks. This module
does both in Python: ES as in the reference, ED as the largest area between
consecutive ES frames, EF per (ED, following ES) pair by the method of disks
(:func:`echossl.evaluation.volumes.mask_volume`).
"""

from __future__ import annotations

import numpy as np
from scipy.signal import find_peaks

from echossl.evaluation.volumes import ejection_fraction, mask_volume

# EchoNet-Dynamic's videos are about 50 fps; the reference's distance of 20 frames
# (0.4 s, a bit less than half a beat at rest) is meant for that rate.
REFERENCE_FPS = 50.0


def _distance(min_distance: float, fps: float | None) -> int:
    if fps is not None and fps > 0:
        min_distance = min_distance * float(fps) / REFERENCE_FPS
    return max(1, int(round(min_distance)))


def find_beats(area, min_distance: float = 20, fps: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """End-diastolic and end-systolic frames of an LV-area (or volume) curve.

    Args:
        area: ``(T,)`` LV area per frame (pixel count) or volume.
        min_distance: least spacing of two ES frames, in frames at
            :data:`REFERENCE_FPS` (50 fps, EchoNet's rate, where the reference uses
            20). When ``fps`` is given it is rescaled to ``min_distance · fps / 50``
            frames, so that the same time span (0.4 s by default) is enforced on
            videos of other frame rates or subsampled clips (pass ``fps / period``).
        fps: frame rate of ``area``, or None to use ``min_distance`` frames as is.

    Returns:
        ``(ed_frames, es_frames)``: sorted 0-based int arrays. ES are the area minima
        found as in the reference. ED are the area maxima between consecutive ES;
        before the first ES and after the last ES an ED is added only when that
        stretch spans at least half a beat (half the median ES-to-ES interval, or
        the minimum distance when there is a single ES), so that a video starting
        or ending mid-systole does not give a truncated "ED". When no ES is found
        (short or flat curve) or no ED qualifies, the global argmax and argmin are
        returned, one each.
    """
    area = np.asarray(area, dtype=np.float64).reshape(-1)
    t = area.size
    if t == 0:
        return np.zeros(0, dtype=int), np.zeros(0, dtype=int)
    fallback = (np.array([int(np.argmax(area))]), np.array([int(np.argmin(area))]))
    span = float(area.max() - area.min())
    if t < 3 or not np.isfinite(span) or span <= 0:
        return fallback
    distance = _distance(min_distance, fps)
    es, _ = find_peaks(-area, distance=distance, prominence=0.5 * span)
    if es.size == 0:
        return fallback
    half_beat = np.median(np.diff(es)) / 2.0 if es.size > 1 else distance
    ed = [int(a + np.argmax(area[a:b])) for a, b in zip(es[:-1] + 1, es[1:]) if b > a]
    if es[0] >= half_beat:
        ed.insert(0, int(np.argmax(area[: es[0]])))
    if t - 1 - es[-1] >= half_beat:
        ed.append(int(es[-1] + 1 + np.argmax(area[es[-1] + 1 :])))
    if not ed:
        return fallback
    return np.asarray(ed, dtype=int), es.astype(int)


def _beat_pairs(ed_frames, es_frames) -> list[tuple[int, int]]:
    """(ED, following ES) pairs: each ES with the last ED after the previous ES.

    Falls back to the single pair ``(ed[0], es[0])`` whatever their order, which is
    what :func:`find_beats`'s argmax/argmin fallback means.
    """
    ed = np.asarray(ed_frames, dtype=int)
    es = np.asarray(es_frames, dtype=int)
    pairs = []
    previous = -1
    for s in es:
        candidates = ed[(ed > previous) & (ed < s)]
        if candidates.size:
            pairs.append((int(candidates[-1]), int(s)))
        previous = s
    if not pairs and ed.size and es.size:
        pairs.append((int(ed[0]), int(es[0])))
    return pairs


def beat_ef(volume, min_distance: float = 20, fps: float | None = None) -> dict:
    """EF averaged over beats of a ``(T,)`` LV-volume curve.

    Beats are found on the volume curve itself with :func:`find_beats`; each
    (ED, following ES) pair gives ``EF = 100·(V_ED − V_ES)/V_ED``.

    Returns:
        ``{"ef": mean EF (NaN if no beat), "ef_per_beat": [..], "ed_frames": [..],
        "es_frames": [..]}`` (frame lists are the pairs used, 0-based).
    """
    volume = np.asarray(volume, dtype=np.float64).reshape(-1)
    ed, es = find_beats(volume, min_distance=min_distance, fps=fps)
    pairs = _beat_pairs(ed, es)
    efs = [float(ejection_fraction(volume[a], volume[b])) for a, b in pairs]
    return {
        "ef": float(np.mean(efs)) if efs else float("nan"),
        "ef_per_beat": efs,
        "ed_frames": [a for a, _ in pairs],
        "es_frames": [b for _, b in pairs],
    }


def segmentation_ef(
    masks, spacing: float = 1.0, min_distance: float = 20, fps: float | None = None, n_disks: int = 20
) -> dict:
    """EF from per-frame LV masks: beats from the area curve, volumes by disks.

    Args:
        masks: ``(T, H, W)`` boolean LV masks (one video or clip).
        spacing: pixel length in cm (volumes then in mL).
        min_distance, fps: see :func:`find_beats`.
        n_disks: disks of the method of disks.

    Returns:
        ``{"ef": EF averaged over beats, "ed_frame", "es_frame": the first beat's
        picks (0-based), "volume": (T,) array, "area": (T,) array, "ed_frames",
        "es_frames": lists of the beats used, "ef_per_beat": list}``.
    """
    masks = np.asarray(masks, dtype=bool)
    if masks.ndim != 3:
        raise ValueError(f"masks must be (T, H, W), got shape {masks.shape}")
    area = masks.reshape(masks.shape[0], -1).sum(axis=1).astype(np.float64)
    volume = mask_volume(masks, n_disks=n_disks, spacing=spacing)
    ed, es = find_beats(area, min_distance=min_distance, fps=fps)
    pairs = _beat_pairs(ed, es)
    efs = [float(ejection_fraction(volume[a], volume[b])) for a, b in pairs]
    return {
        "ef": float(np.mean(efs)) if efs else float("nan"),
        "ef_per_beat": efs,
        "ed_frame": pairs[0][0] if pairs else None,
        "es_frame": pairs[0][1] if pairs else None,
        "volume": volume,
        "area": area,
        "ed_frames": [a for a, _ in pairs],
        "es_frames": [b for _, b in pairs],
    }


def high_frequency_power(curve, cutoff: float = 0.25) -> float:
    """Share of a curve's spectral power above ``cutoff`` × Nyquist (DC excluded).

    A measure of temporal consistency of a per-frame prediction (e.g. the LV area
    of a segmentation): a cardiac cycle lives at low frequencies, so frame-to-frame
    flicker shows up as power near Nyquist.

    Args:
        curve: ``(T,)`` values.
        cutoff: fraction of the Nyquist frequency (0.5 cycles/frame).

    Returns:
        A fraction in [0, 1]; 0.0 for a constant or too short curve.
    """
    curve = np.asarray(curve, dtype=np.float64).reshape(-1)
    if curve.size < 3:
        return 0.0
    power = np.abs(np.fft.rfft(curve - curve.mean())) ** 2
    freq = np.fft.rfftfreq(curve.size)  # cycles per frame, Nyquist = 0.5
    power, freq = power[1:], freq[1:]
    total = power.sum()
    if not np.isfinite(total) or total <= 1e-12 * max(1.0, float(np.sum(curve**2))):
        return 0.0
    return float(power[freq > cutoff * 0.5].sum() / total)
