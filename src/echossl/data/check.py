"""``echossl data check``: is a data folder usable, and what exactly is wrong with it.

:func:`check_dir` returns a JSON-able report::

    {"format": "echonet" | "camus", "path": str,
     "counts": {"TRAIN": n, "VAL": n, "TEST": n, "total": n, "usable": n},
     "ef": {"mean", "sd", "min", "max"}, "frames": {...}, "fps": {...},
     "problems": [{"file", "row", "message", "severity"}], "errors": n,
     "warnings": n, "usable": bool}

``usable`` is False when any problem has severity "error" or no video is usable.
Warnings (a video with fewer than 2 traced frames, a tracing of an unlisted
video) leave the folder usable: such videos are only left out, as the reference does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from echossl.errors import DataError


def detect_format(path: str | Path) -> str:
    """``"echonet"`` (FileList.csv present) or ``"camus"`` (patientNNNN folders).

    Raises:
        DataError: the folder is missing or looks like neither.
    """
    path = Path(path)
    if not path.is_dir():
        raise DataError(path, "folder does not exist")
    if (path / "FileList.csv").is_file():
        return "echonet"
    from echossl.data.camus import list_patients

    if list_patients(path):
        return "camus"
    for name, module in _format_modules():
        if module.detect(path):
            return name
    raise DataError(path, "is neither an EchoNet-Dynamic folder (no FileList.csv), a CAMUS folder "
                          "(no patientNNNN folders) nor any other format echossl reads")


# Further formats plug in here: a module with ``detect(path) -> bool`` and
# ``check(path) -> {"counts", "problems", ...}`` (same keys as _check_echonet).
OTHER_FORMATS = {"mrjet": "echossl.data.mrjet", "sweep": "echossl.data.sweep"}


def _format_modules():
    import importlib

    for name, module_name in OTHER_FORMATS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError:
            continue
        if hasattr(module, "detect") and hasattr(module, "check"):
            yield name, module


def _stats(values) -> dict:
    v = np.asarray([x for x in values if x is not None], dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {"mean": None, "sd": None, "min": None, "max": None}
    return {"mean": round(float(v.mean()), 3), "sd": round(float(v.std(ddof=1)) if v.size > 1 else 0.0, 3),
            "min": round(float(v.min()), 3), "max": round(float(v.max()), 3)}


def _problem_dict(err: DataError, severity: str) -> dict:
    return {"file": str(err.path), "row": err.row, "message": err.message,
            "text": str(err), "severity": severity}


def _check_echonet(path: Path) -> dict:
    from echossl.data.echonet import SPLITS, WARNING_KINDS, validate_full

    try:
        res = validate_full(path)
    except DataError as err:  # FileList.csv unusable as a whole
        return {"counts": {}, "ef": _stats([]), "frames": _stats([]), "fps": _stats([]),
                "problems": [_problem_dict(err, "error")]}
    df = res["filelist"]
    usable = set(res["usable"])
    counts = {s: int((df["Split"] == s).sum()) for s in SPLITS}
    counts["total"] = len(df.attrs.get("all_names", df))
    counts["usable"] = len(usable)
    counts["usable_by_split"] = {s: int(((df["Split"] == s) & df["FileName"].isin(usable)).sum())
                                 for s in SPLITS}
    problems = [_problem_dict(p, "warning" if getattr(p, "kind", "error") in WARNING_KINDS else "error")
                for p in res["problems"]]
    return {"counts": counts, "ef": _stats(df["EF"]), "frames": _stats(res["frames"].values()),
            "fps": _stats(df["FPS"]), "problems": problems}


def _check_camus(path: Path) -> dict:
    from echossl.data.camus import camus_splits, list_patients, nifti_root, nifti_shape, read_info

    base = nifti_root(path)
    problems, efs, frames = [], [], []
    n_ok = 0
    for p in list_patients(path):
        ok = True
        for view in ("4CH", "2CH"):
            seq = base / p / f"{p}_{view}_half_sequence.nii.gz"
            cfg = base / p / f"Info_{view}.cfg"
            if not seq.is_file() and not cfg.is_file():
                continue
            try:
                info = read_info(cfg)
                if not seq.is_file():
                    raise DataError(seq, "file does not exist")
                shape = nifti_shape(seq)  # header only, checked
                t = shape[2] if len(shape) > 2 else 1
                if max(info["ED"], info["ES"]) > t:
                    raise DataError(cfg, f"ED/ES frame {max(info['ED'], info['ES'])} is past the "
                                         f"sequence's {t} frames")
                if info["EF"] is not None and not 0 <= info["EF"] <= 100:
                    raise DataError(cfg, f"EF {info['EF']} is outside [0, 100]")
                if view == "4CH":
                    efs.append(info["EF"])
                    frames.append(t)
            except DataError as err:
                problems.append(_problem_dict(err, "error"))
                ok = False
            except Exception as err:  # corrupt NIfTI header
                problems.append(_problem_dict(DataError(seq, f"cannot be read as NIfTI ({err})"), "error"))
                ok = False
        n_ok += ok
    splits = camus_splits(path)
    counts = {s: len(v) for s, v in splits.items()}
    counts["total"] = sum(counts.values())
    counts["usable"] = n_ok
    return {"counts": counts, "ef": _stats(efs), "frames": _stats(frames), "fps": _stats([]),
            "problems": problems}


def check_dir(path: str | Path) -> dict:
    """Check an EchoNet-Dynamic or CAMUS folder without decoding whole videos.

    Returns:
        The report described in the module docstring.

    Raises:
        DataError: the folder is missing or of an unknown format.
    """
    path = Path(path)
    fmt = detect_format(path)
    if fmt == "echonet":
        rep = _check_echonet(path)
    elif fmt == "camus":
        rep = _check_camus(path)
    else:
        rep = dict(_format_modules())[fmt].check(path)
    errors = sum(p["severity"] == "error" for p in rep["problems"])
    warnings_ = len(rep["problems"]) - errors
    return {"format": fmt, "path": str(path), **rep, "errors": errors, "warnings": warnings_,
            "usable": errors == 0 and rep["counts"].get("usable", 0) > 0}
