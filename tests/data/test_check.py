"""`echossl data check`: every bad-input kind is named with file and row, exit 1."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from echossl.cli.data import app
from echossl.data.check import check_dir, detect_format
from echossl.data.video import write_video

runner = CliRunner()


def _replace(path, old, new):
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def _truncate(root):
    avi = root / "Videos" / "0X02.avi"
    avi.write_bytes(avi.read_bytes()[: avi.stat().st_size // 2])


def _garbage(root):
    (root / "Videos" / "0X02.avi").write_bytes(b"RIFF\x00\x00not really an avi" * 10)


def _zero_frames(root):
    write_video(root / "Videos" / "0X02.avi", np.zeros((0, 32, 32, 3), np.uint8), fps=50)


def _few_chords(root):
    # keep the long axis and 2 chords of 0X02's frame 9 (written first: data rows 17..24)
    path = root / "VolumeTracings.csv"
    lines = path.read_text().splitlines(keepends=True)
    keep = [ln for i, ln in enumerate(lines) if not (20 <= i <= 24)]
    path.write_text("".join(keep))


def _frame_past_end(root):
    path = root / "VolumeTracings.csv"
    lines = path.read_text().splitlines(keepends=True)
    lines[1:9] = [ln.replace(",9\n", ",99\n") for ln in lines[1:9]]  # 0X01's ES frame
    path.write_text("".join(lines))


CASES = {
    "truncated avi": (_truncate, "0X02.avi", None, "truncated"),
    "unreadable avi": (_garbage, "0X02.avi", None, "cannot be opened"),
    "zero-frame avi": (_zero_frames, "0X02.avi", None, "0 frames"),
    "missing column": (lambda r: _replace(r / "FileList.csv", ",ESV,", ",Esv,"), "FileList.csv", None, "ESV"),
    "EF NaN": (lambda r: _replace(r / "FileList.csv", "0X03,55.0", "0X03,nan"), "FileList.csv", 3, "EF"),
    "EF out of range": (lambda r: _replace(r / "FileList.csv", "0X03,55.0", "0X03,-5"), "FileList.csv", 3, "EF"),
    "few chords": (_few_chords, "VolumeTracings.csv", 17, "chord"),
    "frame past end": (_frame_past_end, "VolumeTracings.csv", 1, "past the video's end"),
    "duplicate FileName": (lambda r: _replace(r / "FileList.csv", "0X04,", "0X03,"), "FileList.csv", 4, "duplicate"),
    "unknown Split": (lambda r: _replace(r / "FileList.csv", ",TEST", ",HOLDOUT"), "FileList.csv", 4, "Split"),
    "FileName with ../": (lambda r: _replace(r / "FileList.csv", "0X03,", "../0X03,"), "FileList.csv", 3, ".."),
}


def test_good_folder_exit_0_and_json(echonet_dir, tmp_path):
    out = tmp_path / "report.json"
    res = runner.invoke(app, ["check", str(echonet_dir), "--json", str(out)])
    assert res.exit_code == 0, res.output
    assert "usable: yes" in res.output
    rep = json.loads(out.read_text())
    assert rep["format"] == "echonet" and rep["usable"] and rep["problems"] == []
    assert rep["counts"]["TRAIN"] == 2 and rep["counts"]["usable"] == 4
    assert rep["ef"]["min"] == 35.0 and rep["ef"]["max"] == 60.0
    assert rep["frames"]["max"] == 40


@pytest.mark.parametrize("kind", list(CASES))
def test_each_bad_input_flagged(echonet_dir, tmp_path, kind):
    breaker, file, row, words = CASES[kind]
    breaker(echonet_dir)
    out = tmp_path / "r.json"
    res = runner.invoke(app, ["check", str(echonet_dir), "--json", str(out)])
    assert res.exit_code == 1, res.output
    rep = json.loads(out.read_text())
    assert not rep["usable"]
    hits = [p for p in rep["problems"] if p["file"].endswith(file) and words in p["text"]]
    assert hits, rep["problems"]
    assert hits[0]["row"] == row
    assert hits[0]["text"] in res.output.replace("\n", "") or hits[0]["text"][:60] in res.output


def test_few_traced_frames_is_a_warning(echonet_dir):
    path = echonet_dir / "VolumeTracings.csv"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(ln for ln in lines if not (ln.startswith("0X04.avi") and ln.endswith(",2\n"))))
    rep = check_dir(echonet_dir)
    assert rep["usable"] and rep["warnings"] == 1 and rep["counts"]["usable"] == 3
    assert "0X04.avi has 1 traced frame" in rep["problems"][0]["text"]


def test_missing_dir_and_unknown_format(tmp_path):
    res = runner.invoke(app, ["check", str(tmp_path / "nope")])
    assert res.exit_code == 1
    with pytest.raises(Exception, match="neither"):
        detect_format(tmp_path)


def test_camus_folder(tmp_path, camus_writer):
    seq = np.zeros((4, 20, 16), np.uint8)
    camus_writer(tmp_path, "patient0001", seq, ef=50.0)
    camus_writer(tmp_path, "patient0002", seq, ef=60.0)
    assert detect_format(tmp_path) == "camus"
    res = runner.invoke(app, ["check", str(tmp_path)])
    assert res.exit_code == 0, res.output
    camus_writer(tmp_path, "patient0003", seq, ef=160.0)
    rep = check_dir(tmp_path)
    assert not rep["usable"] and "Info_4CH.cfg" in rep["problems"][0]["file"]
    assert rep["ef"]["mean"] == 55.0
