"""Clip sampling with EchoNet-Dynamic's conventions, and zero-padding helpers.

A clip of ``length`` frames at ``period`` starting at ``start`` takes the frames
``start + period * arange(length)``. Videos shorter than ``length * period``
frames are treated as if zero frames were appended at the end (as the
reference does), so an index ``>= n_frames`` means "a zero frame".
"""

from __future__ import annotations

import numpy as np


def effective_length(n_frames: int, length: int | None, period: int) -> int:
    """Clip length in frames; ``length=None`` means the whole video (``n_frames // period``)."""
    if period < 1:
        raise ValueError(f"period must be >= 1, got {period}")
    if length is None:
        return max(1, n_frames // period)
    if length < 1:
        raise ValueError(f"length must be >= 1, got {length}")
    return int(length)


def clip_indices(n_frames: int, length: int | None, period: int, start: int) -> np.ndarray:
    """Frame indices ``(length,)`` int64 of one clip; entries ``>= n_frames`` are padding."""
    length = effective_length(n_frames, length, period)
    return int(start) + period * np.arange(length, dtype=np.int64)


def all_starts(n_frames: int, length: int | None, period: int) -> np.ndarray:
    """Every valid start ``(S,)`` int64, as the reference's ``clips="all"``.

    The video is (virtually) zero-padded to at least ``length * period`` frames
    first, so a short video still has at least one start (0).
    """
    length = effective_length(n_frames, length, period)
    padded = max(n_frames, length * period)
    return np.arange(padded - (length - 1) * period, dtype=np.int64)


def spaced_starts(n_frames: int, length: int | None, period: int, k: int) -> np.ndarray:
    """``k`` evenly spaced starts ``(k,)`` from the first to the last valid one."""
    starts = all_starts(n_frames, length, period)
    return np.rint(np.linspace(0, starts[-1], int(k))).astype(np.int64)


def take_frames(frames: np.ndarray, idx: np.ndarray, fill=0) -> np.ndarray:
    """``frames[idx]`` along axis 0 with ``fill`` where ``idx >= len(frames)``.

    Works on a read-only memmap without reading the frames that are not needed.

    Args:
        frames: ``(F, ...)`` array.
        idx: ``(N,)`` non-negative int indices.

    Returns:
        ``(N, ...)`` array of ``frames.dtype``.
    """
    idx = np.asarray(idx, dtype=np.int64)
    out = np.full((idx.shape[0],) + frames.shape[1:], fill, dtype=frames.dtype)
    valid = idx < frames.shape[0]
    if valid.any():
        out[valid] = frames[idx[valid]]
    return out


def pad_crop_offsets(pad: int, generator=None) -> tuple[int, int]:
    """Random ``(i, j)`` in ``[0, 2*pad]`` for a pad-then-crop augmentation (torch RNG,
    so DataLoader workers and ``seed_everything`` control it)."""
    import torch

    i, j = torch.randint(0, 2 * pad + 1, (2,), generator=generator).tolist()
    return int(i), int(j)


def pad_crop(x, pad: int, i: int, j: int, fill=0.0):
    """Zero-pad the last two axes of ``x`` by ``pad`` each side, then crop back at ``(i, j)``.

    Args:
        x: torch tensor ``(..., H, W)``.

    Returns:
        Tensor of the same shape as ``x``.
    """
    import torch

    h, w = x.shape[-2:]
    out = torch.full(x.shape[:-2] + (h + 2 * pad, w + 2 * pad), fill, dtype=x.dtype)
    out[..., pad : pad + h, pad : pad + w] = x
    return out[..., i : i + h, j : j + w].contiguous()
