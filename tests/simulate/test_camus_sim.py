"""The CAMUS simulator, read back with nibabel as public CAMUS loaders do."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

N_PATIENTS = 3
SUFFIXES = ["4CH_ED", "4CH_ED_gt", "4CH_ES", "4CH_ES_gt", "4CH_half_sequence", "4CH_half_sequence_gt"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    from echossl.simulate.camus import simulate_camus

    root = tmp_path_factory.mktemp("camus_sim")
    simulate_camus(root, N_PATIENTS, seed=5, progress=False)
    return root


def read_cfg(path: Path) -> dict:
    out = {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition(":")
        out[key.strip()] = value.strip()
    return out


def load(path: Path) -> np.ndarray:
    # CAMUS stores (W, H[, T]); transposing gives (H, W) or (T, H, W)
    return np.transpose(np.asarray(nib.load(str(path)).dataobj))


def test_file_set(dataset):
    patients = sorted(p.name for p in dataset.iterdir() if p.name.startswith("patient"))
    assert patients == [f"patient{i:04d}" for i in range(1, N_PATIENTS + 1)]
    for pid in patients:
        expected = {f"{pid}_{s}.nii.gz" for s in SUFFIXES} | {"Info_4CH.cfg"}
        assert {f.name for f in (dataset / pid).iterdir()} == expected


def test_cfg_and_arrays(dataset):
    for i in range(1, N_PATIENTS + 1):
        pid = f"patient{i:04d}"
        folder = dataset / pid
        cfg = read_cfg(folder / "Info_4CH.cfg")
        assert set(cfg) == {"ED", "ES", "NbFrame", "Sex", "Age", "ImageQuality", "LVedv", "LVesv", "LVef"}
        n, ed, es = int(cfg["NbFrame"]), int(cfg["ED"]), int(cfg["ES"])
        assert 10 <= n <= 25
        assert {ed, es} == {1, n}, "a half sequence runs between ED and ES"
        assert cfg["ImageQuality"] in {"Good", "Medium", "Poor"}
        assert cfg["Sex"] in {"M", "F"}
        edv, esv, ef = float(cfg["LVedv"]), float(cfg["LVesv"]), float(cfg["LVef"])
        assert 0 < esv < edv
        assert ef == pytest.approx(100 * (edv - esv) / edv, abs=0.01)

        seq_img = nib.load(str(folder / f"{pid}_4CH_half_sequence.nii.gz"))
        assert seq_img.get_data_dtype() == np.uint8
        zooms = seq_img.header.get_zooms()
        assert 0.3 < zooms[0] == zooms[1] < 1.0  # square pixels, mm
        seq = load(folder / f"{pid}_4CH_half_sequence.nii.gz")
        gt = load(folder / f"{pid}_4CH_half_sequence_gt.nii.gz")
        assert seq.shape == gt.shape and seq.shape[0] == n
        _, h, w = seq.shape
        assert 256 <= h <= 320 and 200 <= w <= 260, "stored as (W, H, T)"
        assert set(np.unique(gt)) == {0, 1, 2, 3}
        # apex at the top: the LV cavity starts in the upper third of the image
        assert np.nonzero((gt[ed - 1] == 1).any(axis=1))[0].min() < h / 3
        for phase, idx in (("ED", ed), ("ES", es)):
            img = load(folder / f"{pid}_4CH_{phase}.nii.gz")
            lab = load(folder / f"{pid}_4CH_{phase}_gt.nii.gz")
            assert img.shape == lab.shape == (h, w)
            np.testing.assert_array_equal(img, seq[idx - 1])
            np.testing.assert_array_equal(lab, gt[idx - 1])
        lv_ed, lv_es = (gt[ed - 1] == 1).sum(), (gt[es - 1] == 1).sum()
        assert lv_ed > lv_es
        grey = seq[ed - 1].astype(float)
        assert grey[gt[ed - 1] == 1].mean() < grey[gt[ed - 1] == 2].mean(), "dark cavity, bright wall"


def test_deterministic(dataset, tmp_path):
    from echossl.simulate.camus import simulate_camus

    simulate_camus(tmp_path, 1, seed=5, progress=False)
    a = load(dataset / "patient0001" / "patient0001_4CH_half_sequence.nii.gz")
    b = load(tmp_path / "patient0001" / "patient0001_4CH_half_sequence.nii.gz")
    np.testing.assert_array_equal(a, b)


def test_bad_options_and_cli(tmp_path):
    from typer.testing import CliRunner

    from echossl.cli.simulate import app
    from echossl.errors import ConfigError
    from echossl.simulate.camus import simulate_camus

    with pytest.raises(ConfigError):
        simulate_camus(tmp_path, 0, progress=False)
    result = CliRunner().invoke(app, ["camus", str(tmp_path / "c"), "--patients", "1", "--seed", "2"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "c" / "patient0001" / "Info_4CH.cfg").is_file()
