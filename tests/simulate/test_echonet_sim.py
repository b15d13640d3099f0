"""The EchoNet simulator, checked by an independent reader of EchoNet-Dynamic's format.

The reader below uses only pandas, OpenCV and scikit-image and the published
format description (FileList.csv, VolumeTracings.csv with FileName incl. .avi,
21 rows per traced frame, ES rows first, polygon mask rule, method of disks);
it imports nothing from the simulator, so a format slip in the simulator
cannot be hidden by sharing its code.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import skimage.draw

SIZE = 112
N_VIDEOS = 8  # the smallest count for which every split must be non-empty
SEED = 7


# ----------------------------------------------------------- independent reader


def read_filelist(root: Path) -> pd.DataFrame:
    return pd.read_csv(root / "FileList.csv")


def read_tracings(root: Path) -> pd.DataFrame:
    return pd.read_csv(root / "VolumeTracings.csv")


def decode(path: Path) -> tuple[np.ndarray, float]:
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened(), path
    fps = cap.get(cv2.CAP_PROP_FPS)
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame[:, :, ::-1])
    cap.release()
    return np.stack(frames), fps


def reference_mask(rows: pd.DataFrame, shape) -> np.ndarray:
    x1, y1, x2, y2 = (rows[c].to_numpy() for c in ("X1", "Y1", "X2", "Y2"))
    x = np.concatenate((x1[1:], np.flip(x2[1:])))
    y = np.concatenate((y1[1:], np.flip(y2[1:])))
    r, c = skimage.draw.polygon(np.rint(y).astype(int), np.rint(x).astype(int), shape)
    mask = np.zeros(shape, dtype=bool)
    mask[r, c] = True
    return mask


def disks_volume(rows: pd.DataFrame, spacing: float) -> float:
    x1, y1, x2, y2 = (rows[c].to_numpy(dtype=float) for c in ("X1", "Y1", "X2", "Y2"))
    length = np.hypot(x2[0] - x1[0], y2[0] - y1[0])
    d = np.hypot(x2[1:] - x1[1:], y2[1:] - y1[1:])
    return float(np.sum(np.pi / 4 * d**2 * length / len(d)) * spacing**3)


def traced_frames(tracings: pd.DataFrame, name: str) -> list[tuple[int, pd.DataFrame]]:
    """Traced frames of one video in file order, each with its rows."""
    rows = tracings[tracings.FileName == name + ".avi"]
    order = list(dict.fromkeys(rows.Frame.tolist()))
    return [(f, rows[rows.Frame == f]) for f in order]


# --------------------------------------------------------------------- fixture


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    from echossl.simulate.echonet import simulate_echonet

    root = tmp_path_factory.mktemp("echonet_sim")
    simulate_echonet(root, N_VIDEOS, seed=SEED, size=SIZE, irregular=0.5, workers=1, progress=False)
    return root


def truth(root: Path, name: str):
    return np.load(root / "echossl_truth" / f"{name}.npz")


def spacing(root: Path) -> float:
    return json.loads((root / "echossl_truth" / "meta.json").read_text())["pixel_spacing_cm"]


# ----------------------------------------------------------------------- tests


def test_filelist_columns_and_splits(dataset):
    fl = read_filelist(dataset)
    assert list(fl.columns) == ["FileName", "EF", "ESV", "EDV", "FrameHeight", "FrameWidth", "FPS",
                                "NumberOfFrames", "Split"]
    assert len(fl) == N_VIDEOS
    assert set(fl.Split) == {"TRAIN", "VAL", "TEST"}
    assert (fl.Split == "TRAIN").sum() >= N_VIDEOS // 2
    assert fl.FileName.str.fullmatch(r"0X[0-9A-F]{16}").all()
    assert fl.FileName.is_unique
    assert not fl.FileName.str.endswith(".avi").any()
    assert fl.EF.between(10, 85).all()
    assert ((fl.FPS >= 30) & (fl.FPS <= 60)).all()
    assert ((fl.NumberOfFrames >= 100) & (fl.NumberOfFrames <= 220)).all()


def test_videos_decode_with_filelist_geometry(dataset):
    for row in read_filelist(dataset).itertuples():
        frames, fps = decode(dataset / "Videos" / f"{row.FileName}.avi")
        assert frames.shape == (row.NumberOfFrames, row.FrameHeight, row.FrameWidth, 3)
        assert abs(fps - row.FPS) <= 0.5
        # grey-scale replicated on three channels (up to JPEG chroma noise)
        assert np.abs(frames[..., 0].astype(int) - frames[..., 2].astype(int)).mean() < 2
        assert frames[:, 0, 0].max() < 10, "outside the sector must be black"
        assert frames[:, SIZE // 2, SIZE // 2].std() > 0, "frames must change over time"


def test_tracings_layout_and_volumes(dataset):
    tracings = read_tracings(dataset)
    header = (dataset / "VolumeTracings.csv").read_text().splitlines()[0]
    assert header == "FileName,X1,Y1,X2,Y2,Frame"
    assert tracings.FileName.str.endswith(".avi").all()
    sp = spacing(dataset)
    assert sp == pytest.approx(0.14 * 112 / SIZE)
    for row in read_filelist(dataset).itertuples():
        frames = traced_frames(tracings, row.FileName)
        assert len(frames) == 2
        (es_frame, es_rows), (ed_frame, ed_rows) = frames  # ES rows first, ED rows last
        assert len(es_rows) == 21 and len(ed_rows) == 21
        assert 0 <= es_frame < row.NumberOfFrames and 0 <= ed_frame < row.NumberOfFrames
        shape = (row.FrameHeight, row.FrameWidth)
        assert reference_mask(ed_rows, shape).sum() > reference_mask(es_rows, shape).sum()
        edv, esv = disks_volume(ed_rows, sp), disks_volume(es_rows, sp)
        assert edv == pytest.approx(row.EDV, rel=0.005)
        assert esv == pytest.approx(row.ESV, rel=0.005)
        assert 100 * (edv - esv) / edv == pytest.approx(row.EF, abs=0.05)
        assert 100 * (row.EDV - row.ESV) / row.EDV == pytest.approx(row.EF, abs=0.005)
        assert 20 < row.EDV < 300


def test_truth_masks_equal_reference_rasterisation(dataset):
    tracings = read_tracings(dataset)
    for row in read_filelist(dataset).itertuples():
        t = truth(dataset, row.FileName)
        assert t["masks"].shape == (row.NumberOfFrames, row.FrameHeight, row.FrameWidth)
        assert t["masks"].dtype == bool
        assert t["volume"].shape == (row.NumberOfFrames,)
        (es_frame, es_rows), (ed_frame, ed_rows) = traced_frames(tracings, row.FileName)
        assert (int(t["traced_es"]), int(t["traced_ed"])) == (es_frame, ed_frame)
        shape = (row.FrameHeight, row.FrameWidth)
        np.testing.assert_array_equal(t["masks"][ed_frame], reference_mask(ed_rows, shape))
        np.testing.assert_array_equal(t["masks"][es_frame], reference_mask(es_rows, shape))
        # the cavity is darker than the wall around it, where the truth says so
        # (its whole surroundings are no reference: outside the fan is black)
        frames, _ = decode(dataset / "Videos" / f"{row.FileName}.avi")
        grey = frames[ed_frame, ..., 0].astype(float)
        mask = t["masks"][ed_frame]
        ring = cv2.dilate(mask.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool) & ~mask
        assert grey[mask].mean() < grey[ring].mean()


def test_traced_frames_are_beat_extremes(dataset):
    systoles, diastoles = [], []
    for row in read_filelist(dataset).itertuples():
        t = truth(dataset, row.FileName)
        vol, ed, es = t["volume"], t["ed_frames"], t["es_frames"]
        ted, tes = int(t["traced_ed"]), int(t["traced_es"])
        assert ted in ed and tes in es and ted < tes
        # ED = maximum between the neighbouring ES frames; ES = minimum between neighbouring EDs
        lo = max([f for f in es if f < ted], default=-1)
        hi = min([f for f in es if f > ted], default=len(vol))
        assert vol[ted] == vol[lo + 1 : hi].max()
        lo = max([f for f in ed if f < tes], default=-1)
        hi = min([f for f in ed if f > tes], default=len(vol))
        assert hi < len(vol), "the traced beat must be complete inside the video"
        assert vol[tes] == vol[lo + 1 : hi].min()
        assert vol[ted] == pytest.approx(row.EDV) and vol[tes] == pytest.approx(row.ESV)
        for e in ed:
            nxt = [s for s in es if s > e]
            if nxt:
                systoles.append(nxt[0] - e)
        for s in es:
            nxt = [e for e in ed if e > s]
            if nxt:
                diastoles.append(nxt[0] - s)
    assert np.mean(systoles) < np.mean(diastoles)


def test_deterministic_by_seed_and_independent_of_workers(dataset, tmp_path):
    from echossl.simulate.echonet import simulate_echonet

    # 3 videos with a 2-process pool must equal the first 3 of the serial run
    again = simulate_echonet(tmp_path / "a", 3, seed=SEED, size=SIZE, irregular=0.5, workers=2, progress=False)
    first = read_filelist(dataset).iloc[:3]
    cols = ["FileName", "EF", "ESV", "EDV", "FPS", "NumberOfFrames"]
    pd.testing.assert_frame_equal(read_filelist(tmp_path / "a")[cols], first[cols])
    assert list(again.FileName) == list(first.FileName)
    for name in first.FileName:
        a, b = truth(dataset, name), truth(tmp_path / "a", name)
        np.testing.assert_array_equal(a["masks"], b["masks"])
        np.testing.assert_array_equal(a["volume"], b["volume"])
        np.testing.assert_array_equal(decode(dataset / "Videos" / f"{name}.avi")[0],
                                      decode(tmp_path / "a" / "Videos" / f"{name}.avi")[0])
    other = simulate_echonet(tmp_path / "b", 2, seed=SEED + 1, size=SIZE, workers=1, progress=False)
    assert not set(other.FileName) & set(first.FileName)


def test_shifted_style_and_other_size(tmp_path):
    from echossl.simulate.echonet import simulate_echonet

    fl = simulate_echonet(tmp_path, 1, seed=1, size=64, style="shifted", workers=1, progress=False)
    frames, _ = decode(tmp_path / "Videos" / f"{fl.FileName[0]}.avi")
    assert frames.shape[1:] == (64, 64, 3)
    meta = json.loads((tmp_path / "echossl_truth" / "meta.json").read_text())
    assert meta["style"] == "shifted" and meta["pixel_spacing_cm"] == pytest.approx(0.14 * 112 / 64)
    tr = read_tracings(tmp_path)
    (_, es_rows), (_, ed_rows) = traced_frames(tr, fl.FileName[0])
    edv = disks_volume(ed_rows, meta["pixel_spacing_cm"])
    assert edv == pytest.approx(fl.EDV[0], rel=0.005)


def test_ef_distribution():
    from echossl.simulate.heart import sample_ef

    ef = sample_ef(np.random.default_rng(0), 20000)
    assert 53 < ef.mean() < 57
    assert 10.5 < ef.std() < 14
    assert 0.12 < (ef < 40).mean() < 0.18
    assert ef.min() >= 10 and ef.max() <= 85


@pytest.mark.parametrize(
    "kwargs",
    [dict(videos=0), dict(videos=2, style="weird"), dict(videos=2, irregular=1.5), dict(videos=2, size=8),
     dict(videos=2, seed=-1)],
)
def test_bad_options_raise_config_error(tmp_path, kwargs):
    from echossl.errors import ConfigError
    from echossl.simulate.echonet import simulate_echonet

    with pytest.raises(ConfigError):
        simulate_echonet(tmp_path, progress=False, **kwargs)


def test_cli_echonet(tmp_path):
    from typer.testing import CliRunner

    from echossl.cli.simulate import app
    from echossl.errors import ConfigError

    result = CliRunner().invoke(app, ["echonet", str(tmp_path / "o"), "--videos", "1", "--seed", "3", "--size", "48"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "o" / "FileList.csv").is_file()
    result = CliRunner().invoke(app, ["echonet", str(tmp_path / "p"), "--videos", "1", "--style", "nope"])
    assert isinstance(result.exception, ConfigError)
