"""Reading and writing AVI video with OpenCV, in EchoNet-Dynamic's conventions.

Frames are handled as ``(F, H, W, 3)`` uint8 RGB arrays. OpenCV decodes to BGR,
so the channels are flipped on the way in and out.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from echossl.errors import DataError


def read_video(path: str | Path) -> np.ndarray:
    """Decode a whole video into a ``(F, H, W, 3)`` uint8 RGB array.

    Raises:
        DataError: the file is missing, unreadable, truncated to nothing, or has 0 frames.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "video file does not exist")
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise DataError(path, "video cannot be opened (not a readable AVI)")
        frames = []
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            if frame.ndim == 2:
                frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
            frames.append(frame[:, :, ::-1])
    finally:
        capture.release()
    if not frames:
        raise DataError(path, "video has 0 decodable frames (empty or truncated)")
    return np.ascontiguousarray(np.stack(frames))


def video_info(path: str | Path) -> dict:
    """Header facts without decoding: ``frames``, ``fps``, ``height``, ``width``."""
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise DataError(path, "video cannot be opened (not a readable AVI)")
        return {
            "frames": int(capture.get(cv2.CAP_PROP_FRAME_COUNT)),
            "fps": float(capture.get(cv2.CAP_PROP_FPS)),
            "height": int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
            "width": int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
        }
    finally:
        capture.release()


def write_video(path: str | Path, frames: np.ndarray, fps: float, codec: str = "MJPG") -> None:
    """Write ``(F, H, W, 3)`` uint8 RGB frames as an AVI (MJPG by default, like EchoNet).

    The file is written under a temporary name and renamed, so a crash never
    leaves a half-written video behind under the real name.
    """
    path = Path(path)
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be (F, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp" + path.suffix)
    height, width = frames.shape[1:3]
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*codec), float(fps), (width, height))
    if not writer.isOpened():
        raise OSError(f"cannot open a video writer for {path}")
    try:
        for frame in frames:
            writer.write(np.ascontiguousarray(frame[:, :, ::-1]))
    finally:
        writer.release()
    tmp.replace(path)
