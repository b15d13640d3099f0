"""Synthetic DICOM ultrasound cines, and the converter's speed in files per second.

:func:`synthetic_cine` draws an echo-like cine: a speckled fan whose dark cavity beats, with
what real exports carry outside the fan (burned-in text, a colour bar, an ECG trace with a
moving sweep). :func:`write_us_dicom` stores it as a DICOM file in any photometric
interpretation and transfer syntax the converter handles, with a full set of identifying
values (:data:`PHI`) that no converted output may contain. Tests and :func:`bench_convert` both
use them.

Benchmark (single process, or ``workers`` processes)::

    python -m echossl.bench.dicom --files 8 --frames 40 --workers 1
"""

from __future__ import annotations

import argparse
import io
import json
import tempfile
import time
from pathlib import Path

import numpy as np

US_MULTIFRAME = "1.2.840.10008.5.1.4.1.1.3.1"
US_IMAGE = "1.2.840.10008.5.1.4.1.1.6.1"
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"

# Every Patient-module element and the usual other identifiers, with values distinctive
# enough that a byte search in the outputs cannot hit them by chance.
PHI = {
    "PatientName": "Quorvex^Zyndarella^Mbeki",
    "PatientID": "PID-774411903",
    "IssuerOfPatientID": "ISSUER-QXV-55",
    "PatientBirthDate": "19230417",
    "PatientBirthTime": "031415",
    "PatientSex": "O",
    "OtherPatientNames": "Vexquor^Zynda",
    "PatientComments": "COMMENT-ZEBRAFINCH-9",
    "EthnicGroup": "ETHNIC-QQ7",
    "PatientAge": "103Y",
    "PatientAddress": "17 Quillwort Lane Xanthe",
    "PatientTelephoneNumbers": "555-0199-8812",
    "PatientMotherBirthName": "Mothername^Quillane",
    "MilitaryRank": "RANK-OBLIVIA",
    "AccessionNumber": "ACC99887766",
    "InstitutionName": "Saint Quibble Xenocardiac Hospital",
    "InstitutionAddress": "1 Xylophone Rd Quibbletown",
    "InstitutionalDepartmentName": "DEPT-ZETACARDIO",
    "ReferringPhysicianName": "Refdoc^Quentavius",
    "PerformingPhysicianName": "Perfdoc^Yzolde",
    "OperatorsName": "Sonographer^Wexley",
    "StationName": "STATION-QX42",
    "DeviceSerialNumber": "SN-ZX-000912",
    "StudyID": "STUDY-QQ-31337",
    "StudyDate": "20190723",
    "StudyTime": "142233",
    "SeriesDate": "20190724",
    "ContentDate": "20190725",
    "StudyDescription": "ECHO FOR QUORVEX",
    "StudyInstanceUID": "1.2.826.0.1.3680043.8.498.11112222333344445555",
    "SeriesInstanceUID": "1.2.826.0.1.3680043.8.498.66667777888899990000",
}
# the PHI values compared as bytes; PatientSex "O" and age are too short to search for alone
PHI_SEARCHABLE = {k: v for k, v in PHI.items() if len(v) >= 6}


def synthetic_cine(frames: int = 6, height: int = 60, width: int = 80, seed: int = 0):
    """An echo-like RGB cine with overlays outside the fan.

    Returns:
        ``(rgb, fan)``: ``(T, H, W, 3)`` uint8 frames and the true ``(H, W)`` bool fan mask.
        Inside the fan the frames are grey (R = G = B); the colour bar is the only colour.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    apex_x, apex_y = width / 2.0, 2.0
    radius = np.hypot(xx - apex_x, yy - apex_y)
    angle = np.arctan2(xx - apex_x, yy - apex_y)
    r_max = 0.85 * height
    fan = (radius < r_max) & (np.abs(angle) < np.deg2rad(38))
    t = np.arange(frames, dtype=np.float32)[:, None, None]
    cavity_r = 0.16 * height * (1.0 + 0.25 * np.sin(2 * np.pi * t / max(frames, 2)))
    cavity = np.hypot(xx - apex_x, yy - 0.5 * height) < cavity_r
    speckle = rng.uniform(60, 200, size=(frames, height, width)).astype(np.float32)
    grey = np.where(cavity, 0.15 * speckle, speckle) * fan
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    # burned-in text: static white blocks in the top left corner (where vendors print the name)
    th, tw = max(2, height // 20), max(3, width // 6)
    for row in range(2):
        rgb[:, 1 + row * (th + 1):1 + row * (th + 1) + th, 1:1 + tw] = 255
    # colour bar at the right edge: static red-to-blue gradient
    bar = np.linspace(0, 1, height, dtype=np.float32)[:, None]
    bw = max(2, width // 40)
    rgb[:, :, width - bw:, 0] = 255 * bar
    rgb[:, :, width - bw:, 2] = 255 * (1 - bar)
    rgb[:, :, width - bw:, 1] = 40
    # ECG trace along the bottom: a green line with a sweep cursor that moves every frame
    ecg_y = (height - 3 - 2 * np.sin(np.linspace(0, 6 * np.pi, width))).round().astype(int)
    rgb[:, ecg_y, np.arange(width), 1] = 255
    cursor = (np.arange(frames) * width // max(frames, 1)) % width
    rgb[np.arange(frames), height - 6:height - 1, cursor] = 255
    return rgb.clip(0, 255).astype(np.uint8), fan


def _base_dataset(path: Path, sop_class: str, transfer: str, rows: int, cols: int, phi: dict):
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import UID, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class)
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = UID(transfer)
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "CT" if sop_class == CT_IMAGE else "US"
    for key, value in phi.items():
        setattr(ds, key, value)
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    return ds


def _region(fan: np.ndarray, spacing_cm: tuple[float, float]):
    from pydicom.dataset import Dataset

    ys, xs = np.nonzero(fan)
    item = Dataset()
    item.RegionSpatialFormat = 1
    item.RegionDataType = 1
    item.RegionFlags = 0
    item.RegionLocationMinX0, item.RegionLocationMinY0 = int(xs.min()), int(ys.min())
    item.RegionLocationMaxX1, item.RegionLocationMaxY1 = int(xs.max()), int(ys.max())
    item.PhysicalUnitsXDirection = item.PhysicalUnitsYDirection = 3  # cm
    item.PhysicalDeltaX, item.PhysicalDeltaY = float(spacing_cm[0]), float(spacing_cm[1])
    return item


def _jpeg_frames(rgb: np.ndarray, grey: bool, quality: int = 95) -> list[bytes]:
    from PIL import Image

    out = []
    for frame in rgb:
        buf = io.BytesIO()
        image = Image.fromarray(frame[..., 0]) if grey else Image.fromarray(frame, "RGB")
        # subsampling=1 is 4:2:2, what YBR_FULL_422 promises
        image.save(buf, format="JPEG", quality=quality, **({} if grey else {"subsampling": 1}))
        out.append(buf.getvalue())
    return out


def write_us_dicom(path: str | Path, rgb: np.ndarray, *, photometric: str = "YBR_FULL_422",
                   transfer: str = "jpeg", fan: np.ndarray | None = None, regions: bool = True,
                   spacing_cm: tuple[float, float] = (0.06, 0.05), fps: float = 50.0,
                   rate_tag: str = "FrameTime", sop_class: str = US_MULTIFRAME,
                   phi: dict | None = None, extra_region: bool = True) -> Path:
    """Store ``rgb`` ``(T, H, W, 3)`` uint8 as an ultrasound DICOM file.

    Args:
        photometric: MONOCHROME2, MONOCHROME1, RGB, PALETTE COLOR, YBR_FULL, YBR_FULL_422,
            YBR_RCT or YBR_ICT (the last two with ``transfer="j2k"``).
        transfer: "native", "jpeg" (baseline, Pillow-encoded and encapsulated), "rle",
            "jpeg-ls" (lossless) or "j2k" (JPEG 2000 lossless).
        fan: the fan mask whose bounding box becomes the 2D region (with ``regions``).
        rate_tag: FrameTime, CineRate, RecommendedDisplayFrameRate, or "" for none.
        extra_region: also add a small non-2D region (an ECG waveform strip), as real files do.
    """
    from pydicom import uid
    from pydicom.dataset import Dataset
    from pydicom.encaps import encapsulate
    from pydicom.pixels import convert_color_space

    path = Path(path)
    rgb = np.asarray(rgb, np.uint8)
    n, rows, cols, _ = rgb.shape
    syntax = {"native": uid.ExplicitVRLittleEndian, "jpeg": uid.JPEGBaseline8Bit,
              "rle": uid.RLELossless, "jpeg-ls": uid.JPEGLSLossless, "j2k": uid.JPEG2000Lossless}[transfer]
    ds = _base_dataset(path, sop_class, syntax, rows, cols, PHI if phi is None else phi)
    if n > 1 or sop_class != CT_IMAGE:
        ds.NumberOfFrames = n
        ds.FrameIncrementPointer = 0x00181063
    if rate_tag == "FrameTime":
        ds.FrameTime = f"{1000.0 / fps:.4f}"
    elif rate_tag:
        setattr(ds, rate_tag, int(round(fps)))
    if regions and fan is not None:
        items = [_region(fan, spacing_cm)]
        if extra_region:
            strip = Dataset()
            strip.RegionSpatialFormat = 4  # waveform (ECG)
            strip.RegionLocationMinX0, strip.RegionLocationMinY0 = 0, rows - 8
            strip.RegionLocationMaxX1, strip.RegionLocationMaxY1 = cols - 1, rows - 1
            items.append(strip)
        ds.SequenceOfUltrasoundRegions = items
    grey = photometric.startswith("MONOCHROME") or photometric == "PALETTE COLOR"
    if grey:
        arr = rgb.max(axis=-1) if photometric != "PALETTE COLOR" else rgb[..., 0]
        arr = 255 - arr if photometric == "MONOCHROME1" else arr
        ds.SamplesPerPixel = 1
    else:
        arr = rgb
        ds.SamplesPerPixel, ds.PlanarConfiguration = 3, 0
    ds.PhotometricInterpretation = photometric
    if photometric == "PALETTE COLOR":
        # a tinted palette: index i -> (i, i, i // 2), 16-bit entries
        lut = np.arange(256, dtype=np.uint16) * 257
        for colour, values in (("Red", lut), ("Green", lut), ("Blue", lut // 2)):
            setattr(ds, f"{colour}PaletteColorLookupTableDescriptor", [256, 0, 16])
            setattr(ds, f"{colour}PaletteColorLookupTableData", values.astype("<u2").tobytes())
    if transfer == "jpeg":
        if photometric not in ("YBR_FULL_422", "MONOCHROME2", "RGB"):
            raise ValueError(f"JPEG baseline test files are YBR_FULL_422, RGB or MONOCHROME2, not {photometric}")
        ds.PixelData = encapsulate(_jpeg_frames(rgb if not grey else arr[..., None].repeat(3, -1), grey))
        ds["PixelData"].VR = "OB"
        ds.LossyImageCompression = "01"
    elif transfer == "native":
        if photometric == "YBR_FULL":
            arr = convert_color_space(rgb, "RGB", "YBR_FULL")
        elif photometric == "YBR_FULL_422":
            ybr = convert_color_space(rgb, "RGB", "YBR_FULL").astype(np.float32)
            # native 4:2:2 stores Y0 Y1 Cb Cr per pair of pixels (PS3.5 8.2.1)
            y = ybr[..., 0].reshape(n, rows, cols // 2, 2)
            cb = ybr[..., 1].reshape(n, rows, cols // 2, 2).mean(-1, keepdims=True)
            cr = ybr[..., 2].reshape(n, rows, cols // 2, 2).mean(-1, keepdims=True)
            arr = np.concatenate([y, cb, cr], axis=-1).round().clip(0, 255).astype(np.uint8)
        ds.PixelData = np.ascontiguousarray(arr).tobytes()
    else:
        ts = syntax
        if transfer == "j2k" and photometric in ("YBR_RCT", "YBR_ICT"):
            ts = uid.JPEG2000Lossless if photometric == "YBR_RCT" else uid.JPEG2000
            ds.file_meta.TransferSyntaxUID = ts
            ds.PhotometricInterpretation = "RGB"
            kwargs = {"j2k_psnr": [80]} if ts == uid.JPEG2000 else {}
            ds.compress(ts, arr, use_mct=True, generate_instance_uid=False, **kwargs)
            ds.PhotometricInterpretation = photometric
        else:
            if photometric == "YBR_FULL":
                arr = convert_color_space(rgb, "RGB", "YBR_FULL")
            ds.compress(ts, arr, generate_instance_uid=False)
    ds.save_as(path, enforce_file_format=True)
    return path


def write_ct_dicom(path: str | Path, phi: dict | None = None) -> Path:
    """A one-slice CT image (16-bit MONOCHROME2), which the converter must refuse."""
    from pydicom import uid

    path = Path(path)
    ds = _base_dataset(path, CT_IMAGE, uid.ExplicitVRLittleEndian, 32, 32, PHI if phi is None else phi)
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.PixelData = np.arange(32 * 32, dtype="<u2").tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def bench_convert(files: int = 8, frames: int = 40, height: int = 600, width: int = 800,
                  workers: int = 1, transfer: str = "jpeg", size: int = 112) -> dict:
    """Files per second of :func:`echossl.data.dicom.convert_dicom` on ``height x width`` cines.

    The cines are YBR_FULL_422 JPEG baseline with SequenceOfUltrasoundRegions (the commonest
    export); writing them is not timed.

    Returns:
        ``{"files_per_second", "seconds", "files", "frames", "height", "width", "workers", ...}``.
    """
    from echossl.data.dicom import convert_dicom

    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in"
        src.mkdir()
        for i in range(files):
            rgb, fan = synthetic_cine(frames, height, width, seed=i)
            write_us_dicom(src / f"f{i:03d}.dcm", rgb, fan=fan, transfer=transfer)
        start = time.perf_counter()
        summary = convert_dicom([src], Path(tmp) / "out", size=size, workers=workers, progress=False)
        seconds = time.perf_counter() - start
    if summary.refused:
        raise RuntimeError(f"benchmark files were refused: {summary.refused[0][1]}")
    return {"files_per_second": files / seconds, "seconds": seconds, "files": files,
            "frames": frames, "height": height, "width": width, "workers": workers,
            "transfer": transfer, "size": size}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=bench_convert.__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--height", type=int, default=600)
    parser.add_argument("--width", type=int, default=800)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--transfer", default="jpeg", choices=["jpeg", "native", "rle", "jpeg-ls", "j2k"])
    args = parser.parse_args(argv)
    print(json.dumps(bench_convert(args.files, args.frames, args.height, args.width, args.workers,
                                   args.transfer), indent=2))


if __name__ == "__main__":
    main()
