"""A cache of decoded video frames as memory-mapped ``.npy`` files.

Decoding an MJPG AVI with OpenCV costs far more than reading raw frames, and
training reads each video every epoch. :class:`FrameCache` decodes a video once
into ``(F, H, W, 3)`` uint8 RGB and memory-maps it afterwards, so a clip reads
only the frames it needs.

Location: ``$ECHOSSL_CACHE`` if set, else ``~/.cache/echossl/frames``; never the
data folder (which may be read-only or shared). The key is the sha1 of the
video's absolute path, size and mtime_ns, so an edited or replaced video gets a
new entry and the stale one is simply never read again (``clear()`` removes all).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections import OrderedDict
from pathlib import Path

import numpy as np

from echossl.data.video import read_video


def default_cache_root() -> Path:
    """``$ECHOSSL_CACHE`` or ``~/.cache/echossl/frames``."""
    env = os.environ.get("ECHOSSL_CACHE")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "echossl" / "frames"


def file_key(path: str | Path) -> str:
    """sha1 hex of absolute path + size + mtime_ns: changes whenever the file does."""
    path = Path(path).absolute()
    st = path.stat()
    text = f"{path}\0{st.st_size}\0{st.st_mtime_ns}"
    return hashlib.sha1(text.encode("utf-8", "surrogateescape")).hexdigest()


class FrameCache:
    """Decode-once cache of videos as read-only memmaps.

    Args:
        root: cache folder; default :func:`default_cache_root`.
        max_open: how many memmaps to keep open per process (cheap to reopen).
    """

    def __init__(self, root: str | Path | None = None, max_open: int = 64):
        self.root = Path(root).expanduser() if root is not None else default_cache_root()
        self.max_open = max_open
        self._open: OrderedDict[str, np.memmap] = OrderedDict()

    def __repr__(self) -> str:
        return f"FrameCache({str(self.root)!r})"

    # DataLoader workers receive a pickled dataset: never pickle open memmaps
    # (numpy would pickle their whole contents).
    def __getstate__(self):
        state = self.__dict__.copy()
        state["_open"] = OrderedDict()
        return state

    def path_for(self, video_path: str | Path) -> Path:
        """Where the decoded frames of ``video_path`` live (whether or not written yet)."""
        key = file_key(video_path)
        return self.root / key[:2] / f"{key}.npy"

    def get(self, video_path: str | Path) -> np.memmap:
        """Frames of ``video_path`` as a read-only ``(F, H, W, 3)`` uint8 memmap.

        Decodes with :func:`echossl.data.video.read_video` on the first call for
        this version of the file and writes the ``.npy`` atomically.

        Raises:
            DataError: the video is missing or cannot be decoded.
        """
        target = self.path_for(video_path)
        key = target.stem
        hit = self._open.get(key)
        if hit is not None:
            self._open.move_to_end(key)
            return hit
        frames = None
        if target.is_file():
            try:
                frames = np.load(target, mmap_mode="r")
            except (ValueError, OSError, EOFError):
                frames = None  # damaged entry (e.g. disk full earlier): rebuild it
        if frames is None:
            self._write(target, read_video(video_path))
            frames = np.load(target, mmap_mode="r")
        self._open[key] = frames
        while len(self._open) > self.max_open:
            self._open.popitem(last=False)
        return frames

    def _write(self, target: Path, frames: np.ndarray) -> None:
        # Temp file in the same folder + os.replace: a reader never sees a
        # half-written file, and two workers racing on one video both write a
        # complete file and the last rename wins (the contents are identical).
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=target.stem + ".", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                np.save(fh, np.ascontiguousarray(frames, dtype=np.uint8))
            os.replace(tmp, target)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise

    def clear(self) -> int:
        """Delete every cached file under ``root``; returns how many were removed."""
        self._open.clear()
        n = 0
        if self.root.is_dir():
            for p in self.root.glob("*/*.npy"):
                p.unlink(missing_ok=True)
                n += 1
        return n
