"""Frames and masks stay on one pixel grid when frames are resized (issue 13, item 4).

The check everywhere: a binary image (a disk, or the LV tracing itself drawn as
the frame) resized as a frame and thresholded at half its range must be the mask
that the same code path resizes — Dice 1.0 — at 112 -> 64, where legacy
``nearest`` is about 0.4 px off (Dice about 0.96).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from echossl.data.cache import FrameCache
from echossl.data.echonet import EchoNetFrames, trace_mask, validate_full
from echossl.data.resize import resize_frames, resize_labels, resize_mask
from echossl.evaluation.metrics import dice


def _disk(size: int, cy: float, cx: float, r: float) -> torch.Tensor:
    yy, xx = np.mgrid[:size, :size]
    return torch.from_numpy((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r)


@pytest.mark.parametrize("cy, cx, r", [(56, 56, 30), (50.3, 60.7, 25.2), (40, 70, 12.5)])
def test_resized_disk_image_and_its_resized_mask_agree(cy, cx, r):
    disk = _disk(112, cy, cx, r)
    image = disk.float()[None, None] * 255.0  # the frame: 0 outside, 255 inside
    seen = resize_frames(image, 64)[0, 0] > 127.5
    mask = resize_mask(disk[None, None], 64)[0, 0] > 0.5
    assert mask.shape == (64, 64)
    assert float(dice(seen, mask)) == 1.0
    # the old resize is measurably off the frame, so this test can fail
    legacy = F.interpolate(disk.float()[None, None], size=(64, 64), mode="nearest")[0, 0] > 0.5
    assert float(dice(seen, legacy)) < 0.98


def test_resize_mask_is_centre_aligned_not_shifted():
    # a symmetric disk about the image centre stays symmetric (nearest shifts it up-left)
    disk = _disk(112, 55.5, 55.5, 20)[None, None]
    m = resize_mask(disk, 64)[0, 0]
    assert torch.equal(m, m.flip(0)) and torch.equal(m, m.flip(1))
    legacy = F.interpolate(disk.float(), size=(64, 64), mode="nearest")[0, 0]
    assert not torch.equal(legacy, legacy.flip(0))
    # upsampling too: the mask's centre of mass stays at the image centre
    up = resize_mask(disk, 160)[0, 0]
    ys, xs = torch.nonzero(up, as_tuple=True)
    assert abs(ys.float().mean().item() - 79.5) < 0.05 and abs(xs.float().mean().item() - 79.5) < 0.05


def test_resize_labels_matches_resize_mask_per_structure():
    labels = torch.zeros(2, 112, 112, dtype=torch.long)
    labels[:, _disk(112, 56, 56, 30)] = 2
    labels[:, _disk(112, 56, 56, 20)] = 1
    labels[1, :10, :10] = 3
    out = resize_labels(labels, 64, num_classes=4)
    assert out.shape == (2, 64, 64) and out.dtype == torch.long
    assert set(out.unique().tolist()) == {0, 1, 2, 3}
    # the inner structure (2 classes: it vs the rest) equals the binary mask rule
    inner = resize_mask((labels == 1)[:, None], 64)[:, 0].bool()
    assert torch.equal(out == 1, inner)
    assert torch.equal(resize_labels(labels, 112), labels)


class _TracedFrames:
    """A frame cache whose traced frames show the tracing itself (255 inside, 0 outside)."""

    def __init__(self, cache: FrameCache, traces: dict):
        self.cache, self.traces = cache, traces

    def get(self, path):
        frames = np.array(self.cache.get(path))
        name = path.stem
        for frame, coords in self.traces.get(name, {}).items():
            frames[frame] = trace_mask(coords, *frames.shape[1:3])[..., None] * 255
        return frames


def test_echonet_frames_mask_matches_its_frame(sim_echonet, tmp_path):
    ds = EchoNetFrames(sim_echonet, "TRAIN", size=64, cache=FrameCache(tmp_path / "c"))
    ds.cache = _TracedFrames(ds.cache, ds.traces)
    for i in range(4):
        item = ds[i]
        assert item["image"].shape == (3, 64, 64) and item["mask"].shape == (1, 64, 64)
        seen = item["image"][0] > 127.5  # mean 0, std 1: the frame on its 0..255 scale
        assert item["mask"].sum() > 100
        assert float(dice(seen, item["mask"][0] > 0.5)) == 1.0


def test_unilvseg_clip_masks_match_their_frames(sim_echonet, tmp_path):
    from echossl.pipelines.unilvseg import UniLVSegClips

    names = sorted(validate_full(sim_echonet)["usable"])[:2]
    ds = UniLVSegClips(sim_echonet, names, frames=4, period=1, norm={"mean": [0.0] * 3, "std": [1.0] * 3,
                                                                      "size": 64},
                       anchored=True, train=False, labels_per_clip="one", cache=FrameCache(tmp_path / "c"))
    ds.cache = _TracedFrames(ds.cache, ds.traces)
    for i in range(len(ds)):
        item = ds[i]
        pos = int(torch.nonzero(item["labeled"])[0])
        seen = item["video"][0, pos] > 127.5
        assert float(dice(seen, item["mask"][0, pos] > 0.5)) == 1.0


def test_camus_labels_match_their_frames(tmp_path, camus_writer):
    from echossl.data.camus import Camus

    labels = np.zeros((5, 90, 120), np.uint8)
    yy, xx = np.mgrid[:90, :120]
    labels[:, (yy - 45) ** 2 + (xx - 60) ** 2 <= 30 ** 2] = 2
    labels[:, (yy - 45) ** 2 + (xx - 60) ** 2 <= 18 ** 2] = 1
    frames = np.where(labels == 1, 255, 0).astype(np.uint8)  # the LV cavity drawn as the frame
    camus_writer(tmp_path / "camus", "patient0001", frames, labels=labels, ed=1, es=5)
    item = Camus(tmp_path / "camus", size=64, mirror=False)[0]
    seen = item["video"][0] > 127.5
    lv = torch.from_numpy(item["labels"] == 1)
    assert lv.sum() > 100 and set(np.unique(item["labels"]).tolist()) == {0, 1, 2}
    assert float(dice(seen, lv).min()) == 1.0
