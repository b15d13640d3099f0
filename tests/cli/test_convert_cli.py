"""``echossl convert dicom`` through the real CLI: the issue's acceptance folder."""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("pydicom")

from echossl.bench.dicom import PHI_SEARCHABLE, synthetic_cine, write_ct_dicom, write_us_dicom  # noqa: E402
from echossl.data.video import read_video  # noqa: E402


def run(*args) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", "echossl", *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=300)


def test_ybr_jpeg_cine_and_ct_folder_gives_one_clean_video_and_exit_1(tmp_path):
    rgb, fan = synthetic_cine(8, 60, 80, seed=1)
    grey = np.repeat(rgb.max(axis=-1, keepdims=True), 3, axis=-1)
    src = tmp_path / "export"
    src.mkdir()
    write_us_dicom(src / "IM000001", grey, photometric="YBR_FULL_422", transfer="jpeg", fan=fan)
    ct = write_ct_dicom(src / "IM000002")
    out = tmp_path / "out"
    proc = run("convert", "dicom", src, out, "--size", 64)
    assert proc.returncode == 1, proc.stderr
    assert f"refused: {ct}: is CT Image Storage, not an ultrasound cine." in proc.stderr
    assert "converted 1, refused 1" in proc.stdout
    videos = sorted((out / "Videos").glob("*.avi"))
    assert len(videos) == 1
    frames = read_video(videos[0]).astype(int)
    assert frames.shape == (8, 64, 64, 3)
    lit = frames.max(axis=-1) > 30
    # OpenCV's MJPG round trip itself lifts green by about 2 levels on any grey AVI; a YCbCr
    # conversion done twice would shift channels by tens of levels
    assert np.abs(frames[..., 1] - frames[..., 0])[lit].mean() < 4
    assert np.abs(frames[..., 2] - frames[..., 0])[lit].mean() < 1
    with open(out / "FileList.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["FileName"] for r in rows] == [videos[0].stem] and rows[0]["EF"] == ""
    for path in out.rglob("*"):
        data = path.read_bytes() if path.is_file() else b""
        for value in PHI_SEARCHABLE.values():
            assert value.encode() not in data and value not in str(path.relative_to(out))


def test_only_an_output_folder_is_a_usage_error(tmp_path):
    proc = run("convert", "dicom", tmp_path / "out")
    assert proc.returncode == 2 and "OUT" in proc.stderr
