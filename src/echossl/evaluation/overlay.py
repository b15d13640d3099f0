"""Videos with the predicted LV outline drawn on every frame, for visual checks."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from echossl.data.video import write_video


def draw_outline(frames, masks, color=(255, 0, 0), thickness: int = 1) -> np.ndarray:
    """Copy of ``(F, H, W, 3)`` uint8 RGB frames with each ``(F, H, W)`` mask's outline.

    Only the outline is drawn (not a filled mask) so the wall and cavity under it
    stay visible; every connected piece of the mask gets its own contour, which
    makes fragmented predictions obvious.
    """
    frames = np.asarray(frames)
    masks = np.asarray(masks, dtype=bool)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be (F, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
    if masks.shape != frames.shape[:3]:
        raise ValueError(f"masks {masks.shape} do not match frames {frames.shape[:3]}")
    out = np.ascontiguousarray(frames.copy())
    for frame, mask in zip(out, masks):
        contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        if contours:
            cv2.drawContours(frame, contours, -1, tuple(int(c) for c in color), int(thickness))
    return out


def write_overlay_video(path, frames, masks, fps: float, color=(255, 0, 0), thickness: int = 1) -> Path:
    """Write frames with the mask outline as an AVI via :func:`echossl.data.video.write_video`.

    Args:
        path: output ``.avi``.
        frames: ``(F, H, W, 3)`` uint8 RGB.
        masks: ``(F, H, W)`` bool.
        fps: frame rate of the output.
        color: RGB outline colour (red by default).
        thickness: outline width in pixels.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    write_video(path, draw_outline(frames, masks, color=color, thickness=thickness), fps)
    return path
