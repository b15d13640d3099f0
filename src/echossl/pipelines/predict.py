"""``echossl predict``: per-video results for the videos users have.

Inputs are AVI and MP4 files (any case of extension), DICOM cines (read in
memory by :func:`echossl.data.dicom.read_dicom_video`, the code behind
``echossl convert dicom``), and folders of them searched recursively. Each video
is decoded once; frames and clips go through the network in batches.

EF checkpoints (``ef``, ``distill``) write ``FileName,EF``: the mean over the
test clips, with the clip length, period, number of clips and normalisation of
the checkpoint's own config (:mod:`echossl.evaluation.settings`).

Segmentation checkpoints (``seg``, ``video-seg``) write ``FileName, EF,
ED_Frame, ES_Frame, EF_Seg, HeartRate`` and, when the pixel spacing is known,
``EDV, ESV`` in mL:

- masks are the LV probability >= 0.5 at the video's own size;
- beats come from the LV-area curve (:func:`echossl.evaluation.beats.find_beats`,
  its minimum ES spacing scaled to the video's frame rate); ``ED_Frame`` and
  ``ES_Frame`` are the first beat's (0-based), ``EF_Seg`` (= ``EF``) the mean
  over beats of the method-of-disks EF;
- ``HeartRate`` (bpm) is ``60 · fps / median ES-to-ES interval`` (ED-to-ED
  when a single ES is found; empty with fewer than two of either or no fps);
- ``EDV``/``ESV`` are the mean over beats of the method-of-disks volume at the
  ED and ES frames. Spacing comes from the DICOM (after resizing), or for
  AVI/MP4 from a ``Spacing.csv`` in the video's folder or the one above it
  (``FileName,DeltaXcm,DeltaYcm``, cm per pixel, as ``convert dicom`` writes
  it; ``PhysicalDeltaX``/``PhysicalDeltaY`` are accepted as column names too). Non-square pixels are resampled to square
  ones (nearest-exact) before the disks are cut, so the volume is physical.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from echossl.engine import load_checkpoint
from echossl.errors import DataError, EchosslError
from echossl.evaluation.beats import find_beats, segmentation_ef
from echossl.io import atomic_write_text
from echossl.progress import progress_bar

VIDEO_SUFFIXES = (".avi", ".mp4", ".m4v", ".mov")
DICOM_SUFFIXES = (".dcm", ".dicom", ".dic")
SPACING_FILE = "Spacing.csv"
DICOM_SIZE = 112  # DICOMs are resized to EchoNet's 112 px, as `convert dicom` does


@dataclass
class VideoInput:
    """One input: its path, its kind (``video`` or ``dicom``) and the name written as FileName."""

    path: Path
    kind: str
    name: str
    in_folder: bool = False  # found by searching a folder (a refused file is then skipped, not fatal)


def is_dicom(path: Path) -> bool:
    """A DICOM Part-10 file (``DICM`` at byte 128), whatever its name; or a ``.dcm`` file."""
    if path.suffix.lower() in DICOM_SUFFIXES:
        return True
    try:
        with open(path, "rb") as handle:
            head = handle.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def _kind(path: Path) -> str | None:
    if path.suffix.lower() in VIDEO_SUFFIXES:
        return "video"
    if is_dicom(path):
        return "dicom"
    return None


def gather_inputs(inputs) -> list[VideoInput]:
    """Videos and DICOMs from a mix of files and folders; folders are searched recursively.

    Hidden files and folders and DICOMDIR index files are skipped. FileName is the file's stem; when two
    inputs share a stem (``IM0001`` in several series folders) their path
    relative to the folder given, with ``/`` as ``_``, is used instead.

    Raises:
        EchosslError: an input does not exist, a file is neither video nor
            DICOM, or a folder holds none.
    """
    found: list[tuple[Path, str, str, bool]] = []  # (path, kind, relative name, found in a folder)
    for item in map(Path, inputs):
        if item.is_dir():
            here = []
            for path in sorted(item.rglob("*")):
                rel = path.relative_to(item)
                if (any(part.startswith(".") for part in rel.parts) or not path.is_file()
                        or path.name.upper() == "DICOMDIR"):  # a DICOMDIR is an index, not an image
                    continue
                kind = _kind(path)
                if kind:
                    here.append((path, kind, rel.with_suffix("").as_posix().replace("/", "_"), True))
            if not here:
                raise EchosslError(f"input folder {item} holds no .avi, .mp4 or DICOM videos (searched recursively)")
            found += here
        elif item.is_file():
            kind = _kind(item)
            if kind is None:
                raise EchosslError(f"input {item} is not an AVI, MP4 or DICOM file")
            found.append((item, kind, item.stem, False))
        else:
            raise EchosslError(f"input {item} does not exist")
    if not found:
        raise EchosslError("no input videos were given")
    stems = pd.Series([p.stem for p, _, _, _ in found])
    clash = set(stems[stems.duplicated(keep=False)])
    return [VideoInput(p, k, rel if p.stem in clash else p.stem, f) for p, k, rel, f in found]


def gather_videos(inputs) -> list[Path]:
    """Paths of :func:`gather_inputs` (kept for callers of the older name)."""
    return [v.path for v in gather_inputs(inputs)]


# --------------------------------------------------------------------------- #
# Reading one input: frames, frame rate, pixel spacing
# --------------------------------------------------------------------------- #

class SpacingTable:
    """``Spacing.csv`` files (FileName, cm per pixel in x and y) found beside or above videos."""

    X_NAMES = ("deltaxcm", "physicaldeltax", "spacingx", "deltax", "spacing_x")
    Y_NAMES = ("deltaycm", "physicaldeltay", "spacingy", "deltay", "spacing_y")

    def __init__(self):
        self._tables: dict[Path, dict[str, tuple[float, float]] | None] = {}

    def _load(self, csv: Path) -> dict[str, tuple[float, float]] | None:
        if csv not in self._tables:
            self._tables[csv] = self._parse(csv) if csv.is_file() else None
        return self._tables[csv]

    def _parse(self, csv: Path) -> dict[str, tuple[float, float]]:
        try:
            table = pd.read_csv(csv)
        except (OSError, ValueError, pd.errors.ParserError) as err:
            raise DataError(csv, f"cannot be read as CSV ({err.__class__.__name__})") from None
        cols = {c.lower().replace(" ", ""): c for c in table.columns}
        name = cols.get("filename")
        x = next((cols[c] for c in self.X_NAMES if c in cols), None)
        y = next((cols[c] for c in self.Y_NAMES if c in cols), None)
        if name is None or x is None or y is None:
            raise DataError(csv, "needs the columns FileName, DeltaXcm and DeltaYcm (cm per pixel)")
        out = {}
        for row, (n, sx, sy) in enumerate(zip(table[name], table[x], table[y]), start=1):
            try:
                sx, sy = float(sx), float(sy)
            except (TypeError, ValueError):
                raise DataError(csv, f"spacing {sx!r}, {sy!r} is not a number", row=row) from None
            if np.isfinite(sx) and np.isfinite(sy) and sx > 0 and sy > 0:
                out[Path(str(n)).stem if Path(str(n)).suffix.lower() in VIDEO_SUFFIXES else str(n)] = (sx, sy)
        return out

    def lookup(self, video: Path) -> tuple[float, float] | None:
        """The spacing of ``video`` from ``Spacing.csv`` in its folder or the folder above, or None."""
        for folder in (video.parent, video.parent.parent):
            table = self._load(folder / SPACING_FILE)
            if table is not None and video.stem in table:
                return table[video.stem]
        return None


def read_input(item: VideoInput, spacing: SpacingTable) -> tuple[np.ndarray, float | None, tuple | None, str]:
    """Decode one input once: ``(frames (F, H, W, 3) uint8 RGB, fps or None, (sx, sy) cm or None, name)``."""
    if item.kind == "dicom":
        try:
            from echossl.data.dicom import read_dicom_video
        except ModuleNotFoundError as err:
            raise EchosslError(f"{item.path} is DICOM, and reading DICOM needs {err.name} "
                               "(pip install pydicom pylibjpeg pylibjpeg-libjpeg)") from None
        video = read_dicom_video(item.path, size=DICOM_SIZE)
        fps = float(video.fps) if video.fps and np.isfinite(video.fps) and video.fps > 0 else None
        return np.asarray(video.frames), fps, video.spacing_cm, str(video.name or item.name)
    from echossl.data.video import read_video, video_info

    frames = read_video(item.path)
    fps = video_info(item.path)["fps"]
    fps = float(fps) if np.isfinite(fps) and fps > 0 else None
    return frames, fps, spacing.lookup(item.path), item.name


# --------------------------------------------------------------------------- #
# Per-video results of a segmentation model
# --------------------------------------------------------------------------- #

def square_pixels(masks: np.ndarray, spacing: tuple[float, float]) -> tuple[np.ndarray, float]:
    """Resample ``(T, H, W)`` masks with pixels ``sx x sy`` cm to square pixels of ``min(sx, sy)`` cm.

    Nearest-exact (centre-aligned) resampling of the whole stack at once; with
    square pixels already the masks are returned as they are.
    """
    import torch
    import torch.nn.functional as F

    sx, sy = float(spacing[0]), float(spacing[1])
    s = min(sx, sy)
    if abs(sx - sy) <= 1e-3 * s:
        return masks, (sx + sy) / 2
    t, h, w = masks.shape
    size = (max(1, round(h * sy / s)), max(1, round(w * sx / s)))
    x = torch.from_numpy(np.ascontiguousarray(masks, dtype=np.uint8)).float()[:, None]
    return F.interpolate(x, size=size, mode="nearest-exact")[:, 0].numpy() >= 0.5, s


def heart_rate(es_frames, ed_frames, fps: float | None) -> float:
    """Beats per minute, ``60 · fps / median interval`` of ES frames (else ED frames); NaN if unknown."""
    for frames in (es_frames, ed_frames):
        frames = np.asarray(frames)
        if fps and frames.size >= 2:
            return float(60.0 * fps / np.median(np.diff(np.sort(frames))))
    return float("nan")


def segmentation_row(masks: np.ndarray, fps: float | None, spacing: tuple | None) -> dict:
    """``EF, ED_Frame, ES_Frame, EF_Seg, HeartRate`` (+ ``EDV, ESV`` in mL with spacing) of ``(T, H, W)`` masks."""
    if spacing is not None:
        iso, cm = square_pixels(masks, spacing)
    else:
        iso, cm = masks, 1.0
    result = segmentation_ef(iso, spacing=cm, fps=fps)
    ed_all, es_all = find_beats(result["area"], fps=fps)
    row = {"EF": result["ef"], "ED_Frame": result["ed_frame"], "ES_Frame": result["es_frame"],
           "EF_Seg": result["ef"], "HeartRate": heart_rate(es_all, ed_all, fps)}
    if spacing is not None:
        vol = result["volume"]
        row["EDV"] = float(np.mean(vol[result["ed_frames"]])) if result["ed_frames"] else float("nan")
        row["ESV"] = float(np.mean(vol[result["es_frames"]])) if result["es_frames"] else float("nan")
    return row


def write_masks(out_dir: Path, name: str, masks: np.ndarray, fmt: str, fps: float | None,
                spacing: tuple | None) -> Path:
    """Write ``(T, H, W)`` bool masks as ``<name>.nii.gz`` or ``<name>.npy`` (uint8 0/1).

    NIfTI holds the array as ``(W, H, T)`` (x = column, y = row, then time) with
    the pixel size in mm (1 mm when unknown) and the frame interval in seconds,
    so that viewers show the frames upright; ``.npy`` holds ``(T, H, W)``.
    """
    from echossl.io import atomic_write_bytes

    out_dir.mkdir(parents=True, exist_ok=True)
    data = np.ascontiguousarray(masks, dtype=np.uint8)
    if fmt == "npy":
        import io

        buffer = io.BytesIO()
        np.save(buffer, data)
        path = out_dir / f"{name}.npy"
        atomic_write_bytes(path, buffer.getvalue())
        return path
    import gzip

    import nibabel as nib

    sx, sy = (float(spacing[0]) * 10, float(spacing[1]) * 10) if spacing else (1.0, 1.0)
    dt = 1.0 / fps if fps else 1.0
    image = nib.Nifti1Image(data.transpose(2, 1, 0), affine=np.diag([sx, sy, 1.0, 1.0]))
    image.header.set_zooms((sx, sy, dt))
    image.header.set_xyzt_units("mm", "sec")
    path = out_dir / f"{name}.nii.gz"
    atomic_write_bytes(path, gzip.compress(image.to_bytes(), compresslevel=6, mtime=0))
    return path


# --------------------------------------------------------------------------- #
# Models
# --------------------------------------------------------------------------- #

def _segmenter(ckpt: dict, settings: dict, device):
    """``(F, H, W, 3)`` uint8 frames -> ``(F, H, W)`` LV probability, for a ``seg`` or ``video-seg`` checkpoint.

    A 2D segmenter runs ``batch_size`` frames at a time; a video segmenter over
    sliding clips, with overlapping predictions averaged (UniLVSeg whole-video
    inference).
    """
    norm = {"mean": settings["mean"], "std": settings["std"], "size": settings["size"]}
    if ckpt["hyper_parameters"]["task"] == "seg":
        from echossl.pipelines import semisupervised_ef as pipe

        module, _ = pipe.load_segmenter(ckpt["path"])
        module.to(device)
        return lambda frames: pipe.segment_video(module, frames, norm, settings["batch_size"])
    from echossl.pipelines import unilvseg

    module, hp = unilvseg.load_module(ckpt["path"])
    module.to(device)
    return lambda frames: unilvseg.segment_video(module.net, frames, {**hp["norm"], **norm}, clip_frames=hp["frames"],
                                                 period=hp["period"], batch_size=max(1, settings["batch_size"] // 8))


def _ef_predictor(ckpt: dict, settings: dict, device):
    """``(F, H, W, 3)`` uint8 frames -> EF averaged over the checkpoint's test clips."""
    from echossl.pipelines import semisupervised_ef as pipe

    module, _ = pipe.load_ef_model(ckpt["path"])
    if module.net.stem[0].in_channels == 4:
        raise EchosslError(f"{ckpt['path']} is a multi-input teacher that needs predicted masks; "
                           "predict with the distilled student or a video-only EF model")
    module.to(device)
    norm = {"mean": settings["mean"], "std": settings["std"], "size": settings["size"]}
    s = settings

    def predict(frames: np.ndarray) -> float:
        x = pipe._normalise(frames, norm, device)
        return pipe.predict_ef_frames(module, x, s["length"], s["period"], s["test_clips"], s["batch_size"])

    return predict


def predict(checkpoint, inputs, out_csv, *, config=None, sets=(), preset: str | None = None,
            cfg: dict | None = None, overlay_dir=None, masks_out=None, masks_format: str = "nifti", accelerator: str = "auto",
            devices="auto", batch_size: int | None = None) -> pd.DataFrame:
    """Write ``out_csv`` with one row per input video (columns in the module docstring).

    Args:
        checkpoint: a run folder, ``.ckpt`` or export folder.
        inputs: files and folders (:func:`gather_inputs`).
        out_csv: the CSV to write.
        config: a ``--config`` YAML merged over the checkpoint's own config.
        sets: ``--set a.b=c`` values, merged after ``config``.
        preset: used only when the checkpoint's config cannot be found.
        cfg: an already-parsed override dict (merged like ``config``).
        overlay_dir: folder for videos with the mask outline (segmentation).
        masks_out: folder for per-frame masks, ``masks_format`` ``nifti`` or ``npy``.
        accelerator, devices: where to run (:func:`echossl.engine.devices.select_device`).
        batch_size: frames (seg) or clips (EF) per forward pass; default the config's ``infer_batch``.
    """
    import torch

    from echossl.config import deep_merge
    from echossl.engine.devices import select_device
    from echossl.evaluation.settings import checkpoint_config, inference_settings, load_override

    if masks_format not in ("nifti", "npy"):
        raise EchosslError(f"--masks-format must be nifti or npy, got {masks_format!r}")
    items = gather_inputs(inputs)
    ckpt = load_checkpoint(checkpoint, expect_task=("seg", "video-seg", "ef", "distill"))
    override = deep_merge(cfg or {}, load_override(config, sets) or {})
    full_cfg, _ = checkpoint_config(ckpt, override, fallback_preset=preset)
    settings = inference_settings(ckpt, full_cfg, override, batch_size)
    device = select_device(accelerator, devices)
    task = settings["task"]
    seg = task in ("seg", "video-seg")
    if not seg and (overlay_dir is not None or masks_out is not None):
        warnings.warn("--overlay and --masks-out need a segmentation checkpoint; they are ignored for EF models",
                      stacklevel=2)
    model = _segmenter(ckpt, settings, device) if seg else _ef_predictor(ckpt, settings, device)
    spacing_table = SpacingTable()
    rows, refused = [], []
    with torch.inference_mode():
        for item in progress_bar(items, "segmenting" if seg else "predicting EF"):
            try:
                frames, fps, spacing, name = read_input(item, spacing_table)
            except DataError as err:
                if not item.in_folder:
                    raise
                refused.append(str(err))  # e.g. a CT image or a single frame in a PACS export folder
                continue
            if not seg:
                rows.append({"FileName": name, "EF": model(frames)})
                continue
            masks = model(frames) >= 0.5
            rows.append({"FileName": name, **segmentation_row(masks, fps, spacing)})
            if masks_out is not None:
                write_masks(Path(masks_out), name, masks, masks_format, fps, spacing)
            if overlay_dir is not None:
                from echossl.evaluation.overlay import write_overlay_video

                write_overlay_video(Path(overlay_dir) / f"{name}.avi", np.asarray(frames), masks, fps or 50.0)
    if refused:
        warnings.warn(f"{len(refused)} file(s) found in the input folders were skipped: " + " ".join(refused[:10])
                      + (f" and {len(refused) - 10} more" if len(refused) > 10 else ""), stacklevel=2)
    if not rows:
        raise EchosslError(f"none of the {len(items)} input file(s) could be read as a video")
    table = pd.DataFrame(rows)
    for col in ("ED_Frame", "ES_Frame"):
        if col in table:
            table[col] = table[col].astype("Int64")
    order = ["FileName", "EF", "ED_Frame", "ES_Frame", "EF_Seg", "HeartRate", "EDV", "ESV"]
    table = table[[c for c in order if c in table.columns]]
    atomic_write_text(out_csv, table.to_csv(index=False, float_format="%.4f"))
    return table
