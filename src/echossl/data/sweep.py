"""Narrated ultrasound sweeps: reader, ``echossl data check`` plug-in, and Datasets.

The on-disk layout (written by :mod:`echossl.simulate.sweep`, and the form to put
real video-speech-gaze data in)::

    DIR/sweeps.csv            FileName,Split,NumberOfFrames,FPS,FrameHeight,FrameWidth,SampleRate,Seconds
    DIR/sweep.json            {"planes": [class names], "gaze_window_frames": w, "gaze_sigma_px": s, ...}
    DIR/Videos/<name>.avi     the scan (grey; any codec OpenCV reads)
    DIR/Audio/<name>.wav      mono PCM narration, any sample rate (resampled to 24 kHz on load)
    DIR/Labels/<name>.csv     Frame,Plane,GazeX,GazeY   (Plane: a name from sweep.json; empty = unlabelled)
    DIR/Saliency/<name>.npz   maps: (F, H, W) uint8 gaze saliency per frame (optional; made from the
                              gaze points when missing: Gaussians of sigma s over frames t-w..t+w)

Split is TRAIN, VAL or TEST (any case). Audio and video must cover the same time
(``NumberOfFrames / FPS`` within 0.25 s of the WAV's length): the video-speech
method pairs frame ``t`` with speech at ``t / FPS`` seconds.

Datasets:

* :class:`VideoSpeechIntervals` — pre-training (video-speech-contrastive.md Sec. 2):
  one item per interval T of ``interval_seconds``; K hard-positive pairs
  ``(v_i, s_j)`` with ``i, j`` drawn independently in T, K hard negatives
  ``s_t'`` from ``T' = T + delta`` with ``0 < |delta| < D`` intervals, the
  energy-VAD affinity of every fragment, and a 4-frame order clip with its
  12-class label.
* :class:`PlaneFrames` — standard-plane classification, one frame every ``step``.
* :class:`SaliencyFrames` — gaze saliency: frame, density map and fixation map.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from echossl.data.echonet import escapes, outside_root, read_csv
from echossl.errors import DataError
from echossl.io import npz_shapes

SPLITS = ("TRAIN", "VAL", "TEST")
MEMBERS = (("Videos", ".avi"), ("Audio", ".wav"), ("Labels", ".csv"), ("Saliency", ".npz"))  # per FileName
REQUIRED = ["FileName", "Split", "NumberOfFrames", "FPS"]
SAMPLE_RATE = 24_000
# Fixed intensity normalisation of grey frames in [0, 255] (the simulator's fan
# images average about 0.2 with a spread of about 0.25).
PIXEL_MEAN, PIXEL_STD = 0.2, 0.25


def detect(path) -> bool:
    return (Path(path) / "sweeps.csv").is_file()


def read_meta(root) -> dict:
    path = Path(root) / "sweep.json"
    if not path.is_file():
        raise DataError(path, "file does not exist (it lists the plane names)")
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise DataError(path, f"is not valid JSON ({err.msg} at line {err.lineno})") from None
    except (ValueError, RecursionError) as err:  # not UTF-8; nested too deep
        raise DataError(path, f"is not valid JSON ({type(err).__name__})") from None
    planes = meta.get("planes") if isinstance(meta, dict) else None
    if (not isinstance(planes, list) or len(planes) < 2 or not all(isinstance(p, str) and p for p in planes)
            or len(set(planes)) != len(planes)):
        raise DataError(path, "must hold a list 'planes' of at least two distinct class names")
    meta.setdefault("gaze_window_frames", 4)
    meta.setdefault("gaze_sigma_px", 3.0)
    for key, top in (("gaze_window_frames", 1000), ("gaze_sigma_px", 1000.0)):
        value = meta[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= top:
            raise DataError(path, f"{key} {value!r} is not a number in [0, {top}]")
    return meta


def read_sweeps(root) -> pd.DataFrame:
    """``sweeps.csv`` with Split upper-cased; DataError naming the row for bad values."""
    path = Path(root) / "sweeps.csv"
    if not path.is_file():
        raise DataError(path, "file does not exist")
    table = read_csv(path, dtype={"FileName": str, "Split": str}, keep_default_na=True, skipinitialspace=False)
    missing = [c for c in REQUIRED if c not in table.columns]
    if missing:
        raise DataError(path, f"lacks column(s) {', '.join(missing)}")
    table["Split"] = table["Split"].astype(str).str.strip().str.upper()
    root = Path(root)
    for i, row in enumerate(table.itertuples(index=False), start=1):
        name = row.FileName
        if not isinstance(name, str) or escapes(name):
            raise DataError(path, f"FileName {name!r} is not a plain file name (no '..', separators, absolute "
                                  "paths, control characters or more than 250 bytes)", row=i)
        for sub, ext in MEMBERS:
            if outside_root(root, root / sub / f"{name}{ext}"):
                raise DataError(path, f"{sub}/{name}{ext} leads outside the data folder (through a symbolic link)",
                                row=i)
        if row.Split not in SPLITS:
            raise DataError(path, f"Split {row.Split!r} is not TRAIN, VAL or TEST", row=i)
        try:
            fps, frames = float(row.FPS), float(row.NumberOfFrames)
            ok = 0 < fps < 10_000 and 0 < frames < 2**31 and frames.is_integer()
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise DataError(path, f"FPS {row.FPS!r} and NumberOfFrames {row.NumberOfFrames!r} must be positive "
                                  "numbers (NumberOfFrames a whole one)", row=i)
    if table["FileName"].duplicated().any():
        dup = int(np.flatnonzero(table["FileName"].duplicated().to_numpy())[0]) + 1
        raise DataError(path, f"FileName {table['FileName'].iloc[dup - 1]!r} appears twice", row=dup)
    # checked above: whatever dtype pandas guessed, these are now plain numbers
    table["NumberOfFrames"] = pd.to_numeric(table["NumberOfFrames"]).astype(np.int64)
    table["FPS"] = pd.to_numeric(table["FPS"]).astype(np.float64)
    return table


def read_labels(root, name: str, planes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """``Labels/<name>.csv`` -> plane index per frame ``(F,)`` (-1 unlabelled) and gaze ``(F, 2)`` (x, y)."""
    path = Path(root) / "Labels" / f"{name}.csv"
    if not path.is_file():
        raise DataError(path, "label file does not exist")
    table = read_csv(path, skipinitialspace=False)  # all text: cells are checked below, by row
    missing = [c for c in ("Frame", "Plane") if c not in table.columns]
    if missing:
        raise DataError(path, f"lacks column(s) {', '.join(missing)}")
    index = {p: i for i, p in enumerate(planes)}
    codes = np.array([index.get(p, -2) if p != "" else -1 for p in table["Plane"]], dtype=np.int64)
    if (codes == -2).any():
        row = int(np.flatnonzero(codes == -2)[0]) + 1
        raise DataError(path, f"plane {table['Plane'].iloc[row - 1]!r} is not one of sweep.json's planes", row=row)
    frames = table["Frame"].str.strip().to_numpy()
    expected = np.arange(len(frames)).astype(str)
    if not np.array_equal(frames, expected):
        row = int(np.flatnonzero(frames != expected)[0]) + 1
        raise DataError(path, "Frame must count 0, 1, 2, ... one row per frame", row=row)
    gaze = np.full((len(table), 2), np.nan, dtype=np.float32)
    if {"GazeX", "GazeY"} <= set(table.columns):
        for k, col in enumerate(("GazeX", "GazeY")):
            text = table[col].str.strip()
            values = pd.to_numeric(text, errors="coerce").to_numpy(np.float64)
            # empty = no gaze in that frame; anything else must be a finite pixel position
            bad = (text != "") & ~(np.abs(values) < 2**20)
            if bad.any():
                row = int(np.flatnonzero(bad)[0]) + 1
                raise DataError(path, f"{col} {table[col].iloc[row - 1]!r} is not a pixel position", row=row)
            gaze[:, k] = values
    return codes, gaze


def read_audio(root, name: str, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """``Audio/<name>.wav`` as mono float32 in [-1, 1] at ``sample_rate`` Hz."""
    from scipy.signal import resample_poly

    path = Path(root) / "Audio" / f"{name}.wav"
    if not path.is_file():
        raise DataError(path, "audio file does not exist")
    sr, data = _read_wav(path)
    data = np.asarray(data)
    if not 0 < sr <= 1_000_000 or data.size == 0 or data.dtype.kind not in "iuf":
        raise DataError(path, f"holds no usable audio (sample rate {sr} Hz, {data.size} samples of {data.dtype})")
    if data.dtype.kind == "f" and not np.isfinite(data).all():
        raise DataError(path, "has NaN or infinite samples")
    if data.ndim == 2:
        data = data.mean(1)
    if data.dtype.kind == "i":
        data = data.astype(np.float32) / float(np.iinfo(data.dtype).max)
    elif data.dtype.kind == "u":
        data = (data.astype(np.float32) - 128) / 128.0
    data = data.astype(np.float32)
    if sr != sample_rate:
        g = np.gcd(int(sr), int(sample_rate))
        data = resample_poly(data, sample_rate // g, int(sr) // g).astype(np.float32)
    return data


def _read_wav(path: Path, mmap: bool = False):
    """``scipy.io.wavfile.read``, every failure a DataError (a truncated file too:
    scipy returns the samples before the end with only a warning)."""
    from scipy.io import wavfile

    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("error", "Reached EOF prematurely", wavfile.WavFileWarning)
            return wavfile.read(path, mmap=mmap)
    except wavfile.WavFileWarning:
        raise DataError(path, "is truncated: it ends before the sample count its header gives") from None
    except Exception as err:
        raise DataError(path, f"cannot be read as WAV ({err.__class__.__name__})") from None


def wav_seconds(path) -> float:
    """Duration of a WAV from its header (no decoding of the samples)."""
    sr, data = _read_wav(Path(path), mmap=True)
    if not 0 < sr <= 1_000_000:
        raise DataError(path, f"has a sample rate of {sr} Hz")
    return len(data) / float(sr)


def read_frames(root, name: str) -> np.ndarray:
    """``(F, H, W)`` uint8 grey frames (decoded once into the frame cache)."""
    from echossl.data.cache import FrameCache

    return np.asarray(FrameCache().get(Path(root) / "Videos" / f"{name}.avi")[..., 0])


def saliency_from_gaze(gaze: np.ndarray, size: tuple[int, int], window: int, sigma: float) -> np.ndarray:
    """``(F, H, W)`` uint8 maps from gaze points (NaN = no gaze), as the simulator makes them."""
    from scipy import ndimage

    n, (h, w) = len(gaze), size
    counts = np.zeros((n, h, w), dtype=np.float32)
    ok = np.isfinite(gaze).all(1)
    xi = np.clip(np.rint(gaze[ok, 0]).astype(int), 0, w - 1)
    yi = np.clip(np.rint(gaze[ok, 1]).astype(int), 0, h - 1)
    counts[np.flatnonzero(ok), yi, xi] = 1.0
    acc = ndimage.uniform_filter1d(counts, 2 * window + 1, axis=0, mode="constant") * (2 * window + 1)
    maps = ndimage.gaussian_filter(acc, sigma=(0, sigma, sigma), mode="constant")
    maps /= maps.reshape(n, -1).max(1)[:, None, None] + 1e-12
    return np.rint(maps * 255).astype(np.uint8)


# --------------------------------------------------------------------------- #
# data check
# --------------------------------------------------------------------------- #

def _problem(err: DataError, severity: str = "error") -> dict:
    return {"file": str(err.path), "row": err.row, "message": err.message, "text": str(err), "severity": severity}


def _stats(values) -> dict:
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return {"mean": None, "sd": None, "min": None, "max": None}
    return {"mean": round(float(v.mean()), 3), "sd": round(float(v.std(ddof=1)) if v.size > 1 else 0.0, 3),
            "min": round(float(v.min()), 3), "max": round(float(v.max()), 3)}


def check(path) -> dict:
    """Report for ``echossl data check``: counts per split, usable scans, problems by file and row."""
    from echossl.data.video import video_info

    root = Path(path)
    problems: list[dict] = []
    try:
        table = read_sweeps(root)
        meta = read_meta(root)
    except DataError as err:
        return {"counts": {"usable": 0}, "ef": _stats([]), "frames": _stats([]), "fps": _stats([]),
                "problems": [_problem(err)]}
    usable, frames, seconds, fps = [], [], [], []
    for i, row in enumerate(table.itertuples(index=False), start=1):
        name = row.FileName
        try:
            avi = root / "Videos" / f"{name}.avi"
            if not avi.is_file():
                raise DataError(avi, "video file does not exist")
            info = video_info(avi)
            if info["frames"] <= 0:
                raise DataError(avi, "video has no frames")
            if abs(info["frames"] - int(row.NumberOfFrames)) > 1:
                raise DataError(root / "sweeps.csv", f"NumberOfFrames {row.NumberOfFrames} but {avi.name} has "
                                                     f"{info['frames']} frames", row=i)
            wav = root / "Audio" / f"{name}.wav"
            if not wav.is_file():
                raise DataError(wav, "audio file does not exist")
            dur = wav_seconds(wav)
            video_s = int(row.NumberOfFrames) / float(row.FPS)
            if abs(dur - video_s) > 0.25:
                raise DataError(wav, f"lasts {dur:.2f} s but the video lasts {video_s:.2f} s, so they cannot be aligned")
            codes, _ = read_labels(root, name, meta["planes"])
            if len(codes) != int(row.NumberOfFrames):
                raise DataError(root / "Labels" / f"{name}.csv",
                                f"has {len(codes)} frame rows but the video has {row.NumberOfFrames} frames")
            sal = root / "Saliency" / f"{name}.npz"
            if sal.is_file():
                shape = npz_shapes(sal).get("maps")  # headers only
                if shape != (int(row.NumberOfFrames), info["height"], info["width"]):
                    raise DataError(sal, f"must hold 'maps' of shape (frames, height, width) = "
                                         f"{(int(row.NumberOfFrames), info['height'], info['width'])}, not {shape}")
            usable.append(name)
            frames.append(int(row.NumberOfFrames))
            seconds.append(video_s)
            fps.append(float(row.FPS))
        except DataError as err:
            if err.row is None:  # a scan file's problem: say which sweeps.csv row it came from
                err = DataError(err.path, f"{err.message} (sweeps.csv row {i})")
            problems.append(_problem(err))
    counts = {s: int((table["Split"] == s).sum()) for s in SPLITS}
    counts["total"] = len(table)
    counts["usable"] = len(usable)
    counts["usable_by_split"] = {s: int(table.loc[table["FileName"].isin(usable), "Split"].eq(s).sum()) for s in SPLITS}
    # same summary keys as the EchoNet check (EF does not apply to sweeps)
    return {"counts": counts, "planes": meta["planes"], "problems": problems, "ef": _stats([]),
            "frames": _stats(frames), "fps": _stats(fps), "seconds_total": round(float(sum(seconds)), 2)}


# --------------------------------------------------------------------------- #
# In-memory scans
# --------------------------------------------------------------------------- #

@dataclass
class Scan:
    name: str
    frames: np.ndarray      # (F, H, W) uint8
    audio: np.ndarray       # (N,) float32 at sample_rate
    planes: np.ndarray      # (F,) int64, -1 unlabelled
    gaze: np.ndarray        # (F, 2) float32 (x, y) px
    fps: float
    voiced: np.ndarray | None = None  # (M,) bool energy-VAD decision per 10 ms audio frame


def load_split(root, split: str, *, names: list[str] | None = None, with_vad: dict | None = None) -> list[Scan]:
    """Every scan of ``split`` (or of ``names``) in memory; ``with_vad`` = kwargs of :func:`energy_vad`."""
    from echossl.data.signal import energy_vad

    root = Path(root)
    table = read_sweeps(root)
    meta = read_meta(root)
    rows = table[table["Split"] == split] if names is None else table[table["FileName"].isin(names)]
    scans = []
    for row in rows.itertuples(index=False):
        codes, gaze = read_labels(root, row.FileName, meta["planes"])
        frames = read_frames(root, row.FileName)
        if len(codes) != len(frames):  # the datasets index labels by frame
            raise DataError(root / "Labels" / f"{row.FileName}.csv",
                            f"has {len(codes)} frame rows but the video decodes to {len(frames)} frames")
        scan = Scan(row.FileName, frames, read_audio(root, row.FileName), codes, gaze, float(row.FPS))
        if with_vad is not None:
            scan.voiced = energy_vad(torch.from_numpy(scan.audio), SAMPLE_RATE, **with_vad).numpy()
        scans.append(scan)
    return scans


def normalise_frames(frames: np.ndarray | torch.Tensor, size: int | None = None) -> torch.Tensor:
    """``(..., H, W)`` uint8 -> ``(..., 1, size, size)`` float, fixed normalisation."""
    x = torch.from_numpy(np.array(frames, dtype=np.float32)).div(255.0).sub(PIXEL_MEAN).div(PIXEL_STD).unsqueeze(-3)
    if size and tuple(x.shape[-2:]) != (size, size):
        lead = x.shape[:-3]
        x = F.interpolate(x.reshape(-1, 1, *x.shape[-2:]), size=(size, size), mode="bilinear", align_corners=False)
        x = x.reshape(*lead, 1, size, size)
    return x


def inner_crop(frames: torch.Tensor, fraction: float) -> torch.Tensor:
    """Centre crop keeping ``fraction`` of height and width: the inside of the fan (Sec. 2.3, no fan-edge cues)."""
    h, w = frames.shape[-2:]
    ch, cw = max(1, int(round(h * fraction))), max(1, int(round(w * fraction)))
    top, left = (h - ch) // 2 + int(0.1 * (h - ch)), (w - cw) // 2  # a little deeper: the fan's apex is narrow
    return frames[..., top:top + ch, left:left + cw]


# --------------------------------------------------------------------------- #
# Pre-training intervals
# --------------------------------------------------------------------------- #

def sample_pairs(rng: np.random.Generator, n_intervals: int, interval: int, groups: int, shift_range: int) -> dict:
    """Hard pairs for one interval ``interval`` of a scan with ``n_intervals`` intervals (Sec. 2.1).

    Returns ``{"video_pos": (K,), "speech_pos": (K,), "speech_neg": (K,)}`` as
    offsets in [0, 1) within their interval, and ``"neg_interval"``, the
    interval T' = T + delta with ``0 < |delta| < shift_range`` (one delta per
    interval, reflected when it would leave the scan). The positive speech
    offset is drawn independently of the video offset: the alignment inside
    T is perturbed (hard positives).
    """
    if n_intervals < 2:
        raise ValueError("a scan needs at least two intervals for hard negatives")
    reach = max(1, min(shift_range - 1, n_intervals - 1))
    delta = int(rng.integers(1, reach + 1)) * (1 if rng.random() < 0.5 else -1)
    if not 0 <= interval + delta < n_intervals:
        delta = -delta
    if not 0 <= interval + delta < n_intervals:  # very short scan: nearest other interval
        delta = 1 if interval + 1 < n_intervals else -1
    return {"video_pos": rng.random(groups), "speech_pos": rng.random(groups), "speech_neg": rng.random(groups),
            "neg_interval": interval + delta, "delta": delta}


class VideoSpeechIntervals(Dataset):
    """One item per interval T of every scan (video-speech-contrastive.md Sec. 2.1-2.3).

    Item (K = ``groups``, L = excerpt samples, S = ``size``)::

        frames         (K, 1, S, S)   v_ik: one frame per group, at a random time in T
        speech_pos     (K, L)         s_jk: speech excerpts centred at random times in T
        speech_neg     (K, L)         s_t'k: excerpts from T' = T + delta, 0 < |delta| < D
        high_affinity  (K,) bool      VAD: both the positive and the negative excerpt are mostly speech
                                      (pos_voiced & neg_voiced; see below)
        pos_voiced     (K,) bool      VAD: the positive excerpt is mostly speech (>= ``min_voiced``)
        neg_voiced     (K,) bool      VAD: the negative excerpt is mostly speech
        order_frames   (4, 1, s, s)   4 frames of T, inner crop, shuffled
        order_label    ()  int        12-class order label (a permutation = its reverse)
        interval_high  () bool        VAD: the interval is mostly speech
        delta          () int         the interval shift of the negatives

    The VAD filter of Sec. 2.3 applies to negatives as well as positives: a pair is used
    for L_cls / L_cont (``high_affinity``) only when both excerpts are high-affinity. The
    paper filters "fragments"; filtering only the positive makes voicing alone a label
    (a voiced excerpt is more often the positive), which the model can learn from speech
    without the video.

    ``voiced_sampling`` (default): the learning is "self-paced by voice activity", so the
    speech excerpts are *drawn* among voiced excerpts instead of being drawn blindly and
    then masked. The positive s_j is drawn among the excerpt centres of T that the VAD
    marks voiced (``>= min_voiced``), and T' = T + delta among the intervals with
    ``0 < |delta| <= min(D - 1, n - 1)`` that hold a voiced centre (delta uniform over
    those, one per interval), its excerpts among T''s voiced centres. Where T (or every
    admissible T') holds no voiced excerpt, the blind draw of :func:`sample_pairs` is
    used and the mask marks the pair low-affinity. So nearly every voiced interval gives
    pairs with voiced negatives (high affinity on both sides), instead of ~16 % of pairs
    surviving the mask. ``voiced_sampling=False`` restores blind draws + mask.

    With ``seed`` set, items are a pure function of (seed, index) (validation);
    without, every call draws anew from numpy's global-seeded generator.
    """

    def __init__(self, scans: list[Scan], *, interval_seconds: float, excerpt_seconds: float, groups: int,
                 shift_range: int, size: int, order_step: int, order_crop: float, min_voiced: float,
                 vad_hop_seconds: float = 0.01, sample_rate: int = SAMPLE_RATE, seed: int | None = None,
                 voiced_sampling: bool = True):
        from echossl.data.signal import order_label

        self._order_label = order_label
        self.scans = scans
        self.interval_seconds = interval_seconds
        self.excerpt = int(round(excerpt_seconds * sample_rate))
        self.groups, self.shift_range, self.size = groups, shift_range, size
        self.order_step, self.order_crop, self.min_voiced = order_step, order_crop, min_voiced
        self.vad_hop, self.sr, self.seed = vad_hop_seconds, sample_rate, seed
        self.voiced_sampling = bool(voiced_sampling)
        self._good = [self._voiced_centres(self._voiced(scan)) for scan in scans]
        self.index = []
        for s, scan in enumerate(scans):
            n = int(len(scan.frames) / scan.fps // interval_seconds)
            if n >= 2:
                self.index.extend((s, t, n) for t in range(n))
        if not self.index:
            raise DataError("sweeps.csv", f"no scan is at least two intervals ({2 * interval_seconds:.1f} s) long")

    def __len__(self) -> int:
        return len(self.index)

    def _excerpt(self, audio: np.ndarray, centre_s: float) -> np.ndarray:
        start = int(round(centre_s * self.sr)) - self.excerpt // 2
        start = min(max(0, start), max(0, len(audio) - self.excerpt))
        piece = audio[start:start + self.excerpt]
        return np.pad(piece, (0, self.excerpt - len(piece)))

    def _voiced(self, scan: Scan) -> np.ndarray:
        if scan.voiced is not None:
            return np.asarray(scan.voiced, dtype=bool)
        return np.ones(1 + int(len(scan.audio) / self.sr / self.vad_hop), bool)

    def _voiced_fraction(self, voiced: np.ndarray, t0: float, t1: float) -> float:
        a = max(0, int(t0 / self.vad_hop))
        b = max(a + 1, int(t1 / self.vad_hop))
        part = voiced[a:b]
        return float(part.mean()) if part.size else 0.0

    def _voiced_centres(self, voiced: np.ndarray) -> np.ndarray:
        """``(M,)`` bool: the excerpt centred at VAD frame ``c`` (time ``c * hop``) is >= ``min_voiced`` speech."""
        m = len(voiced)
        half = int(round(self.excerpt / self.sr / 2 / self.vad_hop))
        c = np.arange(m)
        a, b = np.clip(c - half, 0, m), np.clip(c + half, 0, m)
        b = np.maximum(b, np.minimum(a + 1, m))
        cs = np.concatenate([[0], np.cumsum(voiced, dtype=np.int64)])
        frac = (cs[b] - cs[a]) / np.maximum(b - a, 1)
        return frac >= self.min_voiced

    def _is_voiced(self, good: np.ndarray, centres: np.ndarray) -> np.ndarray:
        idx = np.clip(np.round(np.asarray(centres) / self.vad_hop).astype(int), 0, len(good) - 1)
        return good[idx]

    def _centres_in(self, good: np.ndarray, interval: int) -> np.ndarray:
        """Voiced excerpt centres (VAD frame indices) inside interval ``interval``."""
        lo = int(round(interval * self.interval_seconds / self.vad_hop))
        hi = min(len(good), int(round((interval + 1) * self.interval_seconds / self.vad_hop)))
        return lo + np.flatnonzero(good[lo:hi]) if hi > lo else np.zeros(0, int)

    def draw_speech(self, rng: np.random.Generator, s: int, t: int, n: int) -> dict:
        """Positive and negative speech centres (seconds) for interval ``t`` of scan ``s``; see the class doc.

        Returns :func:`sample_pairs`' dict plus ``pos_centres``, ``neg_centres`` ``(K,)`` in seconds."""
        pairs = sample_pairs(rng, n, t, self.groups, self.shift_range)
        T, K = self.interval_seconds, self.groups
        pos_c = (t + pairs["speech_pos"]) * T
        neg_c = (pairs["neg_interval"] + pairs["speech_neg"]) * T
        if self.voiced_sampling:
            good = self._good[s]
            here = self._centres_in(good, t)
            if here.size:
                pos_c = rng.choice(here, K) * self.vad_hop
            reach = max(1, min(self.shift_range - 1, n - 1))
            options = [(d, c) for d in range(-reach, reach + 1)
                       if d != 0 and 0 <= t + d < n and (c := self._centres_in(good, t + d)).size]
            if options:
                d, there = options[int(rng.integers(len(options)))]
                pairs["neg_interval"], pairs["delta"] = t + d, d
                neg_c = rng.choice(there, K) * self.vad_hop
        pairs["pos_centres"], pairs["neg_centres"] = np.asarray(pos_c, float), np.asarray(neg_c, float)
        return pairs

    def __getitem__(self, i: int) -> dict:
        s, t, n = self.index[i]
        scan = self.scans[s]
        rng = np.random.default_rng([self.seed, i]) if self.seed is not None else np.random.default_rng(
            np.random.randint(0, 2**31))
        pairs = self.draw_speech(rng, s, t, n)
        T = self.interval_seconds
        n_frames = len(scan.frames)
        v_times = (t + pairs["video_pos"]) * T
        v_idx = np.minimum((v_times * scan.fps).astype(int), n_frames - 1)
        pos_c, neg_c = pairs["pos_centres"], pairs["neg_centres"]
        voiced = self._voiced(scan)
        pos_voiced = self._is_voiced(self._good[s], pos_c)
        neg_voiced = self._is_voiced(self._good[s], neg_c)
        # A pair is high-affinity only when BOTH excerpts are mostly speech. Filtering on the
        # positive alone left ~37 % of negatives unvoiced, so "is this speech voiced?" alone
        # separated positives from negatives without looking at the video (a shortcut).
        high = pos_voiced & neg_voiced
        # frame-order clip: 4 frames order_step apart inside T, shown in a random order
        first = int(t * T * scan.fps)
        last_start = max(first, min(n_frames, int((t + 1) * T * scan.fps)) - 3 * self.order_step - 1)
        start = int(rng.integers(first, last_start + 1))
        idx = np.minimum(start + self.order_step * np.arange(4), n_frames - 1)
        perm = rng.permutation(4)
        order = inner_crop(normalise_frames(scan.frames[idx[perm]], self.size), self.order_crop)
        return {
            "frames": normalise_frames(scan.frames[v_idx], self.size),
            "speech_pos": torch.from_numpy(np.stack([self._excerpt(scan.audio, c) for c in pos_c])),
            "speech_neg": torch.from_numpy(np.stack([self._excerpt(scan.audio, c) for c in neg_c])),
            "high_affinity": torch.from_numpy(high),
            "pos_voiced": torch.from_numpy(pos_voiced),
            "neg_voiced": torch.from_numpy(neg_voiced),
            "order_frames": order,
            "order_label": torch.tensor(self._order_label(perm)),
            "interval_high": torch.tensor(self._voiced_fraction(voiced, t * T, (t + 1) * T) >= self.min_voiced),
            "delta": torch.tensor(pairs["delta"]),
        }


# --------------------------------------------------------------------------- #
# Downstream frames
# --------------------------------------------------------------------------- #

class PlaneFrames(Dataset):
    """Labelled frames every ``step`` frames (the paper down-samples each scan by 8).

    Item: ``image`` (1, S, S) float, ``label`` () int64 plane index.
    ``augment`` shifts the frame by up to ``shift`` pixels (zero padding).
    """

    def __init__(self, scans: list[Scan], *, step: int, size: int, augment: bool = False, shift: int = 4):
        self.scans, self.size, self.augment, self.shift = scans, size, augment, shift
        self.index = [(s, f) for s, scan in enumerate(scans) for f in range(0, len(scan.frames), step)
                      if scan.planes[f] >= 0]

    def __len__(self) -> int:
        return len(self.index)

    def labels(self) -> np.ndarray:
        return np.array([self.scans[s].planes[f] for s, f in self.index])

    def _image(self, s: int, f: int) -> torch.Tensor:
        x = normalise_frames(self.scans[s].frames[f], self.size)
        if self.augment and self.shift:
            dx, dy = np.random.randint(-self.shift, self.shift + 1, 2)
            x = torch.roll(F.pad(x, [self.shift] * 4), shifts=(int(dy), int(dx)), dims=(-2, -1))
            x = x[..., self.shift:-self.shift, self.shift:-self.shift]
        return x

    def __getitem__(self, i: int) -> dict:
        s, f = self.index[i]
        return {"image": self._image(s, f), "label": torch.tensor(int(self.scans[s].planes[f]))}


class SaliencyFrames(Dataset):
    """Frames every ``step`` with gaze saliency targets at ``out_size``.

    Item: ``image`` (1, S, S); ``saliency`` (O, O) float density (sums to 1);
    ``fixations`` (O, O) bool: the gaze points of frames t-w..t+w (for NSS and AUC).
    """

    def __init__(self, scans: list[Scan], maps: list[np.ndarray], *, step: int, size: int, out_size: int,
                 window: int):
        self.scans, self.maps, self.size, self.out, self.window = scans, maps, size, out_size, window
        self.index = [(s, f) for s, scan in enumerate(scans) for f in range(0, len(scan.frames), step)
                      if np.isfinite(scan.gaze[max(0, f - window):f + window + 1]).all(1).any()]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict:
        s, f = self.index[i]
        scan = self.scans[s]
        h, w = scan.frames.shape[1:]
        sal = torch.from_numpy(self.maps[s][f].astype(np.float32))[None, None]
        sal = F.interpolate(sal, size=(self.out, self.out), mode="area")[0, 0]
        sal = sal / sal.sum().clamp_min(1e-12)
        pts = scan.gaze[max(0, f - self.window):f + self.window + 1]
        pts = pts[np.isfinite(pts).all(1)]
        fix = torch.zeros(self.out, self.out, dtype=torch.bool)
        xi = np.clip((pts[:, 0] + 0.5) * self.out / w, 0, self.out - 1).astype(int)
        yi = np.clip((pts[:, 1] + 0.5) * self.out / h, 0, self.out - 1).astype(int)
        fix[yi, xi] = True
        return {"image": normalise_frames(scan.frames[f], self.size), "saliency": sal, "fixations": fix}


def load_saliency_maps(root, scans: list[Scan], meta: dict) -> list[np.ndarray]:
    """``Saliency/<name>.npz`` maps, or maps made from the gaze points when the file is missing."""
    out = []
    for scan in scans:
        path = Path(root) / "Saliency" / f"{scan.name}.npz"
        if path.is_file():
            shape = npz_shapes(path).get("maps")  # checked before anything is decompressed
            if shape != scan.frames.shape:
                raise DataError(path, f"must hold 'maps' of shape {scan.frames.shape} like the video, not {shape}")
            try:
                with np.load(path) as z:
                    out.append(z["maps"])
            except Exception as err:
                raise DataError(path, f"cannot be read as NPZ ({err.__class__.__name__})") from None
        else:
            out.append(saliency_from_gaze(scan.gaze, scan.frames.shape[1:], int(meta["gaze_window_frames"]),
                                          float(meta["gaze_sigma_px"])))
    return out
