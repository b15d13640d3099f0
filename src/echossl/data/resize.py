"""Resizing frames and their masks so that they stay on the same pixel grid.

Frames are resized bilinearly with ``align_corners=False``: output pixel ``i``
samples the input at ``(i + 0.5) · in / out − 0.5``, i.e. pixel *centres* are
aligned. ``F.interpolate(mode="nearest")`` is not centre-aligned: it takes input
pixel ``floor(i · in / out)``, which at 112 → 64 moves a mask by about 0.4 px per
axis against its frame (Dice of a disk and its own resize: about 0.96).

The masks here are resized with the frames' own resampling and then binarised:
a binary mask is interpolated bilinearly exactly like its frame and thresholded
at 0.5; a label map is one-hot encoded, each class interpolated the same way,
and the arg-max taken. A binary image resized as a frame and thresholded is
therefore the same mask as its label resized here (Dice 1.0 by construction),
whereas ``nearest-exact`` — also centre-aligned — differs from it on a few
boundary pixels (Dice about 0.997 on a 112 → 64 disk; tests/data/test_alignment.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _target(size) -> tuple[int, int]:
    return (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))


def resize_frames(x: torch.Tensor, size) -> torch.Tensor:
    """``(N, C, H, W)`` float frames -> ``(N, C, h, w)``, bilinear, pixel centres aligned.

    ``size`` is an int (square) or ``(h, w)``; a no-op when already that size.
    """
    target = _target(size)
    if tuple(x.shape[-2:]) == target:
        return x
    return F.interpolate(x, size=target, mode="bilinear", align_corners=False)


def resize_mask(mask: torch.Tensor, size) -> torch.Tensor:
    """``(N, C, H, W)`` binary masks (bool, int or float in {0, 1}) -> float32 ``{0, 1}`` at ``size``.

    Resampled as :func:`resize_frames` resamples the frame, then ``> 0.5``, so a
    mask stays on the LV edge that the resized frame shows.
    """
    target = _target(size)
    m = mask.float()
    if tuple(m.shape[-2:]) == target:
        return (m > 0.5).float()
    return (resize_frames(m, target) > 0.5).float()


def resize_labels(labels: torch.Tensor, size, num_classes: int | None = None) -> torch.Tensor:
    """``(N, H, W)`` integer label maps -> ``(N, h, w)`` int64 at ``size``.

    Each class is one-hot encoded, resampled like the frames and the arg-max
    taken (with two classes this equals :func:`resize_mask`). ``num_classes``
    defaults to the largest label + 1.
    """
    target = _target(size)
    labels = labels.long()
    if tuple(labels.shape[-2:]) == target:
        return labels
    k = int(num_classes if num_classes is not None else int(labels.max()) + 1 if labels.numel() else 1)
    # one class at a time: a full (N, K, H, W) one-hot of a CAMUS sequence at its
    # native size would be hundreds of MB, its resized scores are small
    scores = torch.stack([resize_frames((labels == c).float()[:, None], target)[:, 0] for c in range(k)], dim=1)
    return scores.argmax(dim=1)  # (N, h, w); ties go to the lower class
