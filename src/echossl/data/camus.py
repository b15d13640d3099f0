"""CAMUS (NIfTI release): half sequences with EF, for external validation.

Layout read::

    ROOT/[database_nifti/]patientNNNN/patientNNNN_{2CH,4CH}_half_sequence[_gt].nii.gz
    ROOT/[database_nifti/]patientNNNN/Info_{2CH,4CH}.cfg
    ROOT/database_split/subgroup_{training,validation,testing}.txt   (optional)

Orientation: nibabel returns the release's arrays as ``(W, H, T)`` (NIfTI x, y, t;
SimpleITK shows the same files as ``(T, H, W)``), so they are transposed to
``(T, H, W)`` with row 0 at the top of the image. Reading them as ``(H, W, T)``
would show every frame transposed (the sector apex on the left).

Temporal mirroring (CSS paper, external validation): a half sequence covers
ED -> ES only. An ES -> ED sequence is first reversed so it runs ED -> ES, then
the sequence is followed by its reverse without repeating the ES frame, giving
ED -> ES -> ED of ``2T - 1`` frames (ED at 0, ES at ``T - 1``) and no
discontinuity.
"""

from __future__ import annotations

import gzip
import hashlib
import re
import zlib
from pathlib import Path

import numpy as np
import torch

from echossl.data.resize import resize_frames, resize_labels
from echossl.errors import ConfigError, DataError

SPLIT_FILES = {"TRAIN": "subgroup_training.txt", "VAL": "subgroup_validation.txt",
               "TEST": "subgroup_testing.txt"}
_PATIENT = re.compile(r"^patient\d+$")
# The most one NIfTI image may make the reader allocate. A CAMUS half sequence is
# about 20 frames of 800 x 600 (~10 MB); a header claiming more is refused, not read.
MAX_NIFTI_BYTES = 2**31


def read_info(cfg_path: str | Path) -> dict:
    """Parse an ``Info_{2CH,4CH}.cfg`` file of ``key: value`` lines.

    Returns:
        The raw keys (numbers converted) plus normalised ``ED``, ``ES`` (1-based
        ints), ``EF`` (float, from ``LVef`` or ``EF``; None if absent),
        ``ImageQuality`` (str, "" if absent).

    Raises:
        DataError: missing file, a line without ``:``, or ED/ES missing or not integers.
    """
    path = Path(cfg_path)
    if not path.is_file():
        raise DataError(path, "file does not exist")
    info: dict = {}
    line_of: dict[str, int] = {}  # key -> 1-based line, for errors
    for i, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        if ":" not in line:
            raise DataError(path, f"line {line.strip()[:80]!r} is not 'key: value'", row=i)
        key, value = (s.strip() for s in line.split(":", 1))
        line_of[key] = i
        try:
            num = float(value)
            info[key] = int(num) if num.is_integer() and "." not in value else num
        except (ValueError, OverflowError):
            info[key] = value
    for key in ("ED", "ES"):
        if not isinstance(info.get(key), int) or not 1 <= info[key] < 2**31:
            raise DataError(path, f"{key} must be a 1-based frame number, got {info.get(key)!r}",
                            row=line_of.get(key))
    ef_key = "LVef" if "LVef" in info else "EF"
    ef = info.get(ef_key)
    try:
        info["EF"] = None if ef is None else float(ef)
    except (TypeError, ValueError):
        raise DataError(path, f"{ef_key} {ef!r} is not a number", row=line_of[ef_key]) from None
    if info["EF"] is not None and not 0 <= info["EF"] <= 100:  # NaN fails this too
        raise DataError(path, f"{ef_key} {ef!r} is not a number in [0, 100]", row=line_of[ef_key])
    info["ImageQuality"] = str(info.get("ImageQuality", ""))
    return info


def nifti_root(root: str | Path) -> Path:
    """The folder holding the ``patientNNNN`` folders (``ROOT`` or ``ROOT/database_nifti``)."""
    root = Path(root)
    sub = root / "database_nifti"
    return sub if sub.is_dir() else root


def list_patients(root: str | Path) -> list[str]:
    """Sorted ``patientNNNN`` folder names."""
    base = nifti_root(root)
    if not base.is_dir():
        raise DataError(base, "folder does not exist")
    return sorted(p.name for p in base.iterdir() if p.is_dir() and _PATIENT.match(p.name))


def camus_splits(root: str | Path) -> dict[str, list[str]]:
    """{TRAIN, VAL, TEST: sorted patients}.

    From ``database_split/subgroup_*.txt`` (in ROOT or next to database_nifti) when
    all three exist; else deterministic by patient name: sha1(name) mod 10 gives
    0-6 TRAIN, 7 VAL, 8-9 TEST, so adding patients never moves the others.
    """
    root = Path(root)
    patients = list_patients(root)
    for folder in (root / "database_split", nifti_root(root).parent / "database_split"):
        files = {s: folder / f for s, f in SPLIT_FILES.items()}
        if all(p.is_file() for p in files.values()):
            out = {}
            for s, p in files.items():
                names = [ln.strip() for ln in p.read_text(errors="replace").splitlines() if ln.strip()]
                out[s] = sorted(n for n in names if n in set(patients))
            return out
    out = {s: [] for s in SPLIT_FILES}
    for p in patients:
        b = int(hashlib.sha1(p.encode()).hexdigest(), 16) % 10
        out["TRAIN" if b < 7 else "VAL" if b == 7 else "TEST"].append(p)
    return out


def _nifti(path: Path):
    """``(image, shape)`` with the header checked; no voxel is read yet.

    Refuses a shape with a zero or negative size or more than 3 axes longer than 1,
    a non-numeric voxel type, more than :data:`MAX_NIFTI_BYTES` once loaded, or a
    file that holds fewer bytes than the header claims.
    """
    import nibabel as nib

    if not path.is_file():
        raise DataError(path, "file does not exist")
    try:
        img = nib.load(str(path))  # reads the header only
        shape = tuple(int(d) for d in img.shape)
        dtype = np.dtype(img.get_data_dtype())
        slope, inter, offset = img.dataobj.slope, img.dataobj.inter, int(img.dataobj.offset)
    except Exception as err:  # nibabel raises many types for corrupt/truncated files
        raise DataError(path, f"cannot be read as NIfTI ({type(err).__name__}: {err})") from None
    if not shape or min(shape) < 1 or sum(d > 1 for d in shape) > 3:
        raise DataError(path, f"header gives the shape {shape}, not a (W, H, T) image")
    if dtype.kind not in "biuf":
        raise DataError(path, f"voxel type {dtype} is not a number type")
    # nibabel scales into float64 unless slope is 1 and intercept 0
    itemsize = dtype.itemsize if (slope, inter) == (1.0, 0.0) else max(dtype.itemsize, 8)
    voxels = int(np.prod(shape, dtype=object))  # Python ints: no overflow
    size = voxels * itemsize
    if size > MAX_NIFTI_BYTES:
        raise DataError(path, f"header claims {shape} voxels ({size / 2**30:.3g} GiB once loaded), more than "
                              f"the {MAX_NIFTI_BYTES / 2**30:g} GiB echossl reads from one image")
    # nibabel allocates the claimed size before reading: check the file holds it
    needed = offset + voxels * dtype.itemsize
    held = _stored_bytes(path, needed)
    if held < needed:
        raise DataError(path, f"is truncated: its header needs {needed} bytes but the file holds {held}")
    return img, shape


def _stored_bytes(path: Path, enough: int) -> int:
    """Bytes ``path`` holds (decompressed for ``.gz``), counting no further than ``enough``:
    one streaming pass that keeps nothing, so a gzip bomb costs time bounded by the cap."""
    if path.suffix != ".gz":
        return path.stat().st_size
    n = 0
    try:
        with gzip.open(path, "rb") as fh:
            while n < enough and (chunk := fh.read(1 << 20)):
                n += len(chunk)
    except (OSError, EOFError, zlib.error) as err:  # BadGzipFile is an OSError
        raise DataError(path, f"is not a readable gzip file ({type(err).__name__}: {err})") from None
    return n


def nifti_shape(path: str | Path) -> tuple[int, ...]:
    """A NIfTI image's shape from its header (checked as :func:`load_nifti_sequence` does)."""
    return _nifti(Path(path))[1]


def load_nifti_sequence(path: str | Path) -> np.ndarray:
    """A CAMUS sequence as ``(T, H, W)`` (see the module docstring for orientation).

    Raises:
        DataError: missing, unreadable, truncated, not a 2-D(+t) image, an absurd
            header (see :func:`_nifti`), or NaN/infinite voxels.
    """
    path = Path(path)
    img, _ = _nifti(path)
    try:
        arr = np.asanyarray(img.dataobj)
    except Exception as err:  # truncated data, bad gzip stream, ...
        raise DataError(path, f"cannot be read as NIfTI ({type(err).__name__}: {err})") from None
    arr = np.asarray(arr)
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise DataError(path, "has NaN or infinite voxels")
    while arr.ndim > 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3:
        raise DataError(path, f"expected a (W, H, T) image, got shape {arr.shape}")
    return np.ascontiguousarray(arr.transpose(2, 1, 0))


def mirror(seq: np.ndarray, ed: int, es: int) -> tuple[np.ndarray, int, int]:
    """Make a full ED -> ES -> ED cycle from a half sequence.

    Args:
        seq: ``(T, ...)`` frames; ``ed``, ``es``: 0-based, one of them 0 and
            the other ``T - 1``.

    Returns:
        ``(frames (2T - 1, ...), ed=0, es=T - 1)``.
    """
    if ed > es:  # ES -> ED: reverse first so it runs ED -> ES
        seq = seq[::-1]
    return np.concatenate([seq, seq[-2::-1]], axis=0), 0, seq.shape[0] - 1


class Camus(torch.utils.data.Dataset):
    """CAMUS half sequences as video clips for EF models.

    Args:
        root: CAMUS folder (with ``database_nifti/`` or the patient folders directly).
        view: "4CH" or "2CH".
        size: frames resized to ``size x size`` (bilinear, pixel centres aligned); labels
            resampled the same way per structure (:func:`echossl.data.resize.resize_labels`),
            so they stay on the frames' edges. None keeps them.
        mirror: make ED -> ES -> ED of ``2T - 1`` frames (see :func:`mirror`).
        length: if set, resample the (mirrored) sequence to ``length`` evenly
            spaced frames (nearest), so it fits a fixed-length EF model; ``ed``/``es``
            are remapped to the nearest sampled frame.
        patients: restrict to these patient names.
        split: TRAIN, VAL, TEST or None for all (see :func:`camus_splits`).
        transform: optional callable applied to each item dict last, e.g. a MONAI
            dictionary transform (``ScaleIntensityd(keys="video")``) or a
            ``torchvision.transforms.v2.Compose`` of dict-aware transforms.

    Items:
        ``video``: float32 ``(3, T, H, W)`` grey intensities in [0, 255] replicated
        to 3 channels; ``labels``: uint8 ``(T, H, W)`` (0 background, 1 LV, 2
        myocardium, 3 atrium) or None; ``EF``: float; ``quality``: str;
        ``patient``: str; ``ed``, ``es``: 0-based frame indices in ``video``.
    """

    def __init__(self, root, *, view="4CH", size=112, mirror=True, length=None, patients=None,
                 split=None, transform=None):
        self.root = Path(root)
        self.transform = transform  # called on the item dict (MONAI dictionary or torchvision transforms)
        self.view = str(view).upper()
        if self.view not in ("2CH", "4CH"):
            raise ConfigError(f"view must be 2CH or 4CH, got {view!r}")
        self.size, self.mirror, self.length = size, mirror, length
        if split is not None:
            split = str(split).upper()
            if split not in SPLIT_FILES:
                raise ConfigError(f"split must be TRAIN, VAL or TEST, got {split!r}")
            names = camus_splits(self.root)[split]
        else:
            names = list_patients(self.root)
        if patients is not None:
            wanted = set(patients)
            names = [p for p in names if p in wanted]
        base = nifti_root(self.root)
        self.patients = [p for p in names
                         if (base / p / f"{p}_{self.view}_half_sequence.nii.gz").is_file()]
        if not self.patients:
            raise DataError(base, f"no patientNNNN/patientNNNN_{self.view}_half_sequence.nii.gz found")
        self.infos = [read_info(base / p / f"Info_{self.view}.cfg") for p in self.patients]
        self.ef = np.array([np.nan if i["EF"] is None else i["EF"] for i in self.infos], np.float32)

    def __len__(self) -> int:
        return len(self.patients)

    def __getitem__(self, i: int) -> dict:
        p = self.patients[i]
        info = self.infos[i]
        pdir = nifti_root(self.root) / p
        seq_path = pdir / f"{p}_{self.view}_half_sequence.nii.gz"
        seq = load_nifti_sequence(seq_path)
        gt_path = pdir / f"{p}_{self.view}_half_sequence_gt.nii.gz"
        labels = load_nifti_sequence(gt_path) if gt_path.is_file() else None
        t = seq.shape[0]
        if labels is not None and labels.shape != seq.shape:
            raise DataError(gt_path, f"shape {labels.shape} does not match the sequence {seq.shape}")
        ed, es = info["ED"] - 1, info["ES"] - 1
        if max(ed, es) >= t:
            raise DataError(pdir / f"Info_{self.view}.cfg",
                            f"ED/ES frame {max(ed, es) + 1} is past the sequence's {t} frames")
        if self.mirror:
            order = np.arange(t)
            order, ed, es = mirror(order, ed, es)
        else:
            order = np.arange(t)
        if self.length is not None:
            pick = np.rint(np.linspace(0, len(order) - 1, int(self.length))).astype(int)
            ed = int(np.argmin(np.abs(pick - ed)))
            es = int(np.argmin(np.abs(pick - es)))
            order = order[pick]
        x = torch.from_numpy(seq[order].astype(np.float32))[:, None]  # (T, 1, H, W)
        if self.size is not None:
            x = resize_frames(x, self.size)
        video = x[:, 0].clamp(0, 255)[None].expand(3, -1, -1, -1).contiguous()  # (3, T, H, W)
        lab = None
        if labels is not None:
            lab_t = torch.from_numpy(labels[order].astype(np.int64))  # (T, H, W)
            if self.size is not None:  # resampled like the frames, per structure (no half-pixel shift)
                lab_t = resize_labels(lab_t, self.size)
            lab = lab_t.numpy().astype(np.uint8)
        item = {"video": video, "labels": lab,
                "EF": float("nan") if info["EF"] is None else float(info["EF"]),
                "quality": info["ImageQuality"], "patient": p, "ed": int(ed), "es": int(es)}
        return self.transform(item) if self.transform is not None else item
