"""EchoNet-Dynamic: FileList.csv, VolumeTracings.csv, Videos/*.avi, and datasets.

Layout read (the real release, and the simulator's output)::

    ROOT/FileList.csv          FileName (no .avi), EF, ESV, EDV, FrameHeight,
                               FrameWidth, FPS, NumberOfFrames, Split
    ROOT/VolumeTracings.csv    FileName (with .avi), X1, Y1, X2, Y2, Frame
    ROOT/Videos/<FileName>.avi

Anything else in ROOT (e.g. the simulator's ``echossl_truth/``) is ignored by the
readers; :func:`load_truth` reads that folder on request.

Videos are read through :class:`~echossl.data.cache.FrameCache`, so each video
is decoded once and memory-mapped afterwards.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import warnings
from pathlib import Path, PurePosixPath, PureWindowsPath

import numpy as np
import pandas as pd
import torch

from echossl.data import sampling
from echossl.data.cache import FrameCache, default_cache_root
from echossl.data.resize import resize_frames, resize_mask
from echossl.data.splits import labeled_subset
from echossl.errors import ConfigError, DataError

REQUIRED_COLUMNS = ("FileName", "EF", "ESV", "EDV", "FrameHeight", "FrameWidth", "FPS",
                    "NumberOfFrames", "Split")
TRACING_COLUMNS = ("FileName", "X1", "Y1", "X2", "Y2", "Frame")
SPLITS = ("TRAIN", "VAL", "TEST")
MAX_COORD = 2.0**20  # |X1|, |Y1|, |X2|, |Y2| in VolumeTracings.csv: pixels, so far below this

# Problems that do not make a data folder unusable (the video is just left out),
# as the reference drops videos with fewer than 2 traced frames with a message.
WARNING_KINDS = {"few_traced_frames", "untracked_tracing"}


def _problem(path, message, row=None, kind="error") -> DataError:
    err = DataError(path, message, row=row)
    err.kind = kind  # consumed by check.py to tell errors from warnings
    return err


def _strip_avi(name: str) -> str:
    name = str(name).strip()
    return name[:-4] if name.lower().endswith(".avi") else name


MAX_NAME_BYTES = 250  # file systems allow 255 bytes per name, and readers add ".avi" and the like


def escapes(name: str) -> bool:
    """True when a FileName is not a plain file name inside its folder (``..``, a
    separator, an absolute or drive path, a control character, empty or too long)."""
    if name in ("", ".", "..") or len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        return True
    if "/" in name or "\\" in name or not name.isprintable():  # NUL, newlines, escape codes
        return True
    return PurePosixPath(name).is_absolute() or PureWindowsPath(name).is_absolute() or ":" in name


def outside_root(root: Path, path: Path) -> bool:
    """True when ``path``, with every symlink followed, is not inside the data folder
    ``root`` (itself resolved, so the data folder may be a link to another disk)."""
    try:
        return not Path(path).resolve().is_relative_to(Path(root).resolve())
    except (OSError, RuntimeError):  # a symlink loop
        return True


# ---------------------------------------------------------------------------
# FileList.csv
# ---------------------------------------------------------------------------

def _undecodable_row(path: Path) -> int | None:
    """1-based data row (header excluded) of the first record that is not UTF-8; None if unknown."""
    text = path.read_bytes().decode("utf-8", "surrogateescape")  # bad bytes become lone surrogates
    try:
        for i, record in enumerate(csv.reader(io.StringIO(text, newline=""))):
            try:
                "".join(record).encode("utf-8")
            except UnicodeEncodeError:
                return i or None
    except csv.Error:  # e.g. a field past csv's size limit: give the file only
        pass
    return None


def read_csv(path: Path, **options) -> pd.DataFrame:
    """``pd.read_csv`` whose every failure is a DataError naming the file and, where it
    can be found, the 1-based data row (not UTF-8, a row with too many fields).

    ``options`` go to pandas; by default every cell is read as text (so bad cells can
    be reported by row and a FileName like "0X1E3" stays a string).
    """
    if not path.is_file():
        raise _problem(path, "file does not exist")
    options = {"dtype": str, "keep_default_na": False, "skipinitialspace": True, **options}
    try:
        return pd.read_csv(path, **options)
    except UnicodeDecodeError as err:
        raise _problem(path, f"is not UTF-8 text (byte {err.object[err.start:err.start + 1].hex()} "
                             "cannot be decoded)", row=_undecodable_row(path)) from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        line = re.search(r"\bline (\d+)", text)  # pandas counts file lines from 1, header included
        row = int(line.group(1)) - 1 if line and int(line.group(1)) > 1 else None
        raise _problem(path, f"cannot be parsed as CSV ({text})", row=row) from None
    except Exception as err:  # anything else pandas raises on a hostile file is still the file's fault
        raise _problem(path, f"cannot be parsed as CSV ({type(err).__name__})") from None


def _filelist_problems(root: Path) -> tuple[pd.DataFrame, list[DataError]]:
    """Parse FileList.csv, returning the good rows and every problem found.

    Raises DataError only when the file cannot be used at all (missing, not CSV,
    missing columns).
    """
    path = root / "FileList.csv"
    df = read_csv(path)
    df.columns = [str(c).strip() for c in df.columns]
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise _problem(path, f"header lacks required column(s) {', '.join(missing)}", row=None)
    problems: list[DataError] = []
    bad = np.zeros(len(df), dtype=bool)

    names = df["FileName"].map(_strip_avi)
    for i, name in enumerate(names):
        if escapes(name):
            problems.append(_problem(path, f"FileName {name!r} is not a plain file name "
                                           "inside Videos/ (no '..', separators, absolute paths, "
                                           f"control characters or more than {MAX_NAME_BYTES} bytes)",
                                     row=i + 1))
            bad[i] = True
    videos = root / "Videos"
    for i, name in enumerate(names):
        target = videos / f"{name}.avi"
        # the file or Videos/ itself may be a link: where it really is must be inside root
        if not bad[i] and outside_root(root, target):
            problems.append(_problem(path, f"Videos/{name}.avi leads to {os.path.realpath(target)}, "
                                           "outside the data folder (through a symbolic link)", row=i + 1))
            bad[i] = True
    dup = names.duplicated(keep="first").to_numpy()
    for i in np.flatnonzero(dup & ~bad):
        first = int(np.flatnonzero((names == names.iloc[i]).to_numpy())[0]) + 1
        problems.append(_problem(path, f"duplicate FileName {names.iloc[i]!r} (first at row {first})",
                                 row=int(i) + 1))
    bad |= dup

    ef = pd.to_numeric(df["EF"], errors="coerce")
    for i in np.flatnonzero((ef.isna() | (ef < 0) | (ef > 100)).to_numpy()):
        problems.append(_problem(path, f"EF {df['EF'].iloc[i]!r} is not a number in [0, 100]",
                                 row=int(i) + 1))
        bad[i] = True

    split = df["Split"].astype(str).str.strip().str.upper()
    for i in np.flatnonzero(~split.isin(SPLITS).to_numpy()):
        problems.append(_problem(path, f"Split {df['Split'].iloc[i]!r} is not one of TRAIN, VAL, TEST",
                                 row=int(i) + 1))
        bad[i] = True

    out = df.copy()
    out["FileName"] = names
    out["Split"] = split
    for col in REQUIRED_COLUMNS:
        if col not in ("FileName", "Split"):
            out[col] = pd.to_numeric(out[col], errors="coerce")
    out["Row"] = np.arange(1, len(df) + 1)
    problems.sort(key=lambda e: e.row or 0)
    good = out[~bad].reset_index(drop=True)
    good.attrs["all_names"] = list(names)
    return good, problems


def read_filelist(root: str | Path) -> pd.DataFrame:
    """Read and validate ``ROOT/FileList.csv``.

    FileName loses a trailing ``.avi``; Split is upper-cased; numeric columns
    become numbers. A ``Row`` column gives each entry's 1-based CSV data row.

    Raises:
        DataError: naming the file and 1-based row, for the first of: a missing
            column, EF NaN or outside [0, 100], a duplicate FileName, an unknown
            Split, a FileName that escapes Videos/ (by its name, or by a symbolic
            link to outside the data folder).
    """
    df, problems = _filelist_problems(Path(root))
    if problems:
        raise problems[0]
    return df


# ---------------------------------------------------------------------------
# VolumeTracings.csv and masks
# ---------------------------------------------------------------------------

def _read_tracings_rows(root: Path):
    """Returns ``(traces, rows, problems)``; traces as :func:`read_tracings`, rows
    maps ``(name, frame)`` to the 1-based CSV row of that frame's first line."""
    path = root / "VolumeTracings.csv"
    df = read_csv(path)
    df.columns = [str(c).strip() for c in df.columns]
    missing = [c for c in TRACING_COLUMNS if c not in df.columns]
    if missing:
        raise _problem(path, f"header lacks required column(s) {', '.join(missing)}")
    problems = []
    coords = df[["X1", "Y1", "X2", "Y2"]].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
    frame = pd.to_numeric(df["Frame"], errors="coerce").to_numpy(np.float64)
    # NaN, inf and absurd values refused: past 2**31 a Frame or a rounded coordinate
    # overflows the int casts (Frame below, trace_mask) into garbage, silently
    with np.errstate(invalid="ignore"):
        bad = (~(np.abs(coords) < MAX_COORD).all(axis=1) | ~(frame >= 0) | (frame >= 2**31)
               | (frame != np.round(frame)))
    for i in np.flatnonzero(bad):
        problems.append(_problem(path, "X1, Y1, X2, Y2 must be pixel coordinates (finite, below 2**20 "
                                       "in size) and Frame a non-negative integer", row=int(i) + 1))
    names = df["FileName"].map(_strip_avi).to_numpy()
    traces: dict[str, dict[int, np.ndarray]] = {}
    rows: dict[tuple[str, int], int] = {}
    keep = np.flatnonzero(~bad)
    if keep.size:
        frame_i = frame[keep].astype(np.int64)
        # group rows by (name, frame) preserving file order inside a group
        key = pd.MultiIndex.from_arrays([names[keep], frame_i])
        codes, uniques = pd.factorize(key)
        order = np.argsort(codes, kind="stable")
        bounds = np.flatnonzero(np.diff(codes[order])) + 1
        for grp in np.split(order, bounds):
            name, f = uniques[codes[grp[0]]]
            traces.setdefault(name, {})[int(f)] = coords[keep[grp]]
            rows[(name, int(f))] = int(keep[grp[0]]) + 1
    return traces, rows, problems


def read_tracings(root: str | Path) -> dict[str, dict[int, np.ndarray]]:
    """Read ``ROOT/VolumeTracings.csv``.

    Returns:
        FileName (without ``.avi``) -> {frame: ``(n, 4)`` float64 array of
        ``X1, Y1, X2, Y2`` rows in file order (row 0 the long axis, then chords)}.

    Raises:
        DataError: missing file or column, or a non-numeric cell (with its row).
    """
    traces, _, problems = _read_tracings_rows(Path(root))
    if problems:
        raise problems[0]
    return traces


def trace_mask(coords: np.ndarray, height: int, width: int) -> np.ndarray:
    """Rasterise one traced frame as the reference does.

    ``x = concat(X1[1:], flip(X2[1:]))``, ``y = concat(Y1[1:], flip(Y2[1:]))``,
    then ``skimage.draw.polygon(rint(y), rint(x), (H, W))``: the long-axis row
    is left out and the chord ends are walked down one side and up the other.

    Args:
        coords: ``(n, 4)`` rows of X1, Y1, X2, Y2.

    Returns:
        ``(H, W)`` bool mask.
    """
    import skimage.draw

    coords = np.asarray(coords, dtype=np.float64)
    x1, y1, x2, y2 = coords.T
    x = np.concatenate((x1[1:], np.flip(x2[1:])))
    y = np.concatenate((y1[1:], np.flip(y2[1:])))
    r, c = skimage.draw.polygon(np.rint(y).astype(int), np.rint(x).astype(int), (height, width))
    mask = np.zeros((height, width), dtype=bool)
    mask[r, c] = True
    return mask


def ed_es_frames(traces: dict[int, np.ndarray], shape: tuple[int, int] | None = None) -> tuple[int, int]:
    """``(ed_frame, es_frame)`` of one video: the traced frame with the largest
    mask area is ED, the smallest ES — never the file order, which real files
    do not keep consistently.

    Args:
        traces: {frame: ``(n, 4)`` coords} of one video (at least 2 frames).
        shape: ``(H, W)`` for rasterising; default large enough for all coords.
    """
    if len(traces) < 2:
        raise ValueError("need at least 2 traced frames to tell ED from ES")
    if shape is None:
        top = max(float(np.nanmax(c)) for c in traces.values())
        shape = (int(top) + 2, int(top) + 2)
    areas = {f: int(trace_mask(c, *shape).sum()) for f, c in traces.items()}
    frames = sorted(areas)  # ties broken by frame number, deterministically
    ed = max(frames, key=lambda f: areas[f])
    es = min(frames, key=lambda f: areas[f])
    return ed, es


# ---------------------------------------------------------------------------
# splits
# ---------------------------------------------------------------------------

def labeled_split(filenames, fraction: float, seed: int = 0) -> tuple[list[str], list[str]]:
    """``(labeled, unlabeled)`` of ``filenames``: :func:`echossl.data.splits.labeled_subset`.

    Kept under this name for existing callers; ``seed`` here is the *split* seed
    (``cfg.get("split_seed", 0)``), never the training seed.
    """
    return labeled_subset(filenames, fraction, seed)


# ---------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------

# Per-process memo of per-video probes, keyed by (abs path, size, mtime_ns), and
# a persistent copy in the cache folder so that a new process (CLI, new run) does
# not reopen thousands of AVIs.
_PROBES: dict[str, list] = {}
_PROBES_LOADED: set[Path] = set()


def _probe_store() -> Path:
    return default_cache_root() / "video-probes.json"


def _load_probes() -> None:
    store = _probe_store()
    if store in _PROBES_LOADED:
        return
    _PROBES_LOADED.add(store)
    try:
        _PROBES.update(json.loads(store.read_text()))
    except (OSError, ValueError):
        pass


def _save_probes() -> None:
    store = _probe_store()
    try:
        store.parent.mkdir(parents=True, exist_ok=True)
        tmp = store.with_name(f"{store.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(_PROBES))
        os.replace(tmp, store)
    except OSError:
        pass  # the memo is an optimisation only


def probe_video(path: str | Path) -> tuple[int, int, int, str | None]:
    """``(frames, height, width, problem)`` of an AVI without decoding it all.

    Opens the file, reads the header's frame count, and decodes the last frame:
    a truncated MJPG AVI keeps the full count in its header but cannot seek to
    its last frame. ``problem`` is None for a good video.
    """
    import cv2

    from echossl.data.video import capture_int

    path = Path(path)
    try:
        st = path.stat()
    except OSError:
        return 0, 0, 0, "video file does not exist"
    key = f"{path.absolute()}|{st.st_size}|{st.st_mtime_ns}"
    hit = _PROBES.get(key)
    if hit is not None:
        return tuple(hit)  # type: ignore[return-value]
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            res = (0, 0, 0, "video cannot be opened (unreadable or truncated AVI)")
        else:
            n = capture_int(cap, cv2.CAP_PROP_FRAME_COUNT)
            h = capture_int(cap, cv2.CAP_PROP_FRAME_HEIGHT)
            w = capture_int(cap, cv2.CAP_PROP_FRAME_WIDTH)
            if n <= 0:
                res = (0, h, w, "video has 0 frames")
            else:
                cap.set(cv2.CAP_PROP_POS_FRAMES, n - 1)
                ok, _ = cap.read()
                res = (n, h, w, None if ok else
                       f"video is truncated: its header lists {n} frames but frame {n - 1} "
                       "cannot be decoded")
    finally:
        cap.release()
    _PROBES[key] = list(res)
    return res


_VALIDATED: dict[tuple, tuple] = {}


def _stamp(path: Path):
    try:
        st = path.stat()
        return (st.st_size, st.st_mtime_ns)
    except OSError:
        return None


def validate_full(root: str | Path) -> dict:
    """Everything :func:`validate` finds, plus what the datasets need.

    Returns a dict with ``filelist`` (good rows), ``usable`` (list), ``problems``
    (list of DataError with a ``kind`` attribute), ``frames`` ({name: n}),
    ``traces`` ({name: {frame: coords}}), ``ed_es`` ({name: (ed, es)}).
    Memoised on the size and mtime of FileList.csv, VolumeTracings.csv and Videos/.
    """
    root = Path(root)
    fl, vt, vids = root / "FileList.csv", root / "VolumeTracings.csv", root / "Videos"
    memo_key = (str(root.absolute()), _stamp(fl), _stamp(vt), _stamp(vids))
    if memo_key in _VALIDATED:
        # directory mtime changes when a video is added/removed/replaced by rename;
        # an in-place edit of one AVI is caught by the per-video probe key.
        res = _VALIDATED[memo_key]
        if all(_stamp(vids / f"{n}.avi") == s for n, s in res["stamps"].items()):
            return res
    _load_probes()

    df, problems = _filelist_problems(root)
    have_tracings = vt.is_file()
    traces, rows = {}, {}
    if have_tracings:
        try:
            traces, rows, tproblems = _read_tracings_rows(root)
            problems += tproblems
        except DataError as err:
            err.kind = "error"
            problems.append(err)
            have_tracings = False
    else:
        problems.append(_problem(vt, "file does not exist (videos are used without tracings)"))

    usable, frames, ed_es, stamps = [], {}, {}, {}
    for name, row in zip(df["FileName"], df["Row"]):
        vpath = vids / f"{name}.avi"
        n, h, w, msg = probe_video(vpath)
        stamps[name] = _stamp(vpath)
        if msg is not None:
            problems.append(_problem(vpath, f"{msg} (FileList.csv row {row})"))
            continue
        frames[name] = n
        ok = True
        if have_tracings:
            vtr = traces.get(name, {})
            for f, c in sorted(vtr.items()):
                r = rows[(name, f)]
                if c.shape[0] - 1 < 3:
                    problems.append(_problem(vt, f"tracing of {name}.avi frame {f} has "
                                                 f"{c.shape[0] - 1} chord(s); at least 3 are needed",
                                             row=r))
                    ok = False
                if f >= n:
                    problems.append(_problem(vt, f"traced Frame {f} of {name}.avi is past the "
                                                 f"video's end ({n} frames)", row=r))
                    ok = False
            if ok and len(vtr) < 2:
                problems.append(_problem(vt, f"{name}.avi has {len(vtr)} traced frame(s); "
                                             "ED and ES need 2, so it is left out",
                                         kind="few_traced_frames"))
                ok = False
            if ok:
                # the decoded size, not FrameHeight/FrameWidth: tracings are in video pixels
                ed_es[name] = ed_es_frames(vtr, (h, w))
        if ok:
            usable.append(name)
    if have_tracings:
        listed = set(df.attrs["all_names"])  # a bad FileList row is reported there, not here
        for name in sorted(set(traces) - listed):
            r = min(rows[(name, f)] for f in traces[name])
            problems.append(_problem(vt, f"{name}.avi is traced but not listed in FileList.csv",
                                     row=r, kind="untracked_tracing"))
    _save_probes()
    res = {"filelist": df, "usable": usable, "problems": problems, "frames": frames,
           "traces": traces, "ed_es": ed_es, "stamps": stamps, "have_tracings": have_tracings}
    _VALIDATED.clear()  # keep one folder's result; datasets keep their own reference
    _VALIDATED[memo_key] = res
    return res


def validate(root: str | Path, strict: bool = False) -> tuple[list[str], list[DataError]]:
    """Check an EchoNet-Dynamic folder without decoding whole videos.

    Returns:
        ``(usable, problems)``: the FileNames (whole set, all splits) that can be
        used, and one :class:`DataError` per problem naming file and row:
        unreadable/truncated/0-frame/missing AVI, a tracing with fewer than 3
        chords, a traced Frame past the video's end, fewer than 2 traced frames,
        and every FileList.csv problem of :func:`read_filelist`.

    Raises:
        DataError: with ``strict=True``, the first problem; without, only when
            FileList.csv itself is unusable.
    """
    res = validate_full(root)
    if strict and res["problems"]:
        raise res["problems"][0]
    return list(res["usable"]), list(res["problems"])


# ---------------------------------------------------------------------------
# datasets
# ---------------------------------------------------------------------------

def _as_cache(cache) -> FrameCache:
    if cache is None:
        return FrameCache()
    if isinstance(cache, FrameCache):
        return cache
    return FrameCache(cache)


def _channel_stats(value, name: str) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float32).reshape(-1)
    if arr.size == 1:
        arr = np.repeat(arr, 3)
    if arr.size != 3:
        raise ConfigError(f"{name} must be a scalar or 3 per-channel values, got {arr.size}")
    return arr


# Problems already reported by this process: a run names each bad video once, not
# once per dataset, per evaluation or per epoch.
_REPORTED: set[str] = set()


def warn_problems(root, problems, stacklevel: int = 2) -> list:
    """One warning listing the ``problems`` not yet reported in this process; returns those."""
    new = [p for p in problems if str(p) not in _REPORTED]
    if not new:
        return []
    _REPORTED.update(str(p) for p in new)
    shown = "; ".join(str(p) for p in new[:20])
    more = len(new) - 20
    warnings.warn(f"{root}: {len(new)} problem(s), affected videos are skipped: {shown}"
                  + (f"; and {more} more" if more > 0 else "")
                  + " (run `echossl data check` for the full list)", stacklevel=stacklevel + 1)
    return new


def _select(root: Path, split: str, filenames, strict: bool, warn: bool, what: str):
    split = str(split).upper()
    if split not in SPLITS + ("ALL",):
        raise ConfigError(f"split must be TRAIN, VAL, TEST or ALL, got {split!r}")
    res = validate_full(root)
    if strict and res["problems"]:
        raise res["problems"][0]
    if warn:
        warn_problems(root, res["problems"], stacklevel=3)
    df = res["filelist"]
    if split != "ALL":
        df = df[df["Split"] == split]
    if filenames is not None:
        wanted = {_strip_avi(f) for f in filenames}
        unknown = wanted - set(res["filelist"].attrs["all_names"])
        if unknown:
            raise ConfigError(f"{len(unknown)} requested FileName(s) are not in "
                              f"{root / 'FileList.csv'}, e.g. {sorted(unknown)[0]!r}")
        df = df[df["FileName"].isin(wanted)]
    df = df[df["FileName"].isin(set(res["usable"]))].reset_index(drop=True)
    if len(df) == 0:
        raise DataError(root / "FileList.csv", f"no usable {what} in split {split}"
                        + (" among the requested FileNames" if filenames is not None else "")
                        + " (run `echossl data check` on the folder)")
    return df, res


def _resize(x: torch.Tensor, size: int | None, mode: str = "bilinear") -> torch.Tensor:
    """Resize ``(N, C, H, W)`` float frames to ``size x size`` (bilinear, pixel centres aligned).

    Masks go through :func:`echossl.data.resize.resize_mask` instead, which
    resamples them the same way; legacy ``nearest`` is refused because it is
    half a pixel off the frames.
    """
    if mode != "bilinear":
        raise ValueError(f"frames are resized bilinearly; masks use resize_mask, got mode {mode!r}")
    if size is None:
        return x
    return resize_frames(x, size)


class EchoNetDynamic(torch.utils.data.Dataset):
    """Clips of EchoNet-Dynamic videos with their EF, EDV and ESV.

    Args:
        root: the dataset folder (FileList.csv, VolumeTracings.csv, Videos/).
        split: TRAIN, VAL, TEST or ALL (any case).
        filenames: optional subset of FileNames (e.g. the labeled part of TRAIN).
        length: frames per clip; None = the whole video (``n // period`` frames).
        period: step between sampled frames.
        clips: 1 (one clip, random start), ``"all"`` (every start, as the
            reference's test-time averaging) or k > 1 (k evenly spaced starts).
        pad: zero-pad each side by ``pad`` then random-crop back (augmentation).
        mean, std: scalars or per-channel (3,) values; frames become
            ``(x - mean) / std`` in float32 (0..255 scale in, like the reference).
        size: resize frames (bilinear) to ``size x size``.
        masks_dir: folder of ``<FileName>.npy`` uint8 ``(F, H, W)`` LV probabilities
            x255; adds a 4th channel ``p * 2 - 1`` in [-1, 1]. Padding (temporal
            and spatial) of that channel is -1, i.e. "no LV".
        cache: a FrameCache, a cache folder, or None for the default cache.
        strict: raise the first data problem instead of skipping bad videos.
        warn: emit one warning listing the skipped videos.
        transform: optional callable applied to each item dict last, e.g. a MONAI
            dictionary transform (``monai.transforms.ScaleIntensityd(keys="video")``)
            or ``torchvision.transforms.v2`` transforms that accept dicts.

    Items (``C`` = 3, or 4 with ``masks_dir``):
        ``video``: float32 ``(C, T, H, W)`` for one clip, ``(K, C, T, H, W)`` for several;
        ``EF``, ``EDV``, ``ESV``: float32 scalar tensors; ``filename``: str; ``index``: int.
    """

    def __init__(self, root, split="TRAIN", *, filenames=None, length=32, period=2, clips=1,
                 pad=None, mean=0.0, std=1.0, size=None, masks_dir=None, cache=None,
                 strict=False, warn=True, transform=None):
        self.root = Path(root)
        self.transform = transform  # called on the item dict (MONAI dictionary or torchvision transforms)
        self.split = str(split).upper()
        if not (clips == "all" or (isinstance(clips, (int, np.integer)) and clips >= 1)):
            raise ConfigError(f"clips must be a positive integer or 'all', got {clips!r}")
        df, res = _select(self.root, split, filenames, strict, warn, "videos")
        self.filelist = df
        self.filenames: list[str] = list(df["FileName"])
        self.ef = df["EF"].to_numpy(np.float32)
        self.edv = df["EDV"].to_numpy(np.float32)
        self.esv = df["ESV"].to_numpy(np.float32)
        self.n_frames = np.array([res["frames"][n] for n in self.filenames], dtype=np.int64)
        self.length, self.period, self.clips, self.pad = length, int(period), clips, pad
        self.mean = _channel_stats(mean, "mean")
        self.std = _channel_stats(std, "std")
        self.size = size
        self.masks_dir = Path(masks_dir) if masks_dir is not None else None
        self.cache = _as_cache(cache)

    def __len__(self) -> int:
        return len(self.filenames)

    def video_path(self, i: int) -> Path:
        return self.root / "Videos" / f"{self.filenames[i]}.avi"

    def _starts(self, n: int) -> np.ndarray:
        if self.clips == "all":
            return sampling.all_starts(n, self.length, self.period)
        if self.clips == 1:
            starts = sampling.all_starts(n, self.length, self.period)
            return starts[int(torch.randint(len(starts), (1,)))][None]
        return sampling.spaced_starts(n, self.length, self.period, int(self.clips))

    def __getitem__(self, i: int) -> dict:
        name = self.filenames[i]
        frames = self.cache.get(self.video_path(i))  # (F, H, W, 3) uint8 memmap
        n = frames.shape[0]
        length = sampling.effective_length(n, self.length, self.period)
        starts = self._starts(n)
        idx = (starts[:, None] + self.period * np.arange(length)[None, :]).reshape(-1)  # (K*T,)
        valid = idx < n
        # decode each distinct frame once (clips="all" overlaps heavily)
        uniq, inverse = np.unique(idx[valid], return_inverse=True)
        x = torch.from_numpy(np.ascontiguousarray(frames[uniq])).permute(0, 3, 1, 2).float()
        x = _resize(x, self.size, "bilinear")
        x = (x - torch.from_numpy(self.mean)[None, :, None, None]) / torch.from_numpy(self.std)[None, :, None, None]
        h, w = x.shape[-2:]
        channels = [x]
        fills = [0.0]
        if self.masks_dir is not None:
            mpath = self.masks_dir / f"{name}.npy"
            try:
                probs = np.load(mpath, mmap_mode="r")
            except (OSError, ValueError) as err:
                raise DataError(mpath, f"cannot read predicted mask ({err})") from None
            if probs.shape[0] != n:
                raise DataError(mpath, f"has {probs.shape[0]} frames but the video has {n}")
            m = torch.from_numpy(np.ascontiguousarray(probs[uniq])).float()[:, None] / 255.0
            if tuple(m.shape[-2:]) != (h, w):  # resized like the frames
                m = torch.nn.functional.interpolate(m, size=(h, w), mode="bilinear", align_corners=False)
            channels.append(m * 2.0 - 1.0)
            fills.append(-1.0)
        c = sum(t.shape[1] for t in channels)
        out = torch.empty((idx.shape[0], c, h, w), dtype=torch.float32)
        k = 0
        for t, fill in zip(channels, fills):
            block = out[:, k : k + t.shape[1]]
            block.fill_(fill)  # padding frames past the end
            block[torch.from_numpy(valid)] = t[torch.from_numpy(inverse.reshape(-1))]
            k += t.shape[1]
        if self.pad:
            oi, oj = sampling.pad_crop_offsets(int(self.pad))
            k = 0
            for t, fill in zip(channels, fills):
                out[:, k : k + t.shape[1]] = sampling.pad_crop(out[:, k : k + t.shape[1]],
                                                              int(self.pad), oi, oj, fill)
                k += t.shape[1]
        video = out.reshape(len(starts), length, c, h, w).permute(0, 2, 1, 3, 4).contiguous()
        if self.clips == 1:
            video = video[0]
        item = {
            "video": video,
            "EF": torch.tensor(self.ef[i], dtype=torch.float32),
            "EDV": torch.tensor(self.edv[i], dtype=torch.float32),
            "ESV": torch.tensor(self.esv[i], dtype=torch.float32),
            "filename": name,
            "index": int(i),
        }
        return self.transform(item) if self.transform is not None else item


class EchoNetFrames(torch.utils.data.Dataset):
    """The traced ED and ES frames with their LV masks, for supervised segmentation.

    Two items per usable video: index ``2*v`` is ED, ``2*v + 1`` ES (by traced area).
    With ``size``, the frame is resized bilinearly and the mask with the same
    resampling then thresholded (:func:`echossl.data.resize.resize_mask`), so both
    stay on one pixel grid.

    Items:
        ``image``: float32 ``(3, H, W)``, ``(x - mean) / std``;
        ``mask``: float32 ``(1, H, W)`` in {0, 1}; ``filename``: str;
        ``phase``: 0 for ED, 1 for ES; ``frame``: int frame number in the video.
    """

    def __init__(self, root, split="TRAIN", *, filenames=None, mean=0.0, std=1.0, size=None,
                 cache=None, strict=False, pad=None, warn=True, transform=None):
        self.root = Path(root)
        self.transform = transform  # called on the item dict, like EchoNetDynamic's
        self.split = str(split).upper()
        df, res = _select(self.root, split, filenames, strict, warn, "traced videos")
        if not res["have_tracings"]:
            raise DataError(self.root / "VolumeTracings.csv", "is needed for segmentation frames")
        self.filenames = list(df["FileName"])
        self.traces = {n: res["traces"][n] for n in self.filenames}
        self.ed_es = {n: res["ed_es"][n] for n in self.filenames}
        self.mean = _channel_stats(mean, "mean")
        self.std = _channel_stats(std, "std")
        self.size, self.pad = size, pad
        self.cache = _as_cache(cache)

    def __len__(self) -> int:
        return 2 * len(self.filenames)

    def __getitem__(self, i: int) -> dict:
        name = self.filenames[i // 2]
        phase = i % 2
        frame = self.ed_es[name][phase]
        frames = self.cache.get(self.root / "Videos" / f"{name}.avi")
        h, w = frames.shape[1:3]
        image = torch.from_numpy(np.array(frames[frame])).permute(2, 0, 1).float()[None]
        mask = torch.from_numpy(trace_mask(self.traces[name][frame], h, w)).float()[None, None]
        image = _resize(image, self.size, "bilinear")[0]
        if self.size is not None:  # resampled like the frame, so it stays on the frame's LV edge
            mask = resize_mask(mask, self.size)
        mask = mask[0]
        image = (image - torch.from_numpy(self.mean)[:, None, None]) / torch.from_numpy(self.std)[:, None, None]
        if self.pad:
            oi, oj = sampling.pad_crop_offsets(int(self.pad))
            image = sampling.pad_crop(image, int(self.pad), oi, oj, 0.0)
            mask = sampling.pad_crop(mask, int(self.pad), oi, oj, 0.0)
        item = {"image": image, "mask": mask, "filename": name, "phase": phase, "frame": int(frame)}
        return self.transform(item) if self.transform is not None else item


def compute_mean_std(root, filenames, samples: int = 128, seed: int = 0, cache=None,
                     frames_per_video: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std ``(3,)`` float32 on the 0..255 scale.

    Uses up to ``samples`` videos drawn with ``seed`` (the reference uses 128
    training videos) and up to ``frames_per_video`` evenly spaced frames of each,
    which changes the estimate negligibly and reads far less.
    """
    root = Path(root)
    names = sorted(_strip_avi(f) for f in filenames)
    if not names:
        raise DataError(root / "FileList.csv", "no videos to compute the mean and std from")
    rng = np.random.default_rng(seed)
    if len(names) > samples:
        names = [names[i] for i in sorted(rng.choice(len(names), samples, replace=False))]
    cache = _as_cache(cache)
    total = np.zeros(3)
    total_sq = np.zeros(3)
    count = 0
    for name in names:
        frames = cache.get(root / "Videos" / f"{name}.avi")
        pick = np.unique(np.linspace(0, frames.shape[0] - 1, min(frames_per_video, frames.shape[0])).astype(int))
        x = np.asarray(frames[pick], dtype=np.float64).reshape(-1, 3)
        total += x.sum(axis=0)
        total_sq += (x**2).sum(axis=0)
        count += x.shape[0]
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))
    return mean.astype(np.float32), np.maximum(std, 1e-6).astype(np.float32)


def load_truth(root, filename: str) -> dict | None:
    """The simulator's ground truth for one video, or None for real data.

    Reads ``ROOT/echossl_truth/<FileName>.npz`` (``masks`` ``(F, H, W)`` bool true
    LV per frame, ``volume``, ``ed_frames``, ``es_frames``, ``traced_ed``,
    ``traced_es``) and adds ``meta`` from ``ROOT/echossl_truth/meta.json`` if present.
    """
    folder = Path(root) / "echossl_truth"
    path = folder / f"{_strip_avi(filename)}.npz"
    if escapes(_strip_avi(filename)) or not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            out = {k: npz[k] for k in npz.files}
    except (OSError, ValueError) as err:
        raise DataError(path, f"cannot read ground-truth file ({err})") from None
    meta = folder / "meta.json"
    if meta.is_file():
        try:
            out["meta"] = json.loads(meta.read_text())
        except ValueError as err:
            raise DataError(meta, f"is not valid JSON ({err})") from None
    return out
