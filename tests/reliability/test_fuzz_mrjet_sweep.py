"""Hostile MR-jet and sweep folders: index CSVs, label CSVs, sweep.json, WAV, NPZ and AVI
files. Every outcome is a clean load or a DataError naming the file (and row)."""

from __future__ import annotations

import io
import tracemalloc
import zipfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from echossl.data import mrjet, sweep
from echossl.data.cache import FrameCache
from echossl.data.check import check_dir
from echossl.errors import DataError

FUZZ = settings.get_profile("echossl-fuzz")
pytestmark = [pytest.mark.filterwarnings("error::RuntimeWarning"),
              pytest.mark.filterwarnings("ignore:.*problem\\(s\\) in:UserWarning")]  # split_names lists skips


def _first(root, sub, ext):
    return sorted((root / sub).glob(f"*{ext}"))[0]


# --------------------------------------------------------------------------- #
# MR-jet
# --------------------------------------------------------------------------- #

def _mrjet_everything(root, helpers, tmp_path_factory):
    """validate, data check, and the training datasets on what validate lets through."""
    res = helpers.expect_clean(lambda: mrjet.validate(root), file=mrjet.INDEX_FILE)
    if isinstance(res, DataError):
        return res
    helpers.assert_problems_named(res[1], root)
    helpers.assert_problems_named(check_dir(root)["problems"], root)
    names = sorted(res[0])
    if names:
        cache = FrameCache(tmp_path_factory.mktemp("cache"))
        ds = mrjet.MRJetClips(root, names, length=8, crop=0.9, size=16, mean=[0.5] * 3, std=[0.25] * 3,
                              cache=cache)
        for i in range(len(names)):
            item = helpers.expect_clean(lambda: ds[i], file=names[i])
            if not isinstance(item, DataError):
                assert item["video"].shape == (8, 3, 16, 16) and bool(item["video"].isfinite().all())
    return res


@pytest.mark.timeout(120)
@FUZZ
@given(data=st.data())
def test_mrjet_index_cell(data, pristine, fresh_copy, cases, helpers, tmp_path_factory):
    with fresh_copy(pristine("mrjet")) as root:
        path = root / mrjet.INDEX_FILE
        text, row, col = helpers.corrupt_cell(data, path.read_bytes())
        path.write_bytes(text)
        res = cases(_mrjet_everything(root, helpers, tmp_path_factory))
        if not isinstance(res, DataError) and col in ("FileName", "Split", "MaxFrames", "NumberOfFrames"):
            # a row whose checked cell broke is either still usable or reported with its row
            usable, problems = res
            name = mrjet.read_index(root)["FileName"].iloc[row - 1]
            assert name in usable or any(f"row {row}" in p["text"] for p in problems), problems


@pytest.mark.timeout(180)
@FUZZ
@given(data=st.data())
def test_mrjet_files_bytes(data, pristine, fresh_copy, cases, helpers, tmp_path_factory):
    with fresh_copy(pristine("mrjet")) as root:
        target = data.draw(st.sampled_from([root / mrjet.INDEX_FILE, _first(root, "Masks", ".npz"),
                                            _first(root, "Videos", ".avi")]), label="file")
        target.write_bytes(helpers.mutate(data, target.read_bytes()))
        cases(_mrjet_everything(root, helpers, tmp_path_factory))


def test_mrjet_mask_header_claiming_huge_array(pristine, fresh_copy):
    """A mask file whose 'jet' header claims 10^12 frames is refused from the header alone."""
    with fresh_copy(pristine("mrjet")) as root:
        npz = _first(root, "Masks", ".npz")
        with np.load(npz) as z:
            arrays = {k: z[k] for k in z.files if k != "jet"}
        head = io.BytesIO()
        np.lib.format.write_array_header_1_0(head, {"descr": "|b1", "fortran_order": False,
                                                    "shape": (10**12, 48, 48)})
        with zipfile.ZipFile(npz, "w") as zf:
            zf.writestr("jet.npy", head.getvalue() + bytes(64))
            for k, v in arrays.items():
                buf = io.BytesIO()
                np.save(buf, v)
                zf.writestr(f"{k}.npy", buf.getvalue())
        tracemalloc.start()
        try:
            usable, problems = mrjet.validate(root)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 50 * 2**20
        assert npz.stem not in usable
        assert any(f"{npz.name}: 'jet' has shape (1000000000000, 48, 48)" in p["text"] and "row" in p["text"]
                   for p in problems), problems


def test_cli_data_check_mrjet(pristine, fresh_copy, helpers):
    with fresh_copy(pristine("mrjet")) as root:
        path = root / mrjet.INDEX_FILE
        lines = path.read_text().splitlines()
        header = lines[0].split(",")
        cells = lines[2].split(",")
        cells[header.index("MaxFrames")] = "inf"
        lines[2] = ",".join(cells)
        path.write_text("\n".join(lines) + "\n")
        code, output = helpers.run_cli(["data", "check", str(root)])
        assert code == 1 and "Traceback" not in output
        errors = [ln for ln in output.splitlines() if ln.startswith("error:")]
        assert errors == [f"error: {path}, row 2: MaxFrames 'inf' is not a list of frame numbers."], output


# --------------------------------------------------------------------------- #
# sweeps
# --------------------------------------------------------------------------- #

def _sweep_everything(root, helpers):
    """data check, then loading every TRAIN scan and the downstream datasets."""
    rep = check_dir(root)
    helpers.assert_problems_named(rep["problems"], root)
    scans = helpers.expect_clean(lambda: sweep.load_split(root, "TRAIN"), file=str(root))
    if isinstance(scans, DataError) or not scans:
        return scans
    meta = sweep.read_meta(root)
    planes = sweep.PlaneFrames(scans, step=7, size=16)
    for i in range(len(planes)):
        assert planes[i]["image"].shape == (1, 16, 16)
    maps = helpers.expect_clean(lambda: sweep.load_saliency_maps(root, scans, meta), file="Saliency")
    if not isinstance(maps, DataError):
        sal = sweep.SaliencyFrames(scans, maps, step=7, size=16, out_size=8, window=1)
        for i in range(len(sal)):
            assert bool(sal[i]["saliency"].isfinite().all())
    return scans


@pytest.mark.timeout(120)
@FUZZ
@given(data=st.data())
def test_sweeps_csv_cell(data, pristine, fresh_copy, cases, helpers):
    with fresh_copy(pristine("sweep")) as root:
        path = root / "sweeps.csv"
        text, row, col = helpers.corrupt_cell(data, path.read_bytes())
        path.write_bytes(text)
        checked = col in ("FileName", "Split", "NumberOfFrames", "FPS")
        cases(helpers.expect_clean(lambda: sweep.read_sweeps(root), file="sweeps.csv",
                                   row=row if checked else None))
        _sweep_everything(root, helpers)


@pytest.mark.timeout(120)
@FUZZ
@given(data=st.data())
def test_sweep_labels_cell(data, pristine, fresh_copy, cases, helpers):
    with fresh_copy(pristine("sweep")) as root:
        path = _first(root, "Labels", ".csv")
        text, row, col = helpers.corrupt_cell(data, path.read_bytes())
        path.write_bytes(text)
        planes = sweep.read_meta(root)["planes"]
        out = cases(helpers.expect_clean(lambda: sweep.read_labels(root, path.stem, planes), file=path.name,
                                         row=row))
        if not isinstance(out, DataError):
            codes, gaze = out
            assert codes.min() >= -1 and codes.max() < len(planes)
            assert not np.isinf(gaze).any()
        _sweep_everything(root, helpers)


@pytest.mark.timeout(240)
@FUZZ
@given(data=st.data())
def test_sweep_files_bytes(data, pristine, fresh_copy, cases, helpers):
    with fresh_copy(pristine("sweep")) as root:
        target = data.draw(st.sampled_from([root / "sweeps.csv", root / "sweep.json",
                                            _first(root, "Labels", ".csv"), _first(root, "Audio", ".wav"),
                                            _first(root, "Saliency", ".npz"), _first(root, "Videos", ".avi")]),
                           label="file")
        target.write_bytes(helpers.mutate(data, target.read_bytes()))
        cases(_sweep_everything(root, helpers))


@pytest.mark.parametrize("text", ["[1, 2]", '{"planes": [[1], [2]]}', '{"planes": ["a", "a"]}',
                                  '{"planes": ["a", "b"], "gaze_window_frames": "x"}',
                                  '{"planes": ["a", "b"], "gaze_sigma_px": NaN}', "[" * 100000])
def test_sweep_json_shapes(text, pristine, fresh_copy):
    with fresh_copy(pristine("sweep")) as root:
        (root / "sweep.json").write_text(text)
        with pytest.raises(DataError, match=r"sweep\.json: "):
            sweep.read_meta(root)


def test_cli_data_check_sweep(pristine, fresh_copy, helpers):
    with fresh_copy(pristine("sweep")) as root:
        (root / "sweep.json").write_bytes(b'{"planes": ["\xff\xfe"]}')
        code, output = helpers.run_cli(["data", "check", str(root)])
        assert code == 1 and "Traceback" not in output
        errors = [ln for ln in output.splitlines() if ln.startswith("error:")]
        assert errors == [f"error: {root / 'sweep.json'}: is not valid JSON (UnicodeDecodeError)."], output
