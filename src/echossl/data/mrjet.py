"""Reading MR-jet colour-Doppler folders (the layout :mod:`echossl.simulate.mrjet` writes).

Layout::

    ROOT/MRJetList.csv         FileName,Split,NumberOfFrames,FrameHeight,FrameWidth,FPS,HasJet,
                               MaxFrames,MaxJetRatio,Severity,JetAngle
    ROOT/Videos/<FileName>.avi RGB colour-Doppler video
    ROOT/Masks/<FileName>.npz  jet (F,H,W) bool, la (F,H,W) bool, e (F,) one-hot max frames, ...

Only ``FileName``, ``Split`` and ``MaxFrames`` are required in the CSV for
training; ``Masks/`` is needed for the frames' jet masks (segmentation) and
the LA areas (severity). Videos of a real data set can be brought into this
layout with their annotations (one NPZ per video with ``jet``, ``la``, ``e``).

``detect(path)`` and ``check(path)`` plug this format into ``echossl data check``.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from echossl.data.cache import FrameCache
from echossl.data.echonet import escapes, outside_root, read_csv
from echossl.errors import DataError
from echossl.io import npz_shapes

INDEX_FILE = "MRJetList.csv"
REQUIRED = ("FileName", "Split", "MaxFrames")
SPLITS = ("TRAIN", "VAL", "TEST")


def detect(path) -> bool:
    """True when ``path`` holds ``MRJetList.csv``."""
    return (Path(path) / INDEX_FILE).is_file()


def parse_max_frames(value, path: Path, row: int) -> np.ndarray:
    """``"12 35"`` -> ``array([12, 35])``; empty or NaN -> no max frame."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return np.zeros(0, dtype=np.int64)
    text = str(value).replace(",", " ").replace(";", " ").strip()
    if not text:
        return np.zeros(0, dtype=np.int64)
    try:
        frames = np.array([int(float(v)) for v in text.split()], dtype=np.int64)
    except (ValueError, OverflowError):  # "abc", "nan"; "inf", "1e30"
        raise DataError(path, f"MaxFrames {value!r} is not a list of frame numbers", row=row) from None
    if (frames < 0).any():
        raise DataError(path, f"MaxFrames {value!r} has a negative frame number", row=row)
    return np.unique(frames)


def read_index(root) -> pd.DataFrame:
    """Read ``MRJetList.csv`` with ``Split`` upper-cased and ``MaxFrames`` parsed to arrays.

    Raises:
        DataError: the file is missing, unreadable, or lacks a required column.
    """
    path = Path(root) / INDEX_FILE
    if not path.is_file():
        raise DataError(path, "file does not exist (not an MR-jet folder)")
    table = read_csv(path, dtype={"FileName": str, "Split": str, "MaxFrames": str}, keep_default_na=False,
                     skipinitialspace=False)
    missing = [c for c in REQUIRED if c not in table.columns]
    if missing:
        raise DataError(path, f"lacks the column(s) {', '.join(missing)}")
    table["FileName"] = table["FileName"].str.strip().str.removesuffix(".avi")
    table["Split"] = table["Split"].str.strip().str.upper()
    return table


def _problem(path, message, row=None, severity="error") -> dict:
    err = DataError(path, message, row=row)
    return {"file": str(err.path), "row": row, "message": err.message, "text": str(err), "severity": severity}


def validate(root) -> tuple[list[str], list[dict]]:
    """Names of usable videos, and the problems of the others (file, 1-based row, sentence).

    A video is usable when its row is well-formed, its AVI and mask file exist,
    and its mask file's ``e`` has one entry per frame with ones exactly at MaxFrames.
    Videos are not decoded (the header gives the frame count).
    """
    from echossl.data.video import video_info

    root = Path(root)
    table = read_index(root)
    csv = root / INDEX_FILE
    usable, problems, seen = [], [], set()
    for i, rec in enumerate(table.itertuples(index=False), start=1):
        name = rec.FileName
        if not name:
            problems.append(_problem(csv, "FileName is empty", i))
            continue
        if escapes(name):
            problems.append(_problem(csv, f"FileName {name!r} is not a plain file name (no '..', separators, "
                                          "absolute paths, control characters or more than 250 bytes)", i))
            continue
        links = [p for p in (root / "Videos" / f"{name}.avi", root / "Masks" / f"{name}.npz")
                 if outside_root(root, p)]
        if links:
            problems.append(_problem(csv, f"{links[0].parent.name}/{links[0].name} leads outside the data "
                                          "folder (through a symbolic link)", i))
            continue
        if name in seen:
            problems.append(_problem(csv, f"FileName {name} appears twice", i))
            continue
        seen.add(name)
        if rec.Split not in SPLITS:
            problems.append(_problem(csv, f"Split {rec.Split!r} is not TRAIN, VAL or TEST", i))
            continue
        try:
            frames = parse_max_frames(rec.MaxFrames, csv, i)
            avi = root / "Videos" / f"{name}.avi"
            if not avi.is_file():
                raise DataError(avi, "video file does not exist")
            info = video_info(avi)
            n = info["frames"]
            if n <= 0:
                raise DataError(avi, "video has no frames")
            if "NumberOfFrames" in table.columns and str(rec.NumberOfFrames).strip():
                try:
                    declared = int(float(rec.NumberOfFrames))
                except (ValueError, OverflowError):
                    raise DataError(csv, f"NumberOfFrames {rec.NumberOfFrames!r} of {name} is not a whole number",
                                    row=i) from None
                if declared != n:
                    raise DataError(csv, f"NumberOfFrames {declared} of {name} differs from the video's {n}", row=i)
            if frames.size and frames.max() >= n:
                raise DataError(csv, f"MaxFrames {rec.MaxFrames!r} of {name} is past the video's {n} frames", row=i)
            npz = root / "Masks" / f"{name}.npz"
            if not npz.is_file():
                raise DataError(npz, "mask file does not exist")
            shapes = npz_shapes(npz)
            for key in ("jet", "la", "e"):
                if key not in shapes:
                    raise DataError(npz, f"has no {key!r} array")
            for key in ("jet", "la"):  # checked from the headers: nothing is decompressed for it
                if shapes[key] != (n, info["height"], info["width"]):
                    raise DataError(npz, f"{key!r} has shape {shapes[key]}, not (frames, height, width) = "
                                         f"{(n, info['height'], info['width'])} of the video")
            if shapes["e"] != (n,):
                raise DataError(npz, f"'e' has shape {shapes['e']}, not ({n},) for a video of {n} frames")
            try:
                with np.load(npz) as z:
                    e = np.asarray(z["e"])
            except Exception as err:
                raise DataError(npz, f"cannot be read as NPZ ({err.__class__.__name__})") from None
            if not np.array_equal(np.flatnonzero(e), frames):
                raise DataError(npz, f"'e' marks frames {np.flatnonzero(e).tolist()} but MaxFrames says "
                                     f"{frames.tolist()}")
        except DataError as err:
            if err.row is None:  # a video's or mask's problem: say which index row it came from
                err = DataError(err.path, f"{err.message} ({INDEX_FILE} row {i})")
            problems.append({"file": str(err.path), "row": err.row, "message": err.message, "text": str(err),
                             "severity": "error"})
            continue
        usable.append(name)
    return usable, problems


def check(path) -> dict:
    """``echossl data check`` report for an MR-jet folder (same keys as the EchoNet check)."""
    path = Path(path)
    try:
        table = read_index(path)
        usable, problems = validate(path)
    except DataError as err:
        from echossl.data.check import _stats

        return {"counts": {"usable": 0}, "ef": _stats([]), "frames": _stats([]), "fps": _stats([]), "problems": [
            {"file": str(err.path), "row": err.row, "message": err.message, "text": str(err), "severity": "error"}]}
    counts = {s: int((table["Split"] == s).sum()) for s in SPLITS}
    counts["total"] = len(table)
    counts["usable"] = len(usable)
    ok = table["FileName"].isin(usable)
    counts["usable_by_split"] = {s: int(((table["Split"] == s) & ok).sum()) for s in SPLITS}
    rep = {"counts": counts, "problems": problems}
    if "Severity" in table.columns:
        rep["severity"] = {str(k): int(v) for k, v in table.loc[ok, "Severity"].value_counts().items()}
    # the same summary keys as the EchoNet check (the data-check table prints them)
    from echossl.data.check import _stats

    def column(name):
        return pd.to_numeric(table.loc[ok, name], errors="coerce") if name in table.columns else []

    rep.update(ef=_stats([]), frames=_stats(column("NumberOfFrames")), fps=_stats(column("FPS")))
    return rep


def split_names(root, *, strict: bool = False) -> dict[str, list[str]]:
    """``{"TRAIN": [...], "VAL": [...], "TEST": [...]}`` of usable videos, problems warned (or raised)."""
    root = Path(root)
    table = read_index(root)
    usable, problems = validate(root)
    if problems:
        if strict:
            p = problems[0]
            raise DataError(p["file"], p["message"], row=p["row"])
        listing = "; ".join(p["text"] for p in problems[:10]) + (" ..." if len(problems) > 10 else "")
        warnings.warn(f"{len(problems)} problem(s) in {root}; those videos are skipped: {listing}", stacklevel=2)
    ok = set(usable)
    return {s: sorted(n for n in table.loc[table["Split"] == s, "FileName"] if n in ok) for s in SPLITS}


def load_truth(root, name: str) -> dict:
    """The mask file of one video as arrays (``jet``, ``la`` ``(F, H, W)`` bool, ``e`` ``(F,)``, ...)."""
    path = Path(root) / "Masks" / f"{name}.npz"
    try:
        with np.load(path) as z:
            return {k: np.asarray(z[k]) for k in z.files}
    except FileNotFoundError:
        raise DataError(path, "mask file does not exist") from None
    except Exception as err:
        raise DataError(path, f"cannot be read as NPZ ({err.__class__.__name__})") from None


def centre_box(height: int, width: int, crop: float) -> tuple[int, int, int]:
    """``(top, left, side)`` of the centred square crop covering ``crop`` of the shorter side."""
    side = max(8, int(round(crop * min(height, width))))
    return (height - side) // 2, (width - side) // 2, side


def prepare_frames(frames: np.ndarray, crop: float, size: int, mean, std) -> torch.Tensor:
    """``(T, H, W, 3)`` uint8 -> ``(T, 3, size, size)`` float: centre crop, resize, normalise."""
    top, left, side = centre_box(frames.shape[1], frames.shape[2], crop)
    x = torch.from_numpy(np.ascontiguousarray(frames[:, top:top + side, left:left + side])).permute(0, 3, 1, 2)
    x = x.float().div_(255.0)
    if side != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    m = torch.as_tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    s = torch.as_tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return (x - m) / s


def prepare_masks(masks: np.ndarray, crop: float, size: int) -> torch.Tensor:
    """``(T, H, W)`` bool -> ``(T, 1, size, size)`` float {0, 1}, cropped like the frames."""
    top, left, side = centre_box(masks.shape[1], masks.shape[2], crop)
    m = torch.from_numpy(np.ascontiguousarray(masks[:, top:top + side, left:left + side])).float().unsqueeze(1)
    if side != size:
        m = (F.interpolate(m, size=(size, size), mode="area") >= 0.5).float()
    return m


class MRJetClips(torch.utils.data.Dataset):
    """Clips of colour-Doppler videos with their max-frame labels and jet masks.

    Item: ``video (T, 3, S, S)`` float, ``e (T,)`` float one-hot max frames,
    ``jet (T, 1, S, S)`` float masks, ``valid (T,)`` bool (False on zero padding),
    ``name``, ``start``. With ``length=None`` an item is the whole video (use
    batch size 1); otherwise a random window of ``length`` frames in training
    (``train=True``) or the first window otherwise, zero-padded when the video is shorter.

    Args:
        samples: items per epoch; names are cycled (so a 10%-label run takes as many
            steps as a 100% one).
    """

    def __init__(self, root, names, *, length: int | None, crop: float, size: int, mean, std,
                 train: bool = False, samples: int | None = None, cache: FrameCache | None = None):
        self.root = Path(root)
        self.names = list(names)
        if not self.names:
            raise DataError(self.root / INDEX_FILE, "lists no usable video for this split")
        self.length, self.crop, self.size = length, crop, size
        self.mean, self.std = list(mean), list(std)
        self.train = train
        self.samples = max(int(samples or 0), len(self.names))
        self.cache = cache or FrameCache()

    def __len__(self) -> int:
        return self.samples

    def __getitem__(self, index: int) -> dict:
        name = self.names[index % len(self.names)]
        frames = self.cache.get(self.root / "Videos" / f"{name}.avi")
        truth = load_truth(self.root, name)
        n = min(len(frames), len(truth["e"]))
        length = self.length or n
        start = int(np.random.randint(0, max(1, n - length + 1))) if self.train else 0
        stop = min(n, start + length)
        video = prepare_frames(np.asarray(frames[start:stop]), self.crop, self.size, self.mean, self.std)
        jet = prepare_masks(truth["jet"][start:stop], self.crop, self.size)
        e = torch.from_numpy(truth["e"][start:stop].astype(np.float32))
        valid = torch.ones(stop - start, dtype=torch.bool)
        pad = length - (stop - start)
        if pad > 0:
            video = torch.cat([video, video.new_zeros((pad,) + video.shape[1:])])
            jet = torch.cat([jet, jet.new_zeros((pad,) + jet.shape[1:])])
            e = torch.cat([e, e.new_zeros(pad)])
            valid = torch.cat([valid, valid.new_zeros(pad)])
        return {"video": video, "e": e, "jet": jet, "valid": valid, "name": name, "start": start}


class MRJetFrames(torch.utils.data.Dataset):
    """Single frames for jigsaw pre-training; item = ``frame (3, H, W)`` uint8 of a random frame.

    ``frames_per_video`` items per video per epoch, each a frame drawn at random.
    A ``transform`` (e.g. :class:`echossl.methods.mrjet.JigsawViews`) turns the frame into
    the two tiled views.
    """

    def __init__(self, root, names, *, frames_per_video: int = 8, transform=None, cache: FrameCache | None = None):
        self.root = Path(root)
        self.names = list(names)
        if not self.names:
            raise DataError(self.root / INDEX_FILE, "lists no usable video for pre-training")
        self.frames_per_video = int(frames_per_video)
        self.transform = transform
        self.cache = cache or FrameCache()

    def __len__(self) -> int:
        return len(self.names) * self.frames_per_video

    def __getitem__(self, index: int):
        frames = self.cache.get(self.root / "Videos" / f"{self.names[index // self.frames_per_video]}.avi")
        f = int(np.random.randint(0, len(frames)))
        frame = torch.from_numpy(np.array(frames[f])).permute(2, 0, 1).contiguous()
        return self.transform(frame) if self.transform is not None else frame
