"""Hostile AVI files: a clean decode or one DataError naming the video, within the memory caps."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from echossl.data import echonet, video
from echossl.data.cache import FrameCache
from echossl.errors import DataError

FUZZ = settings.get_profile("echossl-fuzz")
pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")


def _one_avi(root):
    return sorted((root / "Videos").glob("*.avi"))[0]


@pytest.mark.timeout(180)
@FUZZ
@given(data=st.data())
def test_avi_bytes(data, pristine, fresh_copy, cases, helpers, tmp_path_factory):
    with fresh_copy(pristine("echonet")) as root:
        avi = _one_avi(root)
        avi.write_bytes(helpers.mutate(data, avi.read_bytes()))
        out = cases(helpers.expect_clean(lambda: video.read_video(avi), file=avi.name))
        if not isinstance(out, DataError):
            assert out.dtype == np.uint8 and out.ndim == 4 and out.shape[0] >= 1 and out.shape[-1] == 3
        info = helpers.expect_clean(lambda: video.video_info(avi), file=avi.name)
        if not isinstance(info, DataError):
            assert min(info["frames"], info["height"], info["width"]) >= 0
        n, h, w, problem = echonet.probe_video(avi)  # never raises: a problem is a sentence
        assert problem is None or isinstance(problem, str) and "\n" not in problem
        # the dataset path: validation, then decoding through the frame cache
        cache = FrameCache(tmp_path_factory.mktemp("cache"))
        ds = helpers.expect_clean(lambda: echonet.EchoNetDynamic(root, "ALL", length=4, period=8, warn=False,
                                                                 cache=cache), file="FileList.csv")
        if not isinstance(ds, DataError):
            for i in range(len(ds)):
                item = helpers.expect_clean(lambda: ds[i], file=ds.video_path(i).name)
                if not isinstance(item, DataError):
                    assert item["video"].shape[:2] == (3, 4) and bool(item["video"].isfinite().all())


def test_frame_size_cap_refuses_before_decoding(pristine, monkeypatch):
    avi = _one_avi(pristine("echonet"))
    monkeypatch.setattr(video, "MAX_FRAME_PIXELS", 31 * 31)  # the simulated frames are 32 x 32
    reads = []
    real = video.cv2.VideoCapture

    class Spy:
        def __init__(self, *args):
            self._cap = real(*args)

        def read(self):
            reads.append(1)
            return self._cap.read()

        def __getattr__(self, name):
            return getattr(self._cap, name)

    monkeypatch.setattr(video.cv2, "VideoCapture", Spy)
    with pytest.raises(DataError, match=rf"{avi.name}: header claims 32x32-pixel frames"):
        video.read_video(avi)
    assert reads == []


def test_decoded_bytes_cap_stops_decoding(pristine, monkeypatch):
    avi = _one_avi(pristine("echonet"))
    frame_bytes = 32 * 32 * 3
    monkeypatch.setattr(video, "MAX_VIDEO_BYTES", 10 * frame_bytes)
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match=rf"{avi.name}: decodes to more than .* \(stopped at frame 10\)"):
            video.read_video(avi)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 40 * frame_bytes  # it stopped: the whole video is 130+ frames


class FakeCapture:
    """A stand-in for ``cv2.VideoCapture``: every property reads ``prop_value``; ``read`` yields ``frames``."""

    def __init__(self, prop_value=8.0, frames=()):
        self.prop_value, self.frames = prop_value, iter(frames)

    def isOpened(self):
        return True

    def get(self, prop):
        return self.prop_value

    def read(self):
        frame = next(self.frames, None)
        return (False, None) if frame is None else (True, frame)

    def release(self):
        pass


def test_frames_of_different_sizes_refused(monkeypatch, tmp_path):
    """An MJPG frame can carry its own size; np.stack would raise a bare ValueError."""
    frames = [np.zeros((*size, 3), np.uint8) for size in [(8, 8), (8, 8), (9, 8)]]
    path = tmp_path / "mixed.avi"
    path.write_bytes(b"RIFF")
    monkeypatch.setattr(video.cv2, "VideoCapture", lambda *args: FakeCapture(8.0, frames))
    with pytest.raises(DataError, match=r"mixed\.avi: frame 2 is 8x9 pixels but frame 0 is 8x8"):
        video.read_video(path)


@pytest.mark.parametrize("nan_prop", [np.nan, -1.0, 1e300])
def test_absurd_header_numbers_are_zero_not_crash(nan_prop, monkeypatch, tmp_path):
    monkeypatch.setattr(video.cv2, "VideoCapture", lambda *args: FakeCapture(nan_prop))
    info = video.video_info(tmp_path / "x.avi")
    assert (info["frames"], info["height"], info["width"]) == (0, 0, 0)


def test_cli_data_check_garbage_avi(pristine, fresh_copy, helpers):
    with fresh_copy(pristine("echonet")) as root:
        avi = _one_avi(root)
        avi.write_bytes(avi.read_bytes()[:300])
        code, output = helpers.run_cli(["data", "check", str(root)])
        assert code == 1 and "Traceback" not in output
        errors = [ln for ln in output.splitlines() if ln.startswith("error:")]
        assert len(errors) == 1 and str(avi) in errors[0] and "FileList.csv row" in errors[0], output
