"""Hostile FileList.csv and VolumeTracings.csv: a clean load or one DataError naming file and row.

Each example corrupts a copy of a simulated EchoNet-Dynamic folder, then calls the
reader directly (``read_filelist``/``read_tracings``: the first problem raises) and
the whole-folder check (``validate``: every problem is listed, nothing raises but a
DataError for an unusable FileList.csv).
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from echossl.data import echonet
from echossl.data.check import check_dir
from echossl.errors import DataError

FUZZ = settings.get_profile("echossl-fuzz")
# numpy's "invalid value encountered in cast" means a hostile number became garbage silently
pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")
# columns whose cells read_filelist checks (the others are only coerced to numbers)
CHECKED = ("FileName", "EF", "Split")


def _validate_everything(root, helpers):
    """validate and data check: never anything but named problems or a DataError."""
    res = helpers.expect_clean(lambda: echonet.validate(root), file=str(root))
    if not isinstance(res, DataError):
        helpers.assert_problems_named(res[1], root)
    rep = check_dir(root)
    helpers.assert_problems_named(rep["problems"], root)
    assert rep["usable"] == (rep["errors"] == 0 and rep["counts"].get("usable", 0) > 0)


@pytest.mark.timeout(120)
@FUZZ
@given(data=st.data())
def test_filelist_cell(data, pristine, fresh_copy, cases, helpers):
    with fresh_copy(pristine("echonet")) as root:
        path = root / "FileList.csv"
        text, row, col = helpers.corrupt_cell(data, path.read_bytes())
        path.write_bytes(text)
        out = cases(helpers.expect_clean(lambda: echonet.read_filelist(root), file="FileList.csv",
                                         row=row))
        if col in CHECKED and not isinstance(out, DataError):
            # a clean load of a corrupted checked cell: the value must still be valid
            good = out.iloc[row - 1]
            assert 0 <= good["EF"] <= 100 and good["Split"] in echonet.SPLITS
            assert good["FileName"] and not echonet.escapes(good["FileName"])
        _validate_everything(root, helpers)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name,reader", [("FileList.csv", echonet.read_filelist),
                                         ("VolumeTracings.csv", echonet.read_tracings)])
@FUZZ
@given(data=st.data())
def test_csv_bytes(name, reader, data, pristine, fresh_copy, cases, helpers):
    with fresh_copy(pristine("echonet")) as root:
        path = root / name
        path.write_bytes(helpers.mutate(data, path.read_bytes()))
        cases(helpers.expect_clean(lambda: reader(root), file=name))
        _validate_everything(root, helpers)


@pytest.mark.timeout(120)
@FUZZ
@given(data=st.data())
def test_tracings_cell(data, pristine, fresh_copy, cases, helpers):
    with fresh_copy(pristine("echonet")) as root:
        path = root / "VolumeTracings.csv"
        text, row, col = helpers.corrupt_cell(data, path.read_bytes())
        path.write_bytes(text)
        # FileName is free text here (an untraced name is a warning of validate)
        cases(helpers.expect_clean(lambda: echonet.read_tracings(root), file="VolumeTracings.csv",
                                   row=None if col == "FileName" else row))
        _validate_everything(root, helpers)




@pytest.mark.parametrize("value", ["nan", "inf", "-1", "1e30", "abc", b"\xff\xfe"])
def test_bad_ef_names_row(value, pristine, fresh_copy):
    with fresh_copy(pristine("echonet")) as root:
        path = root / "FileList.csv"
        lines = path.read_bytes().split(b"\n")
        cells = lines[2].split(b",")
        cells[1] = value if isinstance(value, bytes) else value.encode()
        lines[2] = b",".join(cells)
        path.write_bytes(b"\n".join(lines))
        with pytest.raises(DataError, match=r"FileList\.csv, row 2: "):
            echonet.read_filelist(root)


def test_cli_data_check_bad_filelist(pristine, fresh_copy, helpers):
    """Through the real console script: exit 1, problems one per line, no traceback."""
    with fresh_copy(pristine("echonet")) as root:
        path = root / "FileList.csv"
        lines = path.read_text().splitlines()
        cells = lines[2].split(",")
        cells[1] = "inf"
        lines[2] = ",".join(cells)
        path.write_text("\n".join(lines) + "\n")
        res = subprocess.run([sys.executable, "-m", "echossl", "data", "check", str(root)],
                             capture_output=True, text=True, timeout=120)
        assert res.returncode == 1
        assert "Traceback" not in res.stdout + res.stderr
        errors = [ln for ln in res.stdout.splitlines() if ln.startswith("error:")]
        assert errors == [f"error: {path}, row 2: EF 'inf' is not a number in [0, 100]."]
        # an unreadable FileList.csv (in-process, which is quicker): one `error:` line
        path.write_bytes("FileName,EF\n".encode("utf-16"))
        code, output = helpers.run_cli(["data", "check", str(root)])
        assert code == 1 and "Traceback" not in output
        problem = [ln for ln in output.splitlines() if ln.startswith("error:")]
        assert problem == [f"error: {path}: is not UTF-8 text (byte ff cannot be decoded)."], output
