"""DICOM ultrasound cines to EchoNet-Dynamic videos: decode, crop, mask, resize, de-identify.

One cine goes through :func:`read_dicom_video`:

1. **Checks.** The file must be DICOM (``DICM`` preamble), an ultrasound image SOP class
   (Ultrasound Multi-frame Image Storage, or Ultrasound Image Storage with NumberOfFrames > 1),
   hold at least two frames, and use a transfer syntax a pydicom decoder plug-in installed here
   can decode (native, RLE, JPEG baseline/extended/lossless, JPEG-LS, JPEG 2000 through
   pylibjpeg). Anything else raises :class:`~echossl.errors.DataError`, one sentence naming the
   file.
2. **Colour, exactly once.** ``pydicom.pixels.pixel_array`` (pydicom 3, ``raw=False``) already
   returns RGB for YBR_FULL and YBR_FULL_422 (native or JPEG: its runner tracks whether the JPEG
   plug-in converted already) and for YBR_ICT / YBR_RCT (JPEG 2000's MCT is undone by openjpeg).
   So three-sample output is taken as RGB and is *not* converted again: a second YCbCr->RGB
   conversion is what turns grey echoes green in other converters. PALETTE COLOR goes through
   ``apply_color_lut``; MONOCHROME1 is inverted; grey is repeated into three channels; more than
   8 bits are scaled to 0-255.
3. **Frame rate.** ``1000 / FrameTime`` (ms), else CineRate, else RecommendedDisplayFrameRate,
   else the mean of FrameTimeVector; none of them is a refusal.
4. **Geometry.** The crop is the largest 2D region (RegionSpatialFormat 1) of
   SequenceOfUltrasoundRegions (RegionLocationMinX0 ... MaxY1, inclusive). Without regions, the
   crop is the bounding box of the detected fan (below). Inside the crop, everything outside the
   fan is set to black: the fan is the convex hull of the largest connected set of pixels that
   vary over time (temporal standard deviation > 2 grey levels), after a morphological opening
   that cuts thin links such as an ECG trace; burned-in text, the colour bar and calipers are
   static or thin and vanish. A cine too still for that (fan under 5 % of the crop) falls back to
   the largest bright component (mean > 8), then to the whole crop.
5. **Resize** to ``size x size`` (``cv2.INTER_AREA``): squashed to a square as EchoNet-Dynamic
   did, or with ``keep_aspect`` padded with black to a centred square first (no distortion).
   The spacing after the resize, in cm per output pixel, comes from the region's PhysicalDeltaX /
   PhysicalDeltaY when both PhysicalUnits{X,Y}Direction are 3 (cm); otherwise it is unknown.

:func:`convert_dicom` runs that over files and folders and writes the EchoNet-Dynamic layout:
``OUT/Videos/<name>.avi`` (MJPG, like EchoNet), ``OUT/FileList.csv`` (EF, ESV, EDV empty) and
``OUT/Spacing.csv`` (``FileName,DeltaXcm,DeltaYcm``, empty cells where unknown). ``<name>`` is the
first 16 hex digits of SHA-256 of the SOPInstanceUID, so no output carries a patient name, ID,
date, accession number or institution: header values are never copied, and burned-in text lies
outside the fan. The link back (name, SOPInstanceUID, source path) is written only to a separate
``mapping`` file, which must lie outside OUT. An OUT that already has a FileList.csv is merged
into: rows of the same name are replaced, others kept, so several exports can be converted into
one folder.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from echossl.errors import ConfigError, DataError

# Ultrasound image storage SOP classes (2D). Enhanced US Volume (3D) is not a cine and is refused.
US_MULTIFRAME = "1.2.840.10008.5.1.4.1.1.3.1"
US_SOP_CLASSES = {
    US_MULTIFRAME: "Ultrasound Multi-frame Image Storage",
    "1.2.840.10008.5.1.4.1.1.3": "Ultrasound Multi-frame Image Storage (Retired)",
    "1.2.840.10008.5.1.4.1.1.6.1": "Ultrasound Image Storage",
    "1.2.840.10008.5.1.4.1.1.6": "Ultrasound Image Storage (Retired)",
}
FILELIST_COLUMNS = ("FileName", "EF", "ESV", "EDV", "FrameHeight", "FrameWidth", "FPS",
                    "NumberOfFrames", "Split")
SPACING_COLUMNS = ("FileName", "DeltaXcm", "DeltaYcm")
MAPPING_COLUMNS = ("FileName", "SOPInstanceUID", "Source")
SPLITS = ("TRAIN", "VAL", "TEST")
MAX_DECODED_BYTES = 2**31  # as echossl.data.video: 2 GiB of decoded frames per cine
VARYING_STD = 2.0  # grey levels; JPEG noise on static overlays stays below this
BRIGHT_MEAN = 8.0
MIN_FAN_FRACTION = 0.05
STAT_FRAMES = 32  # frames used for the temporal statistics of the fan mask


@dataclass
class DicomVideo:
    """One converted cine.

    Attributes:
        frames: ``(T, size, size, 3)`` uint8 RGB, cropped, masked and resized.
        fps: frames per second.
        spacing_cm: cm per output pixel in x and y after the resize; None when unknown.
        name: output name, 16 hex digits of SHA-256 of the SOPInstanceUID.
        source: the DICOM file.
        geometry: "regions" (SequenceOfUltrasoundRegions) or "detected" (fan detection).
        crop: ``(x0, y0, x1, y1)`` of the crop in source pixels, inclusive.
        uid: the SOPInstanceUID (identifying: written only to a mapping file).
    """

    frames: np.ndarray
    fps: float
    spacing_cm: tuple[float, float] | None
    name: str
    source: Path
    geometry: str = "detected"
    crop: tuple[int, int, int, int] = (0, 0, 0, 0)
    uid: str = field(default="", repr=False)


@dataclass
class ConvertSummary:
    """What :func:`convert_dicom` did.

    Attributes:
        converted: one dict per written video: ``name``, ``source``, ``frames``, ``fps``,
            ``spacing_cm``, ``geometry``.
        refused: ``(source, reason)`` pairs; the reason is one sentence naming the file.
        out: the output folder.
    """

    converted: list[dict] = field(default_factory=list)
    refused: list[tuple[Path, str]] = field(default_factory=list)
    out: Path = Path(".")

    @property
    def exit_code(self) -> int:
        return 1 if self.refused else 0


# ---------------------------------------------------------------------------------------------
# reading one file


def is_dicom(path: str | Path) -> bool:
    """True when ``path`` is a file with the DICOM preamble (``DICM`` at byte 128)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(128)
            return fh.read(4) == b"DICM"
    except OSError:
        return False


def output_name(uid: str) -> str:
    """The de-identified output name of an instance: 16 hex digits of SHA-256 of its UID."""
    return hashlib.sha256(uid.encode("ascii", "replace")).hexdigest()[:16]


def _short(err: Exception) -> str:
    """The first line of an exception's message, short enough for a one-sentence refusal."""
    text = (str(err).strip().splitlines() or [err.__class__.__name__])[0]
    return text[:160].rstrip(".")


def _open(path: Path):
    import pydicom
    from pydicom.errors import InvalidDicomError

    if not path.is_file():
        raise DataError(path, "does not exist" if not path.exists() else "is not a file")
    try:
        return pydicom.dcmread(path)
    except InvalidDicomError:
        raise DataError(path, "is not a DICOM file (no DICM preamble)") from None
    except Exception as err:  # truncated headers raise many types inside pydicom
        raise DataError(path, f"cannot be read as DICOM ({_short(err)})") from None


def _check(ds, path: Path) -> int:
    """Refuse what is not a 2D ultrasound cine this build can decode; return the frame count."""
    from pydicom.pixels import get_decoder
    from pydicom.uid import UID

    sop = str(ds.get("SOPClassUID", "") or getattr(ds.get("file_meta", {}), "MediaStorageSOPClassUID", ""))
    if sop not in US_SOP_CLASSES:
        kind = UID(sop).name if sop else f"modality {ds.get('Modality', 'unknown')}"
        raise DataError(path, f"is {kind}, not an ultrasound cine")
    if "PixelData" not in ds:
        raise DataError(path, "holds no pixel data")
    try:
        n = int(ds.get("NumberOfFrames", 1) or 1)
    except (TypeError, ValueError):
        raise DataError(path, f"has an unreadable NumberOfFrames {ds.get('NumberOfFrames')!r}") from None
    if n < 2:
        raise DataError(path, "holds a single frame, not a cine")
    tsyntax = getattr(ds.get("file_meta", {}), "TransferSyntaxUID", None)
    if tsyntax is None:
        raise DataError(path, "has no transfer syntax in its file meta information")
    try:
        decoder = get_decoder(tsyntax)
    except NotImplementedError:
        raise DataError(path, f"uses transfer syntax {tsyntax.name} ({tsyntax}), which echossl "
                              "cannot decode") from None
    if not decoder.is_available:
        missing = "; ".join(decoder.missing_dependencies) or "a decoder plug-in"
        raise DataError(path, f"uses transfer syntax {tsyntax.name}, whose decoder needs {missing}")
    rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    if rows < 8 or cols < 8:
        raise DataError(path, f"has {cols}x{rows}-pixel frames, too small for an echo")
    if n * rows * cols * max(samples, 3) > MAX_DECODED_BYTES:
        raise DataError(path, f"would decode to more than {MAX_DECODED_BYTES / 2**30:g} GiB "
                              f"({n} frames of {cols}x{rows})")
    return n


def _to_uint8(arr: np.ndarray, bits: int) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr
    arr = arr.astype(np.float32)
    if arr.min() < 0:  # signed data: shift to unsigned range
        arr = arr + 2.0 ** (bits - 1)
    return np.clip(arr * (255.0 / (2.0**bits - 1)), 0, 255).round().astype(np.uint8)


def _ybr_to_rgb(arr: np.ndarray) -> np.ndarray:
    """Full-range YCbCr (JFIF, PS3.3 C.7.6.3.1.2) ``(..., 3)`` to RGB, once.

    8-bit data goes through OpenCV (its YCrCb is the same full-range BT.601 transform, with Cb
    and Cr swapped), several times faster than pydicom's float conversion on 600 x 800 cines.
    """
    from pydicom.pixels import convert_color_space

    if arr.dtype != np.uint8:
        return convert_color_space(arr, "YBR_FULL", "RGB")
    out = np.empty_like(arr)
    for i, frame in enumerate(arr.reshape(-1, *arr.shape[-3:])):
        out.reshape(-1, *arr.shape[-3:])[i] = cv2.cvtColor(
            np.ascontiguousarray(frame[..., [0, 2, 1]]), cv2.COLOR_YCrCb2RGB)
    return out


def _decode_rgb(ds, path: Path, n: int) -> np.ndarray:
    """All frames as ``(T, H, W, 3)`` uint8 RGB, each colour conversion done exactly once."""
    from pydicom.pixels import apply_color_lut, get_decoder

    pi = str(ds.get("PhotometricInterpretation", "")).strip().upper()
    try:
        # raw=True plus the decoder's own account of what it returned: pydicom upsamples native
        # YBR_FULL_422, corrects a PI that contradicts the JPEG stream (JFIF/Adobe markers) and
        # reports RGB where the plug-in already converted (JPEG 2000 YBR_ICT/RCT). So exactly one
        # YCbCr -> RGB step is applied, here, and only when the output is still YCbCr.
        arr, meta = get_decoder(ds.file_meta.TransferSyntaxUID).as_array(ds, raw=True)
        decoded = str(meta.get("photometric_interpretation", pi)).upper()
        if decoded in ("YBR_FULL", "YBR_FULL_422"):
            arr = _ybr_to_rgb(arr)
        elif decoded.startswith("YBR"):
            raise DataError(path, f"decodes to {decoded} colour, which echossl does not convert")
        if pi == "PALETTE COLOR":
            arr = apply_color_lut(arr, ds)
    except DataError:
        raise
    except Exception as err:  # corrupt or truncated fragments fail in many ways inside plug-ins
        raise DataError(path, f"has pixel data that cannot be decoded ({_short(err)})") from None
    bits = int(ds.get("BitsStored", 8) or 8)
    if pi == "PALETTE COLOR":  # LUT entries are 8 or 16 bits regardless of BitsStored
        bits = 16 if arr.dtype.itemsize > 1 and int(arr.max(initial=0)) > 255 else 8
    if arr.ndim == 3 and int(ds.get("SamplesPerPixel", 1) or 1) == 1:
        arr = arr[..., None]  # (T, H, W) grey -> (T, H, W, 1)
    if arr.ndim != 4 or arr.shape[0] != n:
        raise DataError(path, f"decodes to an array of shape {arr.shape}, not {n} frames")
    arr = _to_uint8(arr, bits)
    if pi == "MONOCHROME1":  # 0 is white
        arr = 255 - arr
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    elif arr.shape[-1] != 3:
        raise DataError(path, f"has {arr.shape[-1]} samples per pixel, neither 1 nor 3")
    return np.ascontiguousarray(arr)


def frame_rate(ds, path: Path) -> float:
    """Frames per second: FrameTime (ms), else CineRate, else RecommendedDisplayFrameRate,
    else the mean of FrameTimeVector (its first entry, 0 by definition, excluded)."""
    def positive(value) -> float | None:
        try:
            value = float(value)
        except (TypeError, ValueError):
            return None
        return value if np.isfinite(value) and value > 0 else None

    if (ft := positive(ds.get("FrameTime"))) is not None:
        return 1000.0 / ft
    for key in ("CineRate", "RecommendedDisplayFrameRate"):
        if (rate := positive(ds.get(key))) is not None:
            return rate
    vector = ds.get("FrameTimeVector")
    if vector is not None:
        times = [positive(v) for v in list(vector)[1:]]
        times = [t for t in times if t is not None]
        if times:
            return 1000.0 / float(np.mean(times))
    raise DataError(path, "has no frame rate (FrameTime, CineRate, RecommendedDisplayFrameRate "
                          "and FrameTimeVector are all missing)")


def scan_region(ds, height: int, width: int):
    """The largest 2D region of SequenceOfUltrasoundRegions, clipped to the image.

    Returns:
        ``((x0, y0, x1, y1), (dx_cm, dy_cm) or None)`` with inclusive pixel bounds, or None when
        the file has no usable 2D region. The spacing is known only in cm (units code 3).
    """
    best, best_area = None, 0
    for item in ds.get("SequenceOfUltrasoundRegions", []) or []:
        if int(item.get("RegionSpatialFormat", 0) or 0) != 1:  # 1 = 2D tissue or colour flow
            continue
        try:
            x0, y0 = int(item.RegionLocationMinX0), int(item.RegionLocationMinY0)
            x1, y1 = int(item.RegionLocationMaxX1), int(item.RegionLocationMaxY1)
        except (AttributeError, TypeError, ValueError):
            continue
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, width - 1), min(y1, height - 1)
        area = (x1 - x0 + 1) * (y1 - y0 + 1)
        if x1 - x0 < 7 or y1 - y0 < 7 or area <= best_area:
            continue
        spacing = None
        units = (int(item.get("PhysicalUnitsXDirection", 0) or 0), int(item.get("PhysicalUnitsYDirection", 0) or 0))
        try:
            dx, dy = abs(float(item.PhysicalDeltaX)), abs(float(item.PhysicalDeltaY))
            if units == (3, 3) and dx > 0 and dy > 0 and np.isfinite(dx + dy):
                spacing = (dx, dy)
        except (AttributeError, TypeError, ValueError):
            pass
        best, best_area = ((x0, y0, x1, y1), spacing), area
    return best


def _largest_hull(mask: np.ndarray, open_px: int) -> np.ndarray:
    """Convex hull of the largest connected component of ``mask`` (after an opening), as uint8."""
    if open_px > 1:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (open_px, open_px))
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, kernel)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    out = np.zeros_like(mask)
    if count < 2:
        return out
    biggest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    points = cv2.findNonZero((labels == biggest).astype(np.uint8))
    cv2.fillPoly(out, [cv2.convexHull(points)], 1)
    return out


def fan_mask(grey: np.ndarray) -> np.ndarray:
    """The scan sector of frames ``(T, H, W)`` or ``(T, H, W, 3)`` as a ``(H, W)`` uint8 0/1 mask.

    Pixels that vary over time (std > VARYING_STD) form the fan; its largest component's convex
    hull is the mask. A cine too still for that falls back to the bright pixels, then to all.
    """
    t, h, w = grey.shape[:3]
    pick = np.linspace(0, t - 1, min(t, STAT_FRAMES)).round().astype(int)
    step = max(1, min(h, w) // 160)  # statistics on a ~160-pixel grid: the hull needs no more
    stack = grey[pick, ::step, ::step]
    # max over colour channels keeps colour-flow pixels in the fan
    stack = (stack.max(axis=-1) if stack.ndim == 4 else stack).astype(np.float32)
    sh, sw = stack.shape[1:]
    open_px = max(3, min(sh, sw) // 50) | 1  # odd; wider than an ECG trace or a caliper line
    for candidate in (stack.std(axis=0) > VARYING_STD, stack.mean(axis=0) > BRIGHT_MEAN):
        mask = _largest_hull(candidate.astype(np.uint8), open_px)
        if mask.sum() >= MIN_FAN_FRACTION * sh * sw:
            if step > 1:
                mask = cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST)
            return mask
    return np.ones((h, w), np.uint8)


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())


def resize_frames(frames: np.ndarray, size: int, keep_aspect: bool, mask: np.ndarray | None = None) -> np.ndarray:
    """``(T, h, w, 3)`` -> ``(T, size, size, 3)``: squashed, or padded to a centred square.

    ``mask`` ``(h, w)`` 0/1, when given, blacks out pixels before the resize, so nothing outside
    the fan is averaged into the output's edge pixels.
    """
    t, h, w, _ = frames.shape
    side = max(h, w)
    top, left = (side - h) // 2, (side - w) // 2
    out = np.empty((t, size, size, 3), np.uint8)
    for i, frame in enumerate(frames):  # OpenCV works one image at a time
        frame = np.ascontiguousarray(frame)
        if mask is not None:
            frame = cv2.bitwise_and(frame, frame, mask=mask)
        if keep_aspect and h != w:
            frame = cv2.copyMakeBorder(frame, top, side - h - top, left, side - w - left,
                                       cv2.BORDER_CONSTANT, value=0)
        out[i] = cv2.resize(frame, (size, size), interpolation=cv2.INTER_AREA)
    return out


def read_dicom_video(path: str | Path, size: int = 112, keep_aspect: bool = False) -> DicomVideo:
    """Decode one DICOM ultrasound cine into EchoNet-style frames (see the module docstring).

    Args:
        path: a DICOM file, whatever its name.
        size: output frame side in pixels.
        keep_aspect: pad to a square before resizing instead of squashing.

    Returns:
        :class:`DicomVideo` with ``frames`` ``(T, size, size, 3)`` uint8 RGB.

    Raises:
        DataError: not DICOM, not an ultrasound cine, a single frame, an undecodable transfer
            syntax, corrupt pixel data or no frame rate; one sentence naming the file.
    """
    path = Path(path)
    ds = _open(path)
    n = _check(ds, path)
    fps = frame_rate(ds, path)
    frames = _decode_rgb(ds, path, n)
    _, height, width, _ = frames.shape
    region = scan_region(ds, height, width)
    spacing = None
    if region is not None:
        (x0, y0, x1, y1), spacing = region
        geometry = "regions"
    else:
        if ds.get("SequenceOfUltrasoundRegions"):
            raise DataError(path, "has no 2D image region (its ultrasound regions are M-mode, "
                                  "Doppler or waveform only)")
        geometry = "detected"
        x0, y0, x1, y1 = 0, 0, width - 1, height - 1
    crop = frames[:, y0:y1 + 1, x0:x1 + 1]
    mask = fan_mask(crop)
    if geometry == "detected":  # tighten the crop to the fan
        bx0, by0, bx1, by1 = _bbox(mask)
        crop, mask = crop[:, by0:by1 + 1, bx0:bx1 + 1], mask[by0:by1 + 1, bx0:bx1 + 1]
        x0, y0, x1, y1 = x0 + bx0, y0 + by0, x0 + bx1, y0 + by1
    out = resize_frames(crop, size, keep_aspect, mask=mask)
    if spacing is not None:
        h, w = y1 - y0 + 1, x1 - x0 + 1
        sx, sy = (max(h, w), max(h, w)) if keep_aspect else (w, h)
        spacing = (spacing[0] * sx / size, spacing[1] * sy / size)
    uid = str(ds.get("SOPInstanceUID", "") or "")
    if not uid:  # no UID: a hash of the file's bytes is stable and still reveals nothing
        uid = "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    return DicomVideo(frames=out, fps=float(fps), spacing_cm=spacing, name=output_name(uid),
                      source=path, geometry=geometry, crop=(x0, y0, x1, y1), uid=uid)


# ---------------------------------------------------------------------------------------------
# converting many files


def find_inputs(inputs: Iterable[str | Path]) -> list[Path]:
    """Files named in ``inputs``, folders searched recursively (any file name), in order.

    DICOMDIR index files and hidden files (``.DS_Store``) inside folders are skipped; every
    other file is a candidate, so a non-DICOM file in a folder is refused, not silently ignored.
    A path that does not exist is kept, to be refused by name.
    """
    found: list[Path] = []
    for item in inputs:
        item = Path(item)
        if item.is_dir():
            for root, dirs, files in os.walk(item):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):
                    if not name.startswith(".") and name.upper() != "DICOMDIR":
                        found.append(Path(root) / name)
        else:
            found.append(item)
    seen: set[Path] = set()
    return [p for p in found if not (p.resolve() in seen or seen.add(p.resolve()))]


def _convert_one(path: Path, videos: Path, size: int, keep_aspect: bool) -> dict:
    """Worker: read, write ``videos/<name>.avi``; a dict with the facts, or with ``refused``."""
    from echossl.data.video import write_video

    try:
        video = read_dicom_video(path, size=size, keep_aspect=keep_aspect)
    except DataError as err:
        return {"source": path, "refused": str(err)}
    except MemoryError:
        return {"source": path, "refused": str(DataError(path, "does not fit in memory"))}
    write_video(videos / f"{video.name}.avi", video.frames, video.fps)
    return {"source": path, "name": video.name, "uid": video.uid, "frames": len(video.frames),
            "fps": video.fps, "spacing_cm": video.spacing_cm, "geometry": video.geometry}


def _read_rows(path: Path, columns: Sequence[str]) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None or "FileName" not in reader.fieldnames:
            raise DataError(path, f"exists but has no FileName column, so it cannot be merged into "
                                  f"(expected {', '.join(columns)})")
        return list(reader)


def _write_rows(path: Path, columns: Sequence[str], rows: list[dict], new_names: set[str]) -> None:
    """Merge: rows already in ``path`` under other names first, then ``rows``."""
    from echossl.io import atomic_write_text

    kept = [r for r in _read_rows(path, columns) if r.get("FileName") not in new_names]
    extra = [c for r in kept for c in r if c not in columns and c is not None]
    fieldnames = list(columns) + list(dict.fromkeys(extra))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fieldnames, restval="", extrasaction="ignore",
                            lineterminator="\n")
    writer.writeheader()
    writer.writerows(kept + rows)
    atomic_write_text(path, buffer.getvalue())


def _fmt(value: float) -> str:
    return f"{value:.6g}"


def convert_dicom(inputs: Iterable[str | Path], out: str | Path, *, size: int = 112,
                  split: str = "TEST", keep_aspect: bool = False, workers: int = 1,
                  mapping: str | Path | None = None, progress: bool = True) -> ConvertSummary:
    """Convert DICOM cines (files or folders) into an EchoNet-Dynamic folder ``out``.

    Writes ``out/Videos/<name>.avi``, ``out/FileList.csv`` (EF, ESV, EDV empty, FrameHeight =
    FrameWidth = ``size``, FPS, NumberOfFrames, Split), ``out/Spacing.csv`` (FileName, DeltaXcm,
    DeltaYcm) and, only when ``mapping`` is given, the re-identification table ``mapping``
    (FileName, SOPInstanceUID, Source), which must lie outside ``out``. Existing CSVs in ``out``
    are merged into (same name replaced). Refused files are listed in the summary; the others are
    still written.

    Raises:
        ConfigError: a bad size, split or worker count, or a mapping file inside ``out``.
    """
    from echossl.io import make_dirs
    from echossl.progress import progress_bar

    out = Path(out)
    split = split.upper()
    if split not in SPLITS:
        raise ConfigError(f"--split must be one of {', '.join(SPLITS)}, not {split!r}.")
    if not 16 <= size <= 4096:
        raise ConfigError(f"--size must be between 16 and 4096 pixels, not {size}.")
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, not {workers}.")
    if mapping is not None:
        mapping = Path(mapping)
        if mapping.resolve().is_relative_to(out.resolve()):
            raise ConfigError(f"the mapping file {mapping} lies inside {out}; put it elsewhere so "
                              "that the converted folder stays free of identifiers.")
    files = find_inputs(inputs)
    videos = make_dirs(out / "Videos")
    results: dict[int, dict] = {}
    if workers == 1 or len(files) < 2:
        for i, path in enumerate(progress_bar(files, "converting DICOM") if progress else files):
            results[i] = _convert_one(path, videos, size, keep_aspect)
    else:
        with ProcessPoolExecutor(max_workers=min(workers, len(files))) as pool:
            jobs = {pool.submit(_convert_one, p, videos, size, keep_aspect): i for i, p in enumerate(files)}
            done = as_completed(jobs)
            for job in (progress_bar(done, "converting DICOM", total=len(jobs)) if progress else done):
                results[jobs[job]] = job.result()
    summary = ConvertSummary(out=out)
    first_source: dict[str, Path] = {}
    for i in range(len(files)):
        result = results[i]
        if "refused" in result:
            summary.refused.append((result["source"], result["refused"]))
        elif result["name"] in first_source:  # same SOPInstanceUID twice: one video, one refusal
            reason = DataError(result["source"], f"is the same instance (SOPInstanceUID) as "
                                                 f"{first_source[result['name']]}, already converted")
            summary.refused.append((result["source"], str(reason)))
        else:
            first_source[result["name"]] = result["source"]
            summary.converted.append(result)
    if not summary.converted:
        return summary
    names = {r["name"] for r in summary.converted}
    _write_rows(out / "FileList.csv", FILELIST_COLUMNS, [
        {"FileName": r["name"], "EF": "", "ESV": "", "EDV": "", "FrameHeight": size, "FrameWidth": size,
         "FPS": _fmt(r["fps"]), "NumberOfFrames": r["frames"], "Split": split}
        for r in summary.converted], names)
    _write_rows(out / "Spacing.csv", SPACING_COLUMNS, [
        {"FileName": r["name"],
         "DeltaXcm": _fmt(r["spacing_cm"][0]) if r["spacing_cm"] else "",
         "DeltaYcm": _fmt(r["spacing_cm"][1]) if r["spacing_cm"] else ""}
        for r in summary.converted], names)
    if mapping is not None:
        _write_rows(mapping, MAPPING_COLUMNS, [
            {"FileName": r["name"], "SOPInstanceUID": r["uid"], "Source": str(Path(r["source"]).resolve())}
            for r in summary.converted], names)
    return summary


def read_spacing(root: str | Path) -> dict[str, tuple[float, float]]:
    """``{FileName: (cm per pixel in x, in y)}`` from ``root/Spacing.csv``; names without a known
    spacing (empty cells) and a missing file give no entry."""
    path = Path(root) / "Spacing.csv"
    out = {}
    for i, row in enumerate(_read_rows(path, SPACING_COLUMNS), start=1):
        dx, dy = (row.get("DeltaXcm") or "").strip(), (row.get("DeltaYcm") or "").strip()
        if not dx and not dy:
            continue
        try:
            value = (float(dx), float(dy))
        except ValueError:
            raise DataError(path, f"DeltaXcm {dx!r} or DeltaYcm {dy!r} is not a number", row=i) from None
        if not all(np.isfinite(v) and v > 0 for v in value):
            raise DataError(path, f"spacing {dx}, {dy} is not positive", row=i)
        out[row["FileName"]] = value
    return out


__all__ = ["ConvertSummary", "DicomVideo", "convert_dicom", "fan_mask", "find_inputs",
           "frame_rate", "is_dicom", "output_name", "read_dicom_video", "read_spacing", "scan_region"]
