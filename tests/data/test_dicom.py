"""DICOM ultrasound conversion on DICOM files the tests write themselves with pydicom.

Every cine is echo-like (:func:`echossl.bench.dicom.synthetic_cine`): a grey speckled fan with
burned-in text, a colour bar and an ECG trace outside it, so colour handling (R = G = B inside
the fan), the crop and the fan mask can all be checked against known truth.
"""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

pydicom = pytest.importorskip("pydicom")

from echossl.bench.dicom import (  # noqa: E402
    PHI, PHI_SEARCHABLE, US_IMAGE, synthetic_cine, write_ct_dicom, write_us_dicom,
)
from echossl.data.dicom import (  # noqa: E402
    convert_dicom, output_name, read_dicom_video, read_spacing,
)
from echossl.errors import ConfigError, DataError  # noqa: E402

T, H, W, SIZE = 6, 60, 80, 64
SPACING = (0.06, 0.05)


@pytest.fixture(scope="module")
def cine():
    return synthetic_cine(T, H, W, seed=0)


@pytest.fixture(scope="module")
def reference(cine, tmp_path_factory):
    """The cine stored as native RGB: the output every other encoding must reproduce."""
    rgb, fan = cine
    path = write_us_dicom(tmp_path_factory.mktemp("ref") / "ref.dcm", rgb, photometric="RGB",
                          transfer="native", fan=fan)
    return read_dicom_video(path, size=SIZE)


def _read(path, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom notes on JFIF markers are not failures
        return read_dicom_video(path, **kw)


def _interior(video) -> np.ndarray:
    """Output pixels well inside the fan (away from the JPEG-blurred edges), ``(T, n, 3)`` int."""
    lit = (video.frames.max(axis=(0, 3)) > 0).astype(np.uint8)
    inner = cv2.erode(lit, np.ones((9, 9), np.uint8)).astype(bool)
    assert inner.sum() > 200
    return video.frames[:, inner].astype(int)


VARIANTS = [
    # (photometric interpretation, transfer syntax, largest mean |difference| from the reference)
    ("MONOCHROME2", "native", 0.5),
    ("MONOCHROME1", "native", 0.5),
    ("RGB", "native", 0.0),
    ("PALETTE COLOR", "native", 0.5),
    ("YBR_FULL", "native", 1.0),
    ("YBR_FULL_422", "native", 1.0),
    ("YBR_FULL_422", "jpeg", 3.0),
    ("RGB", "jpeg", 3.0),  # mislabelled: JFIF YCbCr data under RGB, as some vendors write
    ("MONOCHROME2", "jpeg", 3.0),
    ("RGB", "rle", 0.0),
    ("YBR_FULL", "rle", 1.0),
    ("MONOCHROME2", "jpeg-ls", 0.5),
    ("RGB", "jpeg-ls", 0.0),
    ("RGB", "j2k", 0.0),
    ("YBR_RCT", "j2k", 0.0),
    ("YBR_ICT", "j2k", 1.0),
]


@pytest.mark.parametrize("photometric,transfer,tolerance", VARIANTS,
                         ids=[f"{p.replace(' ', '_')}-{t}" for p, t, _ in VARIANTS])
def test_every_encoding_gives_the_reference_frames_once_converted(cine, reference, tmp_path,
                                                                   photometric, transfer, tolerance):
    if transfer == "jpeg-ls":
        pytest.importorskip("jpeg_ls")  # the test's encoder; decoding goes through pylibjpeg
    rgb, fan = cine
    path = write_us_dicom(tmp_path / "cine", rgb, photometric=photometric, transfer=transfer, fan=fan)
    video = _read(path, size=SIZE)
    assert video.frames.shape == (T, SIZE, SIZE, 3) and video.frames.dtype == np.uint8
    assert video.fps == pytest.approx(50.0, rel=1e-3)
    assert video.geometry == "regions" and video.crop == reference.crop
    inner = _interior_mask(reference)  # the same pixels in both: lossy data shifts the lit edge
    got, want = video.frames[:, inner].astype(int), reference.frames[:, inner].astype(int)
    if photometric == "PALETTE COLOR":  # the test palette maps i to (i, i, i // 2)
        want = np.stack([want[..., 0], want[..., 1], want[..., 2] // 2], axis=-1)
        assert np.abs(got[..., 2] - got[..., 0] / 2).mean() < 1.0
    else:
        # grey stays grey: no green or magenta cast from a missing or a repeated YCbCr step
        assert np.abs(got[..., 0] - got[..., 1]).mean() < 1.0
        assert np.abs(got[..., 2] - got[..., 1]).mean() < 1.0
    assert np.abs(got - want).mean() <= tolerance + 0.25


def _interior_mask(video) -> np.ndarray:
    lit = (video.frames.max(axis=(0, 3)) > 0).astype(np.uint8)
    return cv2.erode(lit, np.ones((9, 9), np.uint8)).astype(bool)


def test_grey_ybr_full_422_jpeg_has_no_colour_cast_and_the_check_would_see_one(cine, tmp_path):
    from pydicom.pixels import convert_color_space

    rgb, fan = cine
    grey = np.repeat(rgb.max(axis=-1, keepdims=True), 3, axis=-1)  # a grey echo, overlays included
    path = write_us_dicom(tmp_path / "ybr.dcm", grey, photometric="YBR_FULL_422", transfer="jpeg", fan=fan)
    ds = pydicom.dcmread(path)
    assert ds.PhotometricInterpretation == "YBR_FULL_422" and ds.file_meta.TransferSyntaxUID.is_compressed
    inner = _interior(_read(path, size=SIZE))
    assert np.abs(inner[..., 0] - inner[..., 1]).max() <= 1
    assert np.abs(inner[..., 1] - inner[..., 2]).max() <= 1
    # what a converter that converts YBR->RGB a second time produces: the same test catches it
    twice = convert_color_space(inner.astype(np.uint8), "YBR_FULL", "RGB").astype(int)
    assert np.abs(twice[..., 0] - twice[..., 1]).mean() > 10


@pytest.mark.parametrize("regions", [True, False], ids=["regions", "detected"])
def test_crop_and_fan_mask_remove_text_colour_bar_and_ecg(cine, tmp_path, regions):
    rgb, fan = cine
    path = write_us_dicom(tmp_path / "c.dcm", rgb, photometric="RGB", transfer="native", fan=fan,
                          regions=regions)
    video = _read(path, size=SIZE)
    assert video.geometry == ("regions" if regions else "detected")
    ys, xs = np.nonzero(fan)
    truth_box = (xs.min(), ys.min(), xs.max(), ys.max())
    assert np.abs(np.subtract(video.crop, truth_box)).max() <= (0 if regions else 2)
    x0, y0, x1, y1 = video.crop
    truth = cv2.resize(fan[y0:y1 + 1, x0:x1 + 1].astype(np.uint8), (SIZE, SIZE),
                       interpolation=cv2.INTER_NEAREST)
    near_fan = cv2.dilate(truth, np.ones((5, 5), np.uint8)).astype(bool)
    lit = video.frames.max(axis=(0, 3)) > 0
    assert not (lit & ~near_fan).any()  # text, bar and ECG sweep are black
    assert (lit & truth.astype(bool)).sum() > 0.97 * truth.sum()  # the fan itself is kept
    f = video.frames.astype(int)
    assert np.abs(f[..., 0] - f[..., 1]).max() == 0 and np.abs(f[..., 1] - f[..., 2]).max() == 0
    assert video.spacing_cm == (pytest.approx(SPACING[0] * (x1 - x0 + 1) / SIZE),
                                pytest.approx(SPACING[1] * (y1 - y0 + 1) / SIZE)) if regions \
        else video.spacing_cm is None


def test_keep_aspect_pads_instead_of_squashing(cine, tmp_path):
    rgb, fan = cine
    path = write_us_dicom(tmp_path / "a.dcm", rgb, photometric="RGB", transfer="native", fan=fan)
    video = _read(path, size=SIZE, keep_aspect=True)
    x0, y0, x1, y1 = video.crop
    w, h = x1 - x0 + 1, y1 - y0 + 1
    assert w > h  # the fan is wider than tall, so rows are padded above and below
    pad = int((w - h) / 2 * SIZE / w) - 1
    assert video.frames[:, :pad].max() == 0 and video.frames[:, SIZE - pad:].max() == 0
    assert video.spacing_cm == (pytest.approx(SPACING[0] * w / SIZE), pytest.approx(SPACING[1] * w / SIZE))


@pytest.mark.parametrize("tag,fps", [("FrameTime", 43.5), ("CineRate", 30), ("RecommendedDisplayFrameRate", 25)])
def test_frame_rate_tags_in_order(cine, tmp_path, tag, fps):
    rgb, fan = cine
    path = write_us_dicom(tmp_path / "r.dcm", rgb, transfer="native", photometric="RGB", fan=fan,
                          rate_tag=tag, fps=fps)
    if tag != "FrameTime":  # a lower-priority tag next to a higher one must lose
        ds = pydicom.dcmread(path)
        ds.RecommendedDisplayFrameRate = 99 if tag == "CineRate" else ds.RecommendedDisplayFrameRate
        ds.save_as(path)
    assert _read(path, size=SIZE).fps == pytest.approx(fps, rel=1e-3)


def _corrupt_jpeg(path: Path) -> Path:
    from pydicom.encaps import encapsulate

    ds = pydicom.dcmread(path)
    ds.PixelData = encapsulate([b"\xff\xd8\xff\xe0garbage-not-a-jpeg" * 4] * int(ds.NumberOfFrames))
    ds.save_as(path)
    return path


def _truncate_native(path: Path) -> Path:
    ds = pydicom.dcmread(path)
    ds.PixelData = ds.PixelData[: len(ds.PixelData) // 3]
    ds.save_as(path)
    return path


def _mpeg4(path: Path) -> Path:
    from pydicom.encaps import encapsulate
    from pydicom.uid import MPEG4HP41

    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = MPEG4HP41
    ds.PixelData = encapsulate([b"\x00\x00\x01\xb3" * 16])
    ds.save_as(path)
    return path


def _mmode_only(path: Path) -> Path:
    ds = pydicom.dcmread(path)
    for item in ds.SequenceOfUltrasoundRegions:
        item.RegionSpatialFormat = 2
    ds.save_as(path)
    return path


def _no_rate(path: Path) -> Path:
    ds = pydicom.dcmread(path)
    del ds.FrameTime
    ds.save_as(path)
    return path


BAD = {
    "not-dicom": (lambda d, c: (d / "notes.txt").write_text("not an image") and d / "notes.txt",
                  "is not a DICOM file"),
    "ct": (lambda d, c: write_ct_dicom(d / "ct.dcm"), "is CT Image Storage, not an ultrasound cine"),
    "single-frame": (lambda d, c: write_us_dicom(d / "one.dcm", c[0][:1], fan=c[1], sop_class=US_IMAGE),
                     "holds a single frame"),
    "corrupt-jpeg": (lambda d, c: _corrupt_jpeg(write_us_dicom(d / "bad.dcm", c[0], fan=c[1])),
                     "has pixel data that cannot be decoded"),
    "truncated-native": (lambda d, c: _truncate_native(write_us_dicom(d / "cut.dcm", c[0], fan=c[1],
                                                                      transfer="native", photometric="RGB")),
                         "has pixel data that cannot be decoded"),
    "mpeg4": (lambda d, c: _mpeg4(write_us_dicom(d / "mp4.dcm", c[0], fan=c[1])),
              "which echossl cannot decode"),
    "m-mode-only": (lambda d, c: _mmode_only(write_us_dicom(d / "mm.dcm", c[0], fan=c[1])),
                    "has no 2D image region"),
    "no-frame-rate": (lambda d, c: _no_rate(write_us_dicom(d / "nr.dcm", c[0], fan=c[1], rate_tag="FrameTime")),
                      "has no frame rate"),
}


@pytest.mark.parametrize("kind", list(BAD))
def test_bad_files_are_refused_in_one_sentence_naming_the_file(cine, tmp_path, kind):
    make, expected = BAD[kind]
    path = make(tmp_path, cine)
    with pytest.raises(DataError) as err:
        _read(path, size=SIZE)
    text = str(err.value)
    assert text.startswith(f"{path}: ") and expected in text
    assert "\n" not in text and text.endswith(".") and text.count(". ") == 0


def _all_output_bytes(root: Path):
    for path in sorted(root.rglob("*")):
        yield path, str(path.relative_to(root)).encode(), path.read_bytes() if path.is_file() else b""


def test_convert_folder_writes_echonet_layout_free_of_phi(cine, tmp_path):
    rgb, fan = cine
    src = tmp_path / "PACS" / PHI["PatientName"].replace("^", "_")  # the export names folders by patient
    (src / "series").mkdir(parents=True)
    good = [write_us_dicom(src / f"{PHI['PatientID']}_{i}", rgb, fan=fan) for i in range(2)]
    write_us_dicom(src / "series" / "native", rgb, photometric="YBR_FULL", transfer="native", fan=fan,
                   regions=False)
    write_ct_dicom(src / "series" / f"CT_{PHI['AccessionNumber']}")
    (src / "DICOMDIR").write_bytes(b"\0" * 128 + b"DICM")  # an index file: skipped, not refused
    out, mapping = tmp_path / "out", tmp_path / "private" / "map.csv"
    summary = convert_dicom([src], out, size=SIZE, split="VAL", mapping=mapping, progress=False)
    assert summary.exit_code == 1 and len(summary.converted) == 3
    assert [Path(p).name for p, _ in summary.refused] == [f"CT_{PHI['AccessionNumber']}"]
    uids = {str(pydicom.dcmread(p).SOPInstanceUID) for p in [*good, src / "series" / "native"]}
    names = sorted(output_name(u) for u in uids)
    assert sorted(p.stem for p in (out / "Videos").glob("*.avi")) == names
    with open(out / "FileList.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["FileName", "EF", "ESV", "EDV", "FrameHeight", "FrameWidth", "FPS",
                             "NumberOfFrames", "Split"]
    assert sorted(r["FileName"] for r in rows) == names
    assert all(r["EF"] == "" and r["Split"] == "VAL" and r["NumberOfFrames"] == str(T)
               and r["FrameHeight"] == r["FrameWidth"] == str(SIZE) and float(r["FPS"]) == 50 for r in rows)
    spacing = read_spacing(out)
    assert len(spacing) == 2  # the file without regions has no known spacing
    # PHI: no identifying value, nor a UID, nor the patient-named source folder, in any byte or name
    needles = [v.encode() for v in PHI_SEARCHABLE.values()] + [u.encode() for u in uids]
    needles += [PHI["PatientName"].split("^")[0].encode(), b"PACS"]
    for path, name, data in _all_output_bytes(out):
        for needle in needles:
            assert needle not in name and needle not in data, (path, needle)
    # the mapping, outside OUT, is the only link back
    with open(mapping, newline="") as fh:
        linked = {r["FileName"]: r["SOPInstanceUID"] for r in csv.DictReader(fh)}
    assert {output_name(u): u for u in uids} == linked


def test_convert_merges_into_an_existing_folder_and_refuses_duplicates(cine, tmp_path):
    rgb, fan = cine
    a = write_us_dicom(tmp_path / "a.dcm", rgb, fan=fan, transfer="native", photometric="RGB")
    b = write_us_dicom(tmp_path / "b.dcm", rgb, fan=fan, transfer="native", photometric="RGB")
    out = tmp_path / "out"
    assert convert_dicom([a], out, size=SIZE, progress=False).exit_code == 0
    copy = tmp_path / "copy_of_a"
    copy.write_bytes(a.read_bytes())
    summary = convert_dicom([b, a, copy], out, size=SIZE, split="train", progress=False)
    assert summary.exit_code == 1 and "same instance" in summary.refused[0][1]
    with open(out / "FileList.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2 and {r["Split"] for r in rows} == {"TRAIN"}


def test_parallel_workers_write_the_same_videos(cine, tmp_path):
    rgb, fan = cine
    src = tmp_path / "in"
    src.mkdir()
    for i in range(3):
        write_us_dicom(src / f"f{i}", rgb, fan=fan, transfer="native", photometric="RGB")
    write_ct_dicom(src / "ct")
    one = convert_dicom([src], tmp_path / "one", size=SIZE, workers=1, progress=False)
    two = convert_dicom([src], tmp_path / "two", size=SIZE, workers=2, progress=False)
    assert [r["name"] for r in one.converted] == [r["name"] for r in two.converted]
    assert [p for p, _ in one.refused] == [p for p, _ in two.refused] == [src / "ct"]
    assert (tmp_path / "one" / "FileList.csv").read_bytes() == (tmp_path / "two" / "FileList.csv").read_bytes()


def test_bad_options_and_mapping_inside_out_are_refused(cine, tmp_path):
    with pytest.raises(ConfigError, match="mapping file"):
        convert_dicom([tmp_path], tmp_path / "out", mapping=tmp_path / "out" / "map.csv", progress=False)
    with pytest.raises(ConfigError, match="--split"):
        convert_dicom([tmp_path], tmp_path / "out", split="HOLDOUT", progress=False)


@pytest.mark.slow
def test_full_size_600x800_jpeg_cine(tmp_path):
    rgb, fan = synthetic_cine(30, 600, 800, seed=3)
    path = write_us_dicom(tmp_path / "big.dcm", rgb, fan=fan, transfer="jpeg", regions=False)
    video = _read(path, size=112)
    assert video.frames.shape == (30, 112, 112, 3) and video.geometry == "detected"
    inner = _interior(video)
    assert np.abs(inner[..., 0] - inner[..., 1]).mean() < 1.0
