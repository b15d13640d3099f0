"""Tiny hand-written EchoNet-Dynamic and CAMUS folders for the data tests.

Videos are 32x32 and a few dozen frames, so the whole data suite runs in seconds.
Every frame ``t`` of a video has all pixels near ``8 * t`` (mod 256) in the red
channel, so tests can tell which frame they got back after MJPG compression.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from echossl.data.video import write_video

H = W = 32


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own default cache folder: never ~/.cache, never shared."""
    monkeypatch.setenv("ECHOSSL_CACHE", str(tmp_path_factory.mktemp("cache")))
    # the validation memo is per-process; drop it so tests do not see each other's folders
    from echossl.data import echonet

    echonet._VALIDATED.clear()
    echonet._PROBES.clear()
    echonet._PROBES_LOADED.clear()


def frames_for(n: int, h: int = H, w: int = W) -> np.ndarray:
    """``(n, h, w, 3)`` uint8: red = 8*t, green = 128, blue = a left-right ramp."""
    t = np.arange(n, dtype=np.int64)
    out = np.zeros((n, h, w, 3), dtype=np.uint8)
    out[..., 0] = ((8 * t) % 256)[:, None, None]
    out[..., 1] = 128
    out[..., 2] = np.linspace(0, 255, w).astype(np.uint8)[None, None, :]
    return out


def ellipse_tracing(cx: float, cy: float, a: float, b: float, chords: int = 7) -> np.ndarray:
    """``(1 + chords, 4)`` X1,Y1,X2,Y2 rows: a vertical long axis, then horizontal chords."""
    rows = [[cx, cy - a, cx, cy + a]]
    for y in np.linspace(cy - a, cy + a, chords + 2)[1:-1]:
        half = b * np.sqrt(max(0.0, 1 - ((y - cy) / a) ** 2))
        rows.append([cx - half, y, cx + half, y])
    return np.asarray(rows)


DEFAULT_VIDEOS = [
    # name, frames, split, EF
    ("0X01", 40, "TRAIN", 60.0),
    ("0X02", 24, "TRAIN", 45.0),
    ("0X03", 30, "VAL", 55.0),
    ("0X04", 20, "TEST", 35.0),
]


def make_echonet(root: Path, videos=DEFAULT_VIDEOS, es_first: bool = True) -> Path:
    """Write FileList.csv, VolumeTracings.csv and Videos/*.avi under ``root``.

    Each video is traced at ED (frame 2, big ellipse) and ES (frame 9, small one);
    ``es_first`` writes the ES frame first as the reference expects, False reverses it.
    """
    root = Path(root)
    (root / "Videos").mkdir(parents=True, exist_ok=True)
    with open(root / "FileList.csv", "w", newline="") as fh:
        wr = csv.writer(fh)
        wr.writerow(["FileName", "EF", "ESV", "EDV", "FrameHeight", "FrameWidth", "FPS",
                     "NumberOfFrames", "Split"])
        for name, n, split, ef in videos:
            edv = 100.0
            wr.writerow([name, ef, edv * (1 - ef / 100), edv, H, W, 50, n, split])
    with open(root / "VolumeTracings.csv", "w", newline="") as fh:
        wr = csv.writer(fh)
        wr.writerow(["FileName", "X1", "Y1", "X2", "Y2", "Frame"])
        for name, n, split, ef in videos:
            ed = (2, ellipse_tracing(16, 16, 12, 8))
            es = (9, ellipse_tracing(16, 17, 8, 5))
            for frame, rows in ([es, ed] if es_first else [ed, es]):
                for r in rows:
                    wr.writerow([f"{name}.avi", *[f"{v:.3f}" for v in r], frame])
    for name, n, split, ef in videos:
        write_video(root / "Videos" / f"{name}.avi", frames_for(n), fps=50)
    return root


@pytest.fixture
def echonet_dir(tmp_path) -> Path:
    return make_echonet(tmp_path / "echonet")


def write_camus_patient(root: Path, patient: str, frames: np.ndarray, *, view: str = "4CH",
                        ed: int = 1, es: int | None = None, ef: float = 55.0,
                        ef_key: str = "LVef", quality: str = "Good", labels: np.ndarray | None = None):
    """Write one CAMUS patient the way the NIfTI release stores it.

    ``frames`` is ``(T, H, W)`` uint8 in display orientation (row 0 at the top).
    The release's NIfTI arrays, as nibabel returns them, are ``(W, H, T)`` (x, y, t;
    SimpleITK shows the same files as ``(T, H, W)``), so the array is transposed here.
    """
    import nibabel as nib

    t = frames.shape[0]
    es = t if es is None else es
    pdir = Path(root) / patient
    pdir.mkdir(parents=True, exist_ok=True)
    aff = np.eye(4)
    nib.save(nib.Nifti1Image(np.ascontiguousarray(frames.transpose(2, 1, 0)), aff),
             pdir / f"{patient}_{view}_half_sequence.nii.gz")
    if labels is not None:
        nib.save(nib.Nifti1Image(np.ascontiguousarray(labels.transpose(2, 1, 0)), aff),
                 pdir / f"{patient}_{view}_half_sequence_gt.nii.gz")
    (pdir / f"Info_{view}.cfg").write_text(
        f"ED: {ed}\nES: {es}\nNbFrame: {t}\nSex: F\nAge: 60\nImageQuality: {quality}\n"
        f"LVedv: 100.0\nLVesv: {100 - ef:.1f}\n{ef_key}: {ef}\n")
    return pdir


@pytest.fixture
def echonet_writer():
    """The :func:`make_echonet` writer (fixtures instead of ``from conftest import``,
    which would clash with other test folders' conftest modules)."""
    return make_echonet


@pytest.fixture
def camus_writer():
    return write_camus_patient


@pytest.fixture
def tracing():
    return ellipse_tracing
