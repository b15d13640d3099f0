"""FrameCache: decode once, memmap, invalidate on change, never in the data folder."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from echossl.data.cache import FrameCache, default_cache_root
from echossl.data.video import write_video


def _frames(n, value):
    return np.full((n, 16, 16, 3), value, np.uint8)


def test_decode_once_then_memmap(tmp_path, monkeypatch):
    video = tmp_path / "data" / "a.avi"
    write_video(video, _frames(5, 100), fps=25)
    cache = FrameCache(tmp_path / "cache")
    first = cache.get(video)
    assert isinstance(first, np.memmap) and first.shape == (5, 16, 16, 3) and first.dtype == np.uint8
    assert not first.flags.writeable
    assert abs(int(first[2, 8, 8, 0]) - 100) <= 3
    # a second cache object must not decode again: break the decoder and read
    import echossl.data.cache as mod

    monkeypatch.setattr(mod, "read_video", lambda p: (_ for _ in ()).throw(AssertionError("decoded")))
    again = FrameCache(tmp_path / "cache").get(video)
    np.testing.assert_array_equal(np.asarray(again), np.asarray(first))


def test_changed_source_invalidates(tmp_path):
    video = tmp_path / "data" / "a.avi"
    write_video(video, _frames(5, 50), fps=25)
    cache = FrameCache(tmp_path / "cache")
    old_path = cache.path_for(video)
    assert abs(int(cache.get(video)[0, 0, 0, 0]) - 50) <= 3
    write_video(video, _frames(7, 200), fps=25)  # replaced with different content
    st = video.stat()
    os.utime(video, ns=(st.st_atime_ns, st.st_mtime_ns + 10_000_000))  # coarse-mtime filesystems
    assert cache.path_for(video) != old_path
    new = cache.get(video)
    assert new.shape[0] == 7 and abs(int(new[0, 0, 0, 0]) - 200) <= 3
    # touching alone (same bytes, new mtime) also gives a new key
    before = cache.path_for(video)
    os.utime(video, ns=(st.st_atime_ns, st.st_mtime_ns + 20_000_000))
    assert cache.path_for(video) != before


def test_default_location_not_in_data_dir(tmp_path, monkeypatch):
    video = tmp_path / "data" / "a.avi"
    write_video(video, _frames(3, 10), fps=25)
    monkeypatch.setenv("ECHOSSL_CACHE", str(tmp_path / "elsewhere"))
    cache = FrameCache()
    assert cache.root == tmp_path / "elsewhere" == default_cache_root()
    cache.get(video)
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["a.avi"]
    assert len(list((tmp_path / "elsewhere").glob("*/*.npy"))) == 1
    monkeypatch.delenv("ECHOSSL_CACHE")
    assert default_cache_root() == __import__("pathlib").Path.home() / ".cache" / "echossl" / "frames"


def test_damaged_entry_rebuilt_and_atomic_write(tmp_path):
    video = tmp_path / "a.avi"
    write_video(video, _frames(4, 80), fps=25)
    cache = FrameCache(tmp_path / "cache")
    target = cache.path_for(video)
    target.parent.mkdir(parents=True)
    target.write_bytes(b"\x93NUMPY garbage")
    assert cache.get(video).shape == (4, 16, 16, 3)
    assert not list(target.parent.glob("*.tmp"))  # no temp files left behind


def test_two_workers_race(tmp_path):
    """Two processes decoding the same video at once both get complete frames."""
    import multiprocessing as mp

    video = tmp_path / "a.avi"
    write_video(video, _frames(20, 120), fps=25)
    ctx = mp.get_context("fork")
    with ctx.Pool(2) as pool:
        shapes = pool.map(_worker_get, [(str(tmp_path / "cache"), str(video))] * 4)
    assert shapes == [(20, 16, 16, 3)] * 4
    assert len(list((tmp_path / "cache").glob("*/*.npy"))) == 1


def _worker_get(args):
    root, video = args
    return tuple(FrameCache(root).get(video).shape)


def test_pickle_drops_open_memmaps(tmp_path):
    import pickle

    video = tmp_path / "a.avi"
    write_video(video, _frames(30, 1), fps=25)
    cache = FrameCache(tmp_path / "cache")
    cache.get(video)
    assert len(pickle.dumps(cache)) < 2000  # not the 23 kB of frames
