"""Hostile CAMUS files: Info_4CH.cfg, NIfTI sequences (compressed bytes and header
fields), split lists. A clean load or one DataError naming the file (and line)."""

from __future__ import annotations

import gzip
import tracemalloc

import nibabel as nib
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from echossl.data import camus
from echossl.data.check import check_dir
from echossl.errors import DataError

FUZZ = settings.get_profile("echossl-fuzz")
pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")

P = "patient0001"
CFG = f"{P}/Info_4CH.cfg"
SEQ = f"{P}/{P}_4CH_half_sequence.nii.gz"
GT = f"{P}/{P}_4CH_half_sequence_gt.nii.gz"


def _dataset_and_check(root, helpers):
    """The Camus dataset and `data check` on a corrupted folder: named DataErrors only."""
    ds = helpers.expect_clean(lambda: camus.Camus(root, size=16, length=6), file=str(root))
    if not isinstance(ds, DataError):
        for i in range(len(ds)):
            item = helpers.expect_clean(lambda: ds[i], file=ds.patients[i])
            if not isinstance(item, DataError):
                assert item["video"].shape == (3, 6, 16, 16) and bool(item["video"].isfinite().all())
    rep = check_dir(root)
    helpers.assert_problems_named(rep["problems"], root)


def _one_line(value: str) -> bool:
    return len(f"k{value}k".splitlines()) == 1


@pytest.mark.timeout(120)
@FUZZ
@given(data=st.data())
def test_info_cfg_values(data, pristine, fresh_copy, cases, helpers):
    with fresh_copy(pristine("camus")) as root:
        cfg = root / CFG
        lines = cfg.read_text().splitlines()
        i = data.draw(st.integers(0, len(lines) - 1), label="line")
        key = lines[i].split(":")[0]
        value = data.draw(st.one_of(st.sampled_from(
            ["", "nan", "inf", "-inf", "-1", "0", "1e30", "1e309", "2.5", "abc", "\x00", "9" * 400]),
            st.text(max_size=12)), label="value")
        deleted = data.draw(st.booleans(), label="delete line")
        if deleted:
            del lines[i]
        else:
            lines[i] = f"{key}: {value}"
        cfg.write_text("\n".join(lines) + "\n", errors="surrogatepass")
        row = i + 1 if key in ("ED", "ES", "LVef") and not deleted and _one_line(value) else None
        out = cases(helpers.expect_clean(lambda: camus.read_info(cfg), file="Info_4CH.cfg", row=row))
        if not isinstance(out, DataError):
            assert out["ED"] >= 1 and out["ES"] >= 1 and (out["EF"] is None or 0 <= out["EF"] <= 100)
        _dataset_and_check(root, helpers)


@pytest.mark.timeout(120)
@FUZZ
@given(data=st.data())
def test_info_cfg_bytes(data, pristine, fresh_copy, cases, helpers):
    with fresh_copy(pristine("camus")) as root:
        cfg = root / CFG
        cfg.write_bytes(helpers.mutate(data, cfg.read_bytes()))
        cases(helpers.expect_clean(lambda: camus.read_info(cfg), file="Info_4CH.cfg"))
        _dataset_and_check(root, helpers)


@pytest.mark.timeout(180)
@FUZZ
@given(data=st.data())
def test_nifti_compressed_bytes(data, pristine, fresh_copy, cases, helpers):
    with fresh_copy(pristine("camus")) as root:
        gt = root / GT
        gt.write_bytes(helpers.mutate(data, gt.read_bytes()))
        out = cases(helpers.expect_clean(lambda: camus.load_nifti_sequence(gt), file=gt.name))
        if not isinstance(out, DataError):
            assert out.ndim == 3 and min(out.shape) >= 1
        _dataset_and_check(root, helpers)


@pytest.mark.timeout(180)
@FUZZ
@given(data=st.data())
def test_nifti_header_and_voxels(data, pristine, fresh_copy, cases, helpers):
    """Corruption inside the decompressed file: header fields (dims, datatype, offset,
    scaling) and voxels, re-compressed so that the gzip layer is intact."""
    with fresh_copy(pristine("camus")) as root:
        target = root / data.draw(st.sampled_from([GT, SEQ]), label="file")
        raw = gzip.decompress(target.read_bytes())
        target.write_bytes(gzip.compress(helpers.mutate(data, raw), compresslevel=1))
        out = cases(helpers.expect_clean(lambda: camus.load_nifti_sequence(target), file=target.name))
        if not isinstance(out, DataError):
            assert out.ndim == 3 and min(out.shape) >= 1
            assert out.dtype.kind in "biuf" and (out.dtype.kind != "f" or np.isfinite(out).all())
        _dataset_and_check(root, helpers)


def _write_header_only(path, shape, dtype=np.uint8, payload=1000):
    """A .nii.gz whose header claims ``shape`` but which holds ``payload`` voxel bytes."""
    hdr = nib.Nifti1Header()
    hdr.set_data_dtype(dtype)
    hdr.set_data_shape(shape)
    hdr["vox_offset"] = 352
    path.write_bytes(gzip.compress(hdr.binaryblock + b"\0" * 4 + bytes(payload)))


@pytest.mark.parametrize("shape,words", [
    ((10000, 10000, 10000), r"header claims \(10000, 10000, 10000\) voxels \(931 GiB once loaded\), more "
                            r"than the 2 GiB echossl reads from one image"),
    ((30000, 20000, 2), r"is truncated: its header needs 1200000352 bytes but the file holds 1352"),
])
def test_absurd_header_refused_before_allocating(shape, words, pristine, fresh_copy):
    with fresh_copy(pristine("camus")) as root:
        seq = root / SEQ
        _write_header_only(seq, shape)
        tracemalloc.start()
        try:
            with pytest.raises(DataError, match=rf"{seq.name}: {words}\."):
                camus.load_nifti_sequence(seq)
            with pytest.raises(DataError, match=rf"{seq.name}: {words}\."):
                camus.Camus(root, size=16)[0]
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 50 * 2**20, f"{peak / 2**20:.0f} MiB allocated"
        rep = check_dir(root)
        assert not rep["usable"] and any(seq.name in p["text"] and p["row"] is None for p in rep["problems"])


def test_nan_voxels_refused(pristine, fresh_copy):
    with fresh_copy(pristine("camus")) as root:
        seq = root / SEQ
        arr = np.asanyarray(nib.load(seq).dataobj).astype(np.float32)
        arr[3, 4, 5] = np.nan
        nib.save(nib.Nifti1Image(arr, np.eye(4)), seq)
        with pytest.raises(DataError, match=rf"{seq.name}: has NaN or infinite voxels\."):
            camus.load_nifti_sequence(seq)


def test_split_lists_in_another_encoding(pristine, fresh_copy):
    with fresh_copy(pristine("camus")) as root:
        (root / "database_split").mkdir()
        for name, who in (("training", P), ("validation", "patient0002"), ("testing", "patient9")):
            (root / "database_split" / f"subgroup_{name}.txt").write_bytes(f"{who}\n\xff\xfe\n".encode("latin-1"))
        assert camus.camus_splits(root) == {"TRAIN": [P], "VAL": ["patient0002"], "TEST": []}


def test_cli_data_check_bad_cfg(pristine, fresh_copy, helpers):
    with fresh_copy(pristine("camus")) as root:
        cfg = root / CFG
        cfg.write_text(cfg.read_text().replace("ES:", "ES: abc\nold:", 1))
        code, output = helpers.run_cli(["data", "check", str(root)])
        assert code == 1 and "Traceback" not in output
        errors = [ln for ln in output.splitlines() if ln.startswith("error:")]
        assert errors == [f"error: {cfg}, row 2: ES must be a 1-based frame number, got 'abc'."], output
