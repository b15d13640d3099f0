"""CAMUS NIfTI reader: orientation, mirroring, info files, splits."""

from __future__ import annotations

import numpy as np
import pytest

from echossl.data import camus
from echossl.errors import DataError


def _sequence(t=5, h=24, w=16):
    """(T, H, W) portrait frames: frame k has value 10*k+10 in the top 4 rows only."""
    seq = np.zeros((t, h, w), np.uint8)
    for k in range(t):
        seq[k, :4, :] = 10 * k + 10
    return seq


def test_read_info_keys(tmp_path):
    cfg = tmp_path / "Info_4CH.cfg"
    cfg.write_text("ED: 1\nES: 17\nNbFrame: 17\nImageQuality: Medium\nLVedv: 80.5\nEF: 47.0\n")
    info = camus.read_info(cfg)
    assert (info["ED"], info["ES"], info["EF"], info["ImageQuality"]) == (1, 17, 47.0, "Medium")
    cfg.write_text("ED: 1\nES: x\n")
    with pytest.raises(DataError, match="ES"):
        camus.read_info(cfg)


def test_orientation_and_mirroring(tmp_path, camus_writer):
    seq = _sequence()
    labels = (seq > 0).astype(np.uint8)
    camus_writer(tmp_path, "patient0001", seq, ed=1, es=5, ef=61.0, labels=labels)
    ds = camus.Camus(tmp_path, size=None)
    item = ds[0]
    v = item["video"]
    # 2T - 1 frames: ED -> ES -> ED without repeating ES
    assert v.shape == (3, 9, 24, 16)  # (C, T, H, W), portrait kept: not transposed
    top = v[0, :, 0, 0].numpy()
    np.testing.assert_array_equal(top, [10, 20, 30, 40, 50, 40, 30, 20, 10])
    assert float(v[0, 0, 10, 0]) == 0  # bright rows are at the top, as written
    assert torch_equal_channels(v)
    assert (item["ed"], item["es"]) == (0, 4)
    assert item["labels"].shape == (9, 24, 16) and item["labels"][4, 0, 0] == 1 and item["labels"][4, 10, 0] == 0
    assert item["EF"] == 61.0 and item["quality"] == "Good" and item["patient"] == "patient0001"


def torch_equal_channels(v):
    return bool((v[0] == v[1]).all() and (v[1] == v[2]).all())


def test_es_to_ed_reversed_first(tmp_path, camus_writer):
    camus_writer(tmp_path, "patient0002", _sequence(), ed=5, es=1)  # frame 1 is ES
    item = camus.Camus(tmp_path, size=None)[0]
    np.testing.assert_array_equal(item["video"][0, :, 0, 0].numpy(), [50, 40, 30, 20, 10, 20, 30, 40, 50])
    assert (item["ed"], item["es"]) == (0, 4) and item["labels"] is None
    raw = camus.Camus(tmp_path, size=None, mirror=False)[0]
    assert raw["video"].shape[1] == 5 and (raw["ed"], raw["es"]) == (4, 0)


def test_resize_and_length(tmp_path, camus_writer):
    camus_writer(tmp_path, "patient0003", _sequence(6), labels=np.ones((6, 24, 16), np.uint8) * 2)
    item = camus.Camus(tmp_path, size=12, length=8)[0]
    assert item["video"].shape == (3, 8, 12, 12) and item["video"].dtype.is_floating_point
    assert item["labels"].shape == (8, 12, 12) and set(np.unique(item["labels"])) == {2}
    assert item["ed"] == 0 and item["es"] in (3, 4)


def test_missing_and_corrupt_files(tmp_path, camus_writer):
    pdir = camus_writer(tmp_path, "patient0004", _sequence(), ef_key="EF", ef=40.0)
    (pdir / "patient0004_4CH_half_sequence.nii.gz").write_bytes(b"not a nifti")
    ds = camus.Camus(tmp_path)
    assert ds.ef[0] == 40.0
    with pytest.raises(DataError, match="patient0004_4CH_half_sequence"):
        ds[0]
    with pytest.raises(DataError, match="no patientNNNN"):
        camus.Camus(tmp_path, view="2CH")


def test_splits(tmp_path, camus_writer):
    for k in range(1, 13):
        camus_writer(tmp_path / "database_nifti", f"patient{k:04d}", _sequence(3))
    auto = camus.camus_splits(tmp_path)
    assert sorted(sum(auto.values(), [])) == [f"patient{k:04d}" for k in range(1, 13)]
    assert auto == camus.camus_splits(tmp_path)  # deterministic
    split_dir = tmp_path / "database_split"
    split_dir.mkdir()
    (split_dir / "subgroup_training.txt").write_text("patient0001\npatient0002\n")
    (split_dir / "subgroup_validation.txt").write_text("patient0003\n")
    (split_dir / "subgroup_testing.txt").write_text("patient0004\n")
    s = camus.camus_splits(tmp_path)
    assert s == {"TRAIN": ["patient0001", "patient0002"], "VAL": ["patient0003"], "TEST": ["patient0004"]}
    assert camus.Camus(tmp_path, split="train").patients == ["patient0001", "patient0002"]
