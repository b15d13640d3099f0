"""EchoNet-Dynamic readers and datasets on tiny hand-written folders."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.draw
import torch

from echossl.data import echonet
from echossl.data.cache import FrameCache
from echossl.errors import DataError


def test_trace_mask_matches_hand_built_polygon():
    coords = np.array([[10.0, 2.0, 10.0, 20.0],   # long axis: left out of the polygon
                       [6.4, 5.0, 14.6, 5.0],
                       [4.0, 10.0, 16.0, 10.0],
                       [7.0, 15.2, 13.0, 15.2]])
    mask = echonet.trace_mask(coords, 24, 20)
    # X1[1:] then X2[1:] reversed, rounded: (6,5) (4,10) (7,15) (13,15) (16,10) (15,5)
    xs = np.array([6, 4, 7, 13, 16, 15])
    ys = np.array([5, 10, 15, 15, 10, 5])
    r, c = skimage.draw.polygon(ys, xs, (24, 20))
    expected = np.zeros((24, 20), bool)
    expected[r, c] = True
    assert mask.shape == (24, 20) and mask.dtype == bool
    np.testing.assert_array_equal(mask, expected)
    # the long axis end (10, 20) lies outside the chord polygon
    assert not mask[20, 10] and not mask[2, 10]


def test_ed_es_by_area_not_file_order(tmp_path, tracing, echonet_writer):
    ellipse_tracing, make_echonet = tracing, echonet_writer
    big, small = ellipse_tracing(16, 16, 12, 8), ellipse_tracing(16, 17, 8, 5)
    assert echonet.ed_es_frames({9: small, 2: big}) == (2, 9)
    assert echonet.ed_es_frames({2: big, 9: small}) == (2, 9)
    root = make_echonet(tmp_path / "rev", es_first=False)  # ED rows written first
    frames = echonet.EchoNetFrames(root, "TRAIN", cache=FrameCache(tmp_path / "c"))
    ed, es = frames[0], frames[1]
    assert (ed["phase"], ed["frame"], es["phase"], es["frame"]) == (0, 2, 1, 9)
    assert ed["mask"].sum() > es["mask"].sum()


def test_read_filelist_normalises(tmp_path, echonet_dir):
    text = (echonet_dir / "FileList.csv").read_text().replace("0X02,", "0X02.avi,").replace("VAL", "val")
    (echonet_dir / "FileList.csv").write_text(text)
    df = echonet.read_filelist(echonet_dir)
    assert list(df["FileName"]) == ["0X01", "0X02", "0X03", "0X04"]
    assert list(df["Split"]) == ["TRAIN", "TRAIN", "VAL", "TEST"]


@pytest.mark.parametrize("old,new,row,words", [
    ("0X03,55.0", "0X03,", 3, "EF"),
    ("0X03,55.0", "0X03,130", 3, "EF"),
    ("0X03,", "0X01,", 3, "duplicate"),
    (",VAL", ",TRAINING", 3, "Split"),
    ("0X03,", "../0X03,", 3, "plain file name"),
    ("0X03,", "/etc/0X03,", 3, "plain file name"),
])
def test_read_filelist_problems_name_row(echonet_dir, old, new, row, words):
    path = echonet_dir / "FileList.csv"
    path.write_text(path.read_text().replace(old, new, 1))
    with pytest.raises(DataError) as exc:
        echonet.read_filelist(echonet_dir)
    assert exc.value.row == row and words in str(exc.value)
    assert "FileList.csv" in str(exc.value)


def test_read_filelist_missing_column(echonet_dir):
    path = echonet_dir / "FileList.csv"
    path.write_text(path.read_text().replace(",EF,", ",Ef,", 1))
    with pytest.raises(DataError, match="EF"):
        echonet.read_filelist(echonet_dir)


def test_read_tracings_keeps_file_order(echonet_dir, tracing):
    ellipse_tracing = tracing
    tr = echonet.read_tracings(echonet_dir)
    assert set(tr) == {"0X01", "0X02", "0X03", "0X04"}
    np.testing.assert_allclose(tr["0X01"][2], np.round(ellipse_tracing(16, 16, 12, 8), 3))
    assert tr["0X01"][9].shape == (8, 4)


def test_labeled_split_deterministic():
    names = [f"v{i}" for i in range(20)]
    a = echonet.labeled_split(names, 0.25, seed=3)
    b = echonet.labeled_split(list(reversed(names)), 0.25, seed=3)
    assert a == b and len(a[0]) == 5 and a[0] == sorted(a[0])
    assert sorted(a[0] + a[1]) == sorted(names)
    assert echonet.labeled_split(names, 0.25, seed=4) != a
    assert len(echonet.labeled_split(names, 0.001, seed=0)[0]) == 1
    assert echonet.labeled_split(names, 0.0, seed=0)[0] == []


def test_clip_values_and_shape(echonet_dir, tmp_path):
    ds = echonet.EchoNetDynamic(echonet_dir, "TRAIN", length=8, period=2, cache=FrameCache(tmp_path / "c"))
    assert ds.filenames == ["0X01", "0X02"]
    np.testing.assert_allclose(ds.ef, [60.0, 45.0])
    item = ds[0]
    v = item["video"]
    assert v.shape == (3, 8, 32, 32) and v.dtype == torch.float32
    red = v[0, :, 16, 16].numpy()
    # consecutive samples are 2 frames apart: red steps by 16 (MJPG tolerance); the
    # fixture's red channel is 8 * frame modulo 256, so a random start may wrap once
    step = (np.diff(red) + 128) % 256 - 128
    assert np.all(np.abs(step - 16) <= 4)
    assert item["EF"].dtype == torch.float32 and item["EF"].shape == ()
    assert item["filename"] == "0X01" and item["index"] == 0


def test_short_video_zero_padded_at_end(echonet_dir, tmp_path):
    # 0X04 has 20 frames; 16 frames at period 2 need 32
    ds = echonet.EchoNetDynamic(echonet_dir, "TEST", length=16, period=2, clips=1,
                                mean=10.0, std=2.0, cache=FrameCache(tmp_path / "c"))
    v = ds[0]["video"]
    assert v.shape == (3, 16, 32, 32)
    assert torch.all(v[:, 10:] == 0)  # frames 20.. are padding (0 after normalising)
    assert torch.all(v[1, :10] != 0)  # green is 128 -> (128-10)/2 in real frames
    assert abs(float(v[1, 0, 5, 5]) - 59.0) < 2


def test_clips_all_and_k(echonet_dir, tmp_path):
    cache = FrameCache(tmp_path / "c")
    ds = echonet.EchoNetDynamic(echonet_dir, "TRAIN", length=8, period=2, clips="all", cache=cache)
    v = ds[0]["video"]  # 40 frames: starts 0..40-14-1 -> 26
    assert v.shape == (26, 3, 8, 32, 32)
    # clip s starts at frame s: red of first frame ~ 8*s
    assert abs(float(v[5, 0, 0, 16, 16]) - 40) <= 4
    ds3 = echonet.EchoNetDynamic(echonet_dir, "TRAIN", length=8, period=2, clips=3, size=16, cache=cache)
    v3 = ds3[0]["video"]
    assert v3.shape == (3, 3, 8, 16, 16)
    assert abs(float(v3[2, 0, 0, 8, 8]) - 8 * 25) <= 5  # last start = 25
    whole = echonet.EchoNetDynamic(echonet_dir, "TRAIN", length=None, period=1, cache=cache)[1]["video"]
    assert whole.shape == (3, 24, 32, 32)


def test_pad_crop_keeps_shape_and_shifts(echonet_dir, tmp_path):
    torch.manual_seed(0)
    ds = echonet.EchoNetDynamic(echonet_dir, "TRAIN", length=4, period=1, pad=4,
                                cache=FrameCache(tmp_path / "c"))
    shapes, zeros = set(), 0
    for _ in range(6):
        v = ds[0]["video"]
        shapes.add(tuple(v.shape))
        zeros += int((v[1] == 0).all(dim=0).any())  # some border row/col of padding
    assert shapes == {(3, 4, 32, 32)} and zeros >= 4


def test_mask_channel(echonet_dir, tmp_path):
    masks = tmp_path / "masks"
    masks.mkdir()
    for name, n in (("0X01", 40), ("0X02", 24)):
        m = np.zeros((n, 32, 32), np.uint8)
        m[:, 8:24, 8:24] = 255
        m[1] = 0
        np.save(masks / f"{name}.npy", m)
    ds = echonet.EchoNetDynamic(echonet_dir, "TRAIN", length=4, period=1, clips="all",
                                masks_dir=masks, size=16, cache=FrameCache(tmp_path / "c"))
    v = ds[0]["video"]
    assert v.shape == (37, 4, 4, 16, 16)
    assert float(v[0, 3, 0, 8, 8]) == pytest.approx(1.0)   # p=1 -> +1
    assert float(v[0, 3, 0, 0, 0]) == pytest.approx(-1.0)  # p=0 -> -1
    assert float(v[0, 3, 1, 8, 8]) == pytest.approx(-1.0)  # frame 1 of clip 0 is video frame 1
    assert float(v[1, 3, 0, 8, 8]) == pytest.approx(-1.0)  # clip 1 starts at video frame 1


def test_bad_video_skipped_with_one_warning(echonet_dir, tmp_path):
    avi = echonet_dir / "Videos" / "0X02.avi"
    avi.write_bytes(avi.read_bytes()[:200])
    with pytest.warns(UserWarning, match="0X02") as rec:
        ds = echonet.EchoNetDynamic(echonet_dir, "TRAIN", length=4, cache=FrameCache(tmp_path / "c"))
    assert len([w for w in rec if "problem" in str(w.message)]) == 1
    assert ds.filenames == ["0X01"]
    with pytest.raises(DataError, match="0X02"):
        echonet.EchoNetDynamic(echonet_dir, "TRAIN", strict=True)


def test_empty_split_is_a_clear_error(echonet_dir):
    with pytest.raises(DataError, match="no usable videos in split VAL"):
        echonet.EchoNetDynamic(echonet_dir, "VAL", filenames=["0X01"])


def test_frames_dataset(echonet_dir, tmp_path):
    fr = echonet.EchoNetFrames(echonet_dir, "ALL", size=16, mean=[1, 2, 3], std=2,
                               cache=FrameCache(tmp_path / "c"))
    assert len(fr) == 8
    it = fr[0]
    assert it["image"].shape == (3, 16, 16) and it["mask"].shape == (1, 16, 16)
    assert set(torch.unique(it["mask"]).tolist()) == {0.0, 1.0}
    full = echonet.trace_mask(fr.traces["0X01"][2], 32, 32)
    assert abs(float(it["mask"].sum()) * 4 - full.sum()) < 0.15 * full.sum()
    assert abs(float(it["image"][1, 0, 0]) - (128 - 2) / 2) < 2


def test_compute_mean_std(echonet_dir, tmp_path):
    mean, std = echonet.compute_mean_std(echonet_dir, ["0X01", "0X02"], cache=FrameCache(tmp_path / "c"))
    assert mean.shape == (3,) and std.shape == (3,)
    assert abs(mean[1] - 128) < 2 and std[1] < 3 and std[0] > 30


def test_load_truth(echonet_dir):
    assert echonet.load_truth(echonet_dir, "0X01") is None
    (echonet_dir / "echossl_truth").mkdir()
    np.savez(echonet_dir / "echossl_truth" / "0X01.npz", masks=np.zeros((40, 32, 32), bool),
             ed_frames=np.array([2]))
    (echonet_dir / "echossl_truth" / "meta.json").write_text('{"pixel_spacing_cm": 0.1}')
    t = echonet.load_truth(echonet_dir, "0X01.avi")
    assert t["masks"].shape == (40, 32, 32) and t["meta"]["pixel_spacing_cm"] == 0.1
    # the side folder does not disturb the readers
    assert echonet.validate(echonet_dir)[1] == []
