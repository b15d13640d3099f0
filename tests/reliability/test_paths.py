"""FileNames that escape the data folder are refused; readers never write into it."""

from __future__ import annotations

import hashlib
import json
import os
import shutil

import pytest

from echossl.cli import main
from echossl.data import camus, echonet, mrjet, sweep
from echossl.data.check import check_dir
from echossl.errors import DataError


def _cli(argv) -> int:
    """Exit code of ``echossl ARGV`` run in this process."""
    try:
        main(argv)
    except SystemExit as ex:
        return ex.code or 0
    return 0


def _set_cell(path, row: int, column: str, value: str) -> str:
    """Set one cell of a simple CSV (no quoted commas); returns the old value."""
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    cells = lines[row].split(",")
    old = cells[header.index(column)]
    cells[header.index(column)] = value
    lines[row] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    return old


def _link_outside(root, sub: str, name: str, ext: str, tmp_path):
    """Move ``root/sub/name+ext`` out of the data folder and leave a symlink to it behind."""
    inside = root / sub / f"{name}{ext}"
    outside = tmp_path / "elsewhere" / inside.name
    outside.parent.mkdir(exist_ok=True)
    shutil.move(inside, outside)
    inside.symlink_to(outside)
    return outside


# --------------------------------------------------------------------------- #
# EchoNet FileList.csv
# --------------------------------------------------------------------------- #

ESCAPES = {
    "dot-dot": lambda root, name, tmp: _set_cell(root / "FileList.csv", 2, "FileName", f"../{name}"),
    "absolute": lambda root, name, tmp: _set_cell(root / "FileList.csv", 2, "FileName", "/etc/passwd"),
    "symlink": lambda root, name, tmp: _link_outside(root, "Videos", name, ".avi", tmp),
}


@pytest.mark.parametrize("kind", list(ESCAPES))
def test_echonet_filename_escaping_root_refused(kind, pristine, fresh_copy, tmp_path):
    with fresh_copy(pristine("echonet")) as root:
        name = echonet.read_filelist(root)["FileName"].iloc[1]  # data row 2
        ESCAPES[kind](root, name, tmp_path)
        expected = rf"FileList\.csv, row 2: .*(not a plain file name|outside the data folder)"
        with pytest.raises(DataError, match=expected):
            echonet.read_filelist(root)
        usable, problems = echonet.validate(root)
        assert name not in usable and len(usable) == 2
        assert [p.row for p in problems if p.path.name == "FileList.csv"] == [2]
        with pytest.raises(DataError, match=expected):
            echonet.EchoNetDynamic(root, "ALL", strict=True)
        ds = echonet.EchoNetDynamic(root, "ALL", warn=False)
        assert name not in ds.filenames and len(ds) == 2
        assert _cli(["data", "check", str(root)]) == 1


def test_symlinks_inside_root_and_linked_root_are_fine(pristine, fresh_copy, tmp_path):
    with fresh_copy(pristine("echonet")) as root:
        name = echonet.read_filelist(root)["FileName"].iloc[0]
        video = root / "Videos" / f"{name}.avi"
        (root / "store").mkdir()
        shutil.move(video, root / "store" / video.name)
        video.symlink_to(root / "store" / video.name)  # a link that stays inside the data folder
        linked_root = tmp_path / "linked"
        linked_root.symlink_to(root)  # the data folder itself behind a link
        for r in (root, linked_root):
            usable, problems = echonet.validate(r)
            assert problems == [] and name in usable


def test_videos_folder_linked_outside_refused(pristine, fresh_copy, tmp_path):
    with fresh_copy(pristine("echonet")) as root:
        shutil.move(root / "Videos", tmp_path / "Videos")
        (root / "Videos").symlink_to(tmp_path / "Videos")
        usable, problems = echonet.validate(root)
        assert usable == [] and {p.row for p in problems} == {1, 2, 3}
        assert all("outside the data folder" in str(p) for p in problems)


# --------------------------------------------------------------------------- #
# MR-jet and sweeps
# --------------------------------------------------------------------------- #

@pytest.mark.parametrize("kind", ["dot-dot", "absolute", "symlink"])
def test_mrjet_filename_escaping_root_refused(kind, pristine, fresh_copy, tmp_path):
    with fresh_copy(pristine("mrjet")) as root:
        index = root / mrjet.INDEX_FILE
        name = mrjet.read_index(root)["FileName"].iloc[1]
        if kind == "symlink":
            _link_outside(root, "Masks", name, ".npz", tmp_path)
        else:
            _set_cell(index, 2, "FileName", f"../Videos/{name}" if kind == "dot-dot" else "/etc/passwd")
        usable, problems = mrjet.validate(root)
        assert name not in usable and len(usable) == 2
        assert [p["text"] for p in problems if p["row"] == 2 and str(index) in p["text"]], problems


@pytest.mark.parametrize("kind", ["dot-dot", "absolute", "symlink"])
def test_sweep_filename_escaping_root_refused(kind, pristine, fresh_copy, tmp_path):
    with fresh_copy(pristine("sweep")) as root:
        name = sweep.read_sweeps(root)["FileName"].iloc[1]
        if kind == "symlink":
            _link_outside(root, "Audio", name, ".wav", tmp_path)
        else:
            _set_cell(root / "sweeps.csv", 2, "FileName", f"../{name}" if kind == "dot-dot" else "/etc/passwd")
        with pytest.raises(DataError, match=r"sweeps\.csv, row 2: "):
            sweep.read_sweeps(root)
        with pytest.raises(DataError, match=r"sweeps\.csv, row 2: "):
            sweep.load_split(root, "TRAIN")
        assert not check_dir(root)["usable"]


# --------------------------------------------------------------------------- #
# readers never write into the data folder
# --------------------------------------------------------------------------- #

def _snapshot(root) -> dict:
    """Every entry under ``root``: kind, size, mtime_ns and (files) sha1 of the bytes."""
    out = {".": ("dir", os.stat(root).st_mtime_ns)}
    for path in sorted(root.rglob("*")):
        st = os.lstat(path)
        if path.is_symlink():
            out[str(path.relative_to(root))] = ("link", os.readlink(path))
        elif path.is_dir():
            out[str(path.relative_to(root))] = ("dir", st.st_mtime_ns)
        else:
            digest = hashlib.sha1(path.read_bytes()).hexdigest()
            out[str(path.relative_to(root))] = ("file", st.st_size, st.st_mtime_ns, digest)
    return out


def _read_echonet(root):
    echonet.validate(root)
    ds = echonet.EchoNetDynamic(root, "ALL", length=4, period=2, clips="all")
    mean, std = echonet.compute_mean_std(root, ds.filenames, samples=2, frames_per_video=4)
    ds = echonet.EchoNetDynamic(root, "ALL", length=4, period=2, mean=mean, std=std, pad=2, size=16)
    for i in range(len(ds)):
        ds[i]
    frames = echonet.EchoNetFrames(root, "ALL")
    for i in range(len(frames)):
        frames[i]
    for name in ds.filenames:
        echonet.load_truth(root, name)


def _read_camus(root):
    ds = camus.Camus(root, size=16, length=8)
    for i in range(len(ds)):
        ds[i]
    camus.camus_splits(root)


def _read_mrjet(root):
    names = sorted(n for v in mrjet.split_names(root).values() for n in v)
    clips = mrjet.MRJetClips(root, names, length=8, crop=0.9, size=16, mean=[0.5] * 3, std=[0.25] * 3)
    for i in range(len(clips)):
        clips[i]
    singles = mrjet.MRJetFrames(root, names, frames_per_video=1)
    for i in range(len(singles)):
        singles[i]


def _read_sweep(root):
    scans = sweep.load_split(root, "TRAIN")
    for i in range(len(ds := sweep.PlaneFrames(scans, step=7, size=16))):
        ds[i]
    maps = sweep.load_saliency_maps(root, scans, sweep.read_meta(root))
    for i in range(len(ds := sweep.SaliencyFrames(scans, maps, step=7, size=16, out_size=8, window=1))):
        ds[i]


READERS = {"echonet": _read_echonet, "camus": _read_camus, "mrjet": _read_mrjet, "sweep": _read_sweep}


@pytest.mark.timeout(300)
@pytest.mark.parametrize("fmt", list(READERS))
def test_readers_leave_data_folder_unchanged(fmt, pristine, fresh_copy, tmp_path, monkeypatch, capsys):
    cache = tmp_path / "cache"
    home = tmp_path / "home"
    monkeypatch.setenv("ECHOSSL_CACHE", str(cache))
    monkeypatch.setenv("HOME", str(home))  # the default cache (~/.cache) must not be used either
    with fresh_copy(pristine(fmt)) as root:
        before = _snapshot(root)
        READERS[fmt](root)
        rep = check_dir(root)
        assert rep["usable"], rep["problems"]
        assert _cli(["data", "check", str(root), "--json", str(tmp_path / "report.json")]) == 0
        assert json.loads((tmp_path / "report.json").read_text())["usable"]
        assert _snapshot(root) == before
    assert not home.exists()
    if fmt != "camus":  # videos were decoded into the cache, not next to the data
        assert list(cache.glob("*/*.npy")), "nothing was cached: the test did not exercise the cache"
