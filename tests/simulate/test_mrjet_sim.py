"""The MR-jet simulator writes what its docstring documents, and data check reads it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

N = 10


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from echossl.simulate.mrjet import simulate_mrjet

    root = tmp_path_factory.mktemp("mrjet_sim")
    simulate_mrjet(root, N, seed=1, size=64, progress=False)
    return root


def test_index_and_files(dataset):
    from echossl.simulate.mrjet import COLUMNS, SEVERITIES

    table = pd.read_csv(dataset / "MRJetList.csv", dtype={"MaxFrames": str}, keep_default_na=False)
    assert list(table.columns) == COLUMNS
    assert len(table) == N and set(table["Split"]) == {"TRAIN", "VAL", "TEST"}
    assert set(table["Severity"]) <= set(SEVERITIES)
    for row in table.itertuples():
        assert (dataset / "Videos" / f"{row.FileName}.avi").is_file()
        z = np.load(dataset / "Masks" / f"{row.FileName}.npz")
        f = row.NumberOfFrames
        assert z["jet"].shape == z["la"].shape == (f, 64, 64) and z["jet"].dtype == bool
        assert z["e"].shape == (f,)
        frames = [int(v) for v in row.MaxFrames.split()]
        assert np.flatnonzero(z["e"]).tolist() == frames == z["max_frames"].tolist()
        assert row.HasJet == int(bool(frames))
        # the jet lies inside the LA, and each max frame is its beat's largest jet
        assert not (z["jet"] & ~z["la"]).any()
        np.testing.assert_array_equal(z["jet_area"], z["jet"].sum(axis=(1, 2)))
        for k in frames:
            lo, hi = max(0, k - 3), min(f, k + 4)
            assert z["jet_area"][k] == z["jet_area"][lo:hi].max() > 0
        ratio = max((z["jet_area"][k] / z["la_area"][k] for k in frames), default=0.0)
        assert row.MaxJetRatio == pytest.approx(ratio, abs=1e-4)
        assert SEVERITIES[int(z["severity"])] == row.Severity


def test_videos_are_colour_with_mosaic_in_the_jet(dataset):
    from echossl.data.video import read_video

    table = pd.read_csv(dataset / "MRJetList.csv", dtype={"MaxFrames": str}, keep_default_na=False)
    row = table[table["HasJet"] == 1].iloc[0]
    video = read_video(dataset / "Videos" / f"{row.FileName}.avi").astype(np.int16)
    z = np.load(dataset / "Masks" / f"{row.FileName}.npz")
    k = int(row.MaxFrames.split()[0])
    assert video.shape[0] == row.NumberOfFrames
    chroma = np.abs(video[k] - video[k].mean(-1, keepdims=True)).sum(-1)
    assert chroma[z["jet"][k]].mean() > 3 * chroma[~z["jet"][k]].mean()


def test_deterministic_and_severity_grades():
    from echossl.simulate.mrjet import severity_grade, simulate_video

    a, b = simulate_video(4, 2, 64), simulate_video(4, 2, 64)
    np.testing.assert_array_equal(a["frames"], b["frames"])
    np.testing.assert_array_equal(a["jet"], b["jet"])
    assert severity_grade([0.0, 0.1, 0.2, 0.39, 0.4, 0.9]).tolist() == [0, 1, 2, 2, 3, 3]


def test_data_check_reads_it_and_names_bad_rows(dataset, tmp_path):
    import shutil

    from echossl.data.check import check_dir

    rep = check_dir(dataset)
    assert rep["format"] == "mrjet" and rep["usable"] and rep["counts"]["usable"] == N
    bad = tmp_path / "bad"
    shutil.copytree(dataset, bad)
    table = pd.read_csv(bad / "MRJetList.csv", dtype=str, keep_default_na=False)
    table.loc[1, "Split"] = "HOLDOUT"
    table.loc[2, "MaxFrames"] = "999"
    table.to_csv(bad / "MRJetList.csv", index=False)
    rep = check_dir(bad)
    rows = sorted(p["row"] for p in rep["problems"])
    assert rows == [2, 3] and rep["counts"]["usable"] == N - 2
