"""Reading and writing AVI video with OpenCV, in EchoNet-Dynamic's conventions.

Frames are handled as ``(F, H, W, 3)`` uint8 RGB arrays. OpenCV decodes to BGR,
so the channels are flipped on the way in and out.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from echossl.errors import DataError

# What one video may make the reader allocate. EchoNet's videos decode to about
# 7 MB (112 x 112, ~200 frames); a header claiming bigger frames than this is
# refused before decoding, and decoding stops with an error past the byte cap
# (the frames are then stacked once more, so the peak is about twice the cap).
MAX_FRAME_PIXELS = 2**26  # e.g. 8192 x 8192
MAX_VIDEO_BYTES = 2**31  # 2 GiB of decoded RGB frames


def capture_int(capture, prop: int) -> int:
    """An OpenCV capture property as an int; 0 when it is NaN, negative or absurd."""
    value = capture.get(prop)
    return int(value) if np.isfinite(value) and 0 <= value < 2**62 else 0


def _decode_all(capture, path: Path) -> list[np.ndarray]:
    """Every decodable frame as ``(H, W, 3)`` RGB, within the caps above."""
    h, w = capture_int(capture, cv2.CAP_PROP_FRAME_HEIGHT), capture_int(capture, cv2.CAP_PROP_FRAME_WIDTH)
    if h * w > MAX_FRAME_PIXELS:
        raise DataError(path, f"header claims {w}x{h}-pixel frames, more than the "
                              f"{MAX_FRAME_PIXELS} pixels per frame echossl reads")
    frames, total = [], 0
    while True:
        ok, frame = capture.read()
        if not ok:
            return frames
        if frame.ndim == 2:
            frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
        if frames and frame.shape != frames[0].shape:  # MJPG frames each carry their own size
            raise DataError(path, f"frame {len(frames)} is {frame.shape[1]}x{frame.shape[0]} pixels but "
                                  f"frame 0 is {frames[0].shape[1]}x{frames[0].shape[0]}")
        total += frame.nbytes
        if total > MAX_VIDEO_BYTES:
            raise DataError(path, f"decodes to more than {MAX_VIDEO_BYTES / 2**30:g} GiB of frames "
                                  f"(stopped at frame {len(frames)}); echossl reads videos up to that size")
        frames.append(frame[:, :, ::-1])


def read_video(path: str | Path) -> np.ndarray:
    """Decode a whole video into a ``(F, H, W, 3)`` uint8 RGB array.

    Raises:
        DataError: the file is missing, unreadable, truncated to nothing, has 0
            frames, frames of different sizes, or more than the caps above.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "video file does not exist")
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise DataError(path, "video cannot be opened (not a readable AVI)")
        frames = _decode_all(capture, path)
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
            "frames": capture_int(capture, cv2.CAP_PROP_FRAME_COUNT),
            "fps": float(capture.get(cv2.CAP_PROP_FPS)),
            "height": capture_int(capture, cv2.CAP_PROP_FRAME_HEIGHT),
            "width": capture_int(capture, cv2.CAP_PROP_FRAME_WIDTH),
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
