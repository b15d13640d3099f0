"""Left-ventricular volume by the single-plane method of disks (Simpson's rule).

A traced LV is a long axis of length ``L`` and ``n`` chords perpendicular to it,
one per disk. Each chord is the diameter of a disk of height ``L / n``::

    V = sum_i  pi / 4 * d_i**2 * L / n

This is the formula behind EchoNet-Dynamic's tracings (one long-axis row, then
chords) and the simulator's ground-truth volumes. It lives here, below both
``echossl.simulate`` and ``echossl.evaluation`` (which re-exports it), so the
simulator does not import the evaluation layer.
"""

from __future__ import annotations

import numpy as np


def method_of_disks(x1, y1, x2, y2, spacing: float = 1.0) -> float:
    """Volume from one traced frame in EchoNet-Dynamic's row layout.

    Args:
        x1, y1, x2, y2: arrays of shape ``(1 + n,)``; row 0 is the long axis
            (apex to mitral-annulus midpoint, in either direction), rows 1.. are
            the chords.
        spacing: length of one pixel in cm; the volume is then in mL (cm^3).

    Returns:
        Volume in ``spacing``-units cubed.
    """
    x1, y1, x2, y2 = (np.asarray(a, dtype=np.float64) for a in (x1, y1, x2, y2))
    if x1.shape[0] < 2:
        raise ValueError("a tracing needs a long axis and at least one chord")
    return float(disks_volumes(np.stack([x1, y1, x2, y2], axis=-1)[None], spacing)[0])


def disks_volumes(tracings, spacing: float = 1.0) -> np.ndarray:
    """Method-of-disks volumes of many tracings at once.

    Args:
        tracings: ``(F, 1 + n, 4)`` rows ``(X1, Y1, X2, Y2)``, row 0 the long axis.
        spacing: pixel length in cm (volumes in mL).

    Returns:
        ``(F,)`` float64 volumes.
    """
    t = np.asarray(tracings, dtype=np.float64)
    length = np.hypot(t[:, 0, 2] - t[:, 0, 0], t[:, 0, 3] - t[:, 0, 1])
    d2 = (t[:, 1:, 2] - t[:, 1:, 0]) ** 2 + (t[:, 1:, 3] - t[:, 1:, 1]) ** 2
    return np.pi / 4.0 * d2.sum(axis=1) * length / d2.shape[1] * spacing**3


def ejection_fraction(edv, esv):
    """EF in percent, ``100 * (EDV - ESV) / EDV``; works on scalars and arrays."""
    edv = np.asarray(edv, dtype=np.float64)
    esv = np.asarray(esv, dtype=np.float64)
    return 100.0 * (edv - esv) / np.maximum(edv, 1e-9)
