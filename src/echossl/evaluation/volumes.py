"""Left-ventricular volume by the single-plane method of disks (Simpson's rule).

A traced LV is a long axis of length ``L`` and ``n`` chords perpendicular to it,
one per disk. Each chord is the diameter of a disk of height ``L / n``::

    V = sum_i  pi / 4 * d_i**2 * L / n

This is the formula behind EchoNet-Dynamic's tracings (one long-axis row, then
chords) and the simulator's ground-truth volumes, so EF computed from a
simulated tracing agrees with FileList.csv by construction.
"""

from __future__ import annotations

import numpy as np

# Re-exported: the formula lives in echossl.geometry so that simulate/ need not import evaluation/.
from echossl.geometry import disks_volumes, ejection_fraction, method_of_disks  # noqa: F401


def mask_volume(masks, n_disks: int = 20, spacing: float = 1.0) -> np.ndarray:
    """Method-of-disks volume of binary LV masks, with the long axis found by PCA.

    The long axis is the principal axis of the mask's pixels; the mask is cut
    into ``n_disks`` slabs perpendicular to it, and each slab's width (the
    spread of its pixels across the axis) is the disk diameter. Vectorised over
    the pixels of each frame; frames are handled one at a time because each has
    its own axis.

    Args:
        masks: ``(H, W)`` or ``(T, H, W)`` boolean masks.
        n_disks: number of disks (20, as in clinical tracings).
        spacing: pixel length in cm.

    Returns:
        ``(T,)`` volumes (0 for an empty mask).
    """
    masks = np.asarray(masks, dtype=bool)
    if masks.ndim == 2:
        masks = masks[None]
    out = np.zeros(masks.shape[0])
    for t, mask in enumerate(masks):
        ys, xs = np.nonzero(mask)
        if xs.size < 3:
            continue
        pts = np.stack([xs, ys], axis=1).astype(np.float64)
        centred = pts - pts.mean(axis=0)
        # principal axis = eigenvector of the largest eigenvalue of the covariance
        _, vecs = np.linalg.eigh(centred.T @ centred)
        along = centred @ vecs[:, 1]
        across = centred @ vecs[:, 0]
        lo, hi = along.min() - 0.5, along.max() + 0.5
        length = hi - lo
        bins = np.minimum(((along - lo) / length * n_disks).astype(int), n_disks - 1)
        # per-bin min/max of the across coordinate, without a loop over bins
        mins = np.full(n_disks, np.inf)
        maxs = np.full(n_disks, -np.inf)
        np.minimum.at(mins, bins, across)
        np.maximum.at(maxs, bins, across)
        widths = np.where(np.isfinite(mins), maxs - mins + 1.0, 0.0)
        out[t] = np.pi / 4.0 * np.sum(widths**2) * length / n_disks * spacing**3
    return out
