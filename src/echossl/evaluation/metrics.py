"""Regression and segmentation metrics, bootstrap intervals and ``metrics.json``.

The regression metrics follow EchoNet-Dynamic (Ouyang et al., Nature 2020) and the
CSS paper (css-semisupervised-ef): MAE and RMSE in EF points, R² as a fraction, each
with a bootstrap confidence interval. Dice is ``2·|A∩B| / (|A| + |B|)``; a segmentation
``metrics.json`` reports it pooled over frames (``dice`` = ``2·ΣI / (Σ|A| + Σ|B|)``, as
the EchoNet-Dynamic reference) and as the mean of per-frame Dice (``dice_frame_mean``),
with intervals that resample videos (:func:`dice_summary`).

The bootstrap is vectorised: one ``(n, N)`` index matrix is drawn and the metric is
evaluated along the last axis for all resamples at once (in row chunks, to bound
memory), instead of a Python loop over 10 000 resamples.

Note for comparisons with the reference: ``echonet.utils.bootstrap`` reports the 5th
and 95th percentiles of its resamples (a 90 % interval); here ``alpha=0.05`` gives the
2.5th and 97.5th percentiles, which is what ``*_ci95`` in ``metrics.json`` promises.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Callable

import numpy as np

from echossl.io import atomic_write_text

# Bound the size of one chunk of resampled values (elements per array) so that
# 10 000 resamples of a large test set do not need gigabytes at once.
_CHUNK_ELEMENTS = 4_000_000


def _pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    y_true = np.asarray(y_true, dtype=np.float64).reshape(-1)
    y_pred = np.asarray(y_pred, dtype=np.float64).reshape(-1)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has {y_true.size} values but y_pred has {y_pred.size}")
    return y_true, y_pred


# --- row-wise (vectorised) forms: inputs (..., N), output (...) -------------------


def _mae_rows(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    return np.mean(np.abs(y_pred - y_true), axis=-1)


def _rmse_rows(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    return np.sqrt(np.mean((y_pred - y_true) ** 2, axis=-1))


def _r2_rows(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    ss_res = np.sum((y_true - y_pred) ** 2, axis=-1)
    ss_tot = np.sum((y_true - y_true.mean(axis=-1, keepdims=True)) ** 2, axis=-1)
    # A constant target (possible in a resample of a tiny set) has no defined R².
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(ss_tot > 0, 1.0 - ss_res / np.where(ss_tot > 0, ss_tot, 1.0), np.nan)


def _mean_rows(values: np.ndarray) -> np.ndarray:
    return np.mean(values, axis=-1)


def mae(y_true, y_pred) -> float:
    """Mean absolute error of two ``(N,)`` arrays."""
    y_true, y_pred = _pair(y_true, y_pred)
    return float(_mae_rows(y_true, y_pred)) if y_true.size else float("nan")


def rmse(y_true, y_pred) -> float:
    """Root mean squared error of two ``(N,)`` arrays."""
    y_true, y_pred = _pair(y_true, y_pred)
    return float(_rmse_rows(y_true, y_pred)) if y_true.size else float("nan")


def r2(y_true, y_pred) -> float:
    """Coefficient of determination ``1 − SS_res / SS_tot`` as a fraction (not percent).

    NaN when ``y_true`` is constant or empty (sklearn would return 0 or 1 there; a
    NaN is written as ``null`` in ``metrics.json`` rather than a made-up number).
    """
    y_true, y_pred = _pair(y_true, y_pred)
    return float(_r2_rows(y_true, y_pred)) if y_true.size else float("nan")


# Public scalar metric -> its row-wise form, used by bootstrap_ci.
_VECTORISED: dict[Callable, Callable] = {mae: _mae_rows, rmse: _rmse_rows, r2: _r2_rows}


def dice(pred, target, eps: float = 1e-8):
    """Dice ``2·|A∩B| / (|A| + |B|)`` of binary masks, per item.

    Args:
        pred, target: numpy arrays or torch tensors of shape ``(..., H, W)``
            (broadcastable). Booleans and integers count as foreground where
            non-zero; floating inputs (probabilities) are binarised at 0.5.
        eps: guards the division; two empty masks score exactly 1.0.

    Returns:
        Dice of shape ``(...)``: a torch tensor (float32, on the input's device)
        if either input is a tensor, else a numpy array, or a Python float when the
        inputs are single ``(H, W)`` masks.

    The same vectorised formula serves both paths. It agrees with MONAI's
    ``compute_dice(..., ignore_empty=False)`` (checked in the tests) but does not
    loop over batch items in Python and does not need MONAI's slow import.
    """
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a hard dependency
        torch = None
    if torch is not None and (isinstance(pred, torch.Tensor) or isinstance(target, torch.Tensor)):
        device = pred.device if isinstance(pred, torch.Tensor) else target.device
        p = _binary_torch(torch.as_tensor(pred, device=device))
        t = _binary_torch(torch.as_tensor(target, device=device))
        p, t = torch.broadcast_tensors(p, t)
        inter = (p & t).sum(dim=(-2, -1)).float()
        total = (p.sum(dim=(-2, -1)) + t.sum(dim=(-2, -1))).float()
        return torch.where(total > 0, 2.0 * inter / (total + eps), torch.ones_like(total))
    inter, total = dice_parts(pred, target)
    out = np.where(total > 0, 2.0 * inter / (total + eps), 1.0)
    return float(out) if out.ndim == 0 else out


def dice_parts(pred, target) -> tuple[np.ndarray, np.ndarray]:
    """Per-item intersection ``|A∩B|`` and size sum ``|A| + |B|`` of binary masks.

    Args:
        pred, target: numpy arrays ``(..., H, W)`` (broadcastable), binarised as in :func:`dice`.

    Returns:
        ``(inter, total)``, float64 arrays of shape ``(...)`` (0-d for one mask);
        ``2·inter / total`` is the per-item Dice, and sums of them give the pooled Dice.
    """
    p = _binary_numpy(np.asarray(pred))
    t = _binary_numpy(np.asarray(target))
    if p.ndim < 2 or t.ndim < 2:
        raise ValueError(f"dice needs (..., H, W) masks, got shapes {p.shape} and {t.shape}")
    p, t = np.broadcast_arrays(p, t)
    inter = np.sum(p & t, axis=(-2, -1), dtype=np.float64)
    total = np.sum(p, axis=(-2, -1), dtype=np.float64) + np.sum(t, axis=(-2, -1), dtype=np.float64)
    return inter, total


def _pooled_rows(inter: np.ndarray, total: np.ndarray) -> np.ndarray:
    i, t = inter.sum(axis=-1), total.sum(axis=-1)
    return np.where(t > 0, 2.0 * i / np.where(t > 0, t, 1.0), 1.0)


def _ratio_rows(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    d = den.sum(axis=-1)
    return np.where(d > 0, num.sum(axis=-1) / np.where(d > 0, d, 1.0), np.nan)


def pooled_dice(inter, total) -> float:
    """Pooled Dice ``2·ΣI / (Σ|A| + Σ|B|)`` over items, as the EchoNet-Dynamic reference
    reports it (1.0 when every mask is empty)."""
    return float(_pooled_rows(np.asarray(inter, np.float64).reshape(-1), np.asarray(total, np.float64).reshape(-1)))


def dice_summary(inter, total, groups=None, *, prefix: str = "dice", frame_mean: bool = True,
                 bootstrap: int = 1000, seed: int = 0) -> dict:
    """Pooled and per-frame-mean Dice of ``(N,)`` frames with intervals bootstrapped over videos.

    Args:
        inter, total: ``(N,)`` per-frame counts from :func:`dice_parts`.
        groups: ``(N,)`` video of each frame (any hashable labels); None = each frame its own.
        prefix: key stem, e.g. ``"dice"`` or ``"dice_ed"``.
        frame_mean: also report the mean of per-frame Dice.
        bootstrap: resamples; 0 leaves the intervals out.

    Returns:
        ``{prefix: pooled, prefix_ci95: [lo, hi]}`` and, with ``frame_mean``,
        ``prefix_frame_mean`` and ``prefix_frame_mean_ci95``. The intervals resample
        *videos* with replacement and pool (or average) all frames of the resampled
        videos, since frames of one video are not independent. An empty input
        gives NaN (written as null).
    """
    inter = np.asarray(inter, np.float64).reshape(-1)
    total = np.asarray(total, np.float64).reshape(-1)
    if inter.shape != total.shape:
        raise ValueError(f"inter has {inter.size} values but total has {total.size}")
    per_frame = np.where(total > 0, 2.0 * inter / np.where(total > 0, total, 1.0), 1.0)
    if inter.size == 0:
        out = {prefix: float("nan"), f"{prefix}_ci95": [float("nan")] * 2}
        if frame_mean:
            out.update({f"{prefix}_frame_mean": float("nan"), f"{prefix}_frame_mean_ci95": [float("nan")] * 2})
        return out
    labels = np.arange(inter.size) if groups is None else np.asarray(groups)
    if labels.shape != inter.shape:
        raise ValueError(f"groups has {labels.size} values for {inter.size} frames")
    _, g = np.unique(labels, return_inverse=True)
    g = g.reshape(-1)
    k = int(g.max()) + 1
    # per-video sums: resampling videos then summing their sums pools their frames
    gi, gt = np.bincount(g, inter, k), np.bincount(g, total, k)
    gd, gn = np.bincount(g, per_frame, k), np.bincount(g, None, k).astype(np.float64)
    out = {prefix: pooled_dice(inter, total)}
    pooled_fn = lambda i, t: float(_pooled_rows(i, t))  # noqa: E731
    pooled_fn.vectorised = _pooled_rows
    if bootstrap > 0:
        out[f"{prefix}_ci95"] = list(bootstrap_ci(pooled_fn, gi, gt, n=bootstrap, seed=seed))
    if frame_mean:
        out[f"{prefix}_frame_mean"] = float(per_frame.mean())
        if bootstrap > 0:
            mean_fn = lambda d, c: float(_ratio_rows(d, c))  # noqa: E731
            mean_fn.vectorised = _ratio_rows
            out[f"{prefix}_frame_mean_ci95"] = list(bootstrap_ci(mean_fn, gd, gn, n=bootstrap, seed=seed))
    return out


def _binary_numpy(a: np.ndarray) -> np.ndarray:
    return a > 0.5 if np.issubdtype(a.dtype, np.floating) else a.astype(bool)


def _binary_torch(a):
    return a > 0.5 if a.is_floating_point() else a.bool()


def bootstrap_ci(
    metric_fn: Callable, *arrays, n: int = 10000, alpha: float = 0.05, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``metric_fn(*arrays)``.

    Args:
        metric_fn: ``mae``, ``rmse``, ``r2`` (evaluated for all resamples at once),
            any callable with a ``vectorised`` attribute taking ``(n, N)`` arrays and
            returning ``(n,)``, or any other callable of ``(N,)`` arrays (then a
            Python loop is used).
        arrays: ``(N,)`` arrays resampled together (same indices for each).
        n: number of resamples.
        alpha: 0.05 gives the 2.5th and 97.5th percentiles.
        seed: seed of the resampling (numpy ``default_rng``).

    Returns:
        ``(low, high)``; resamples where the metric is undefined (NaN) are ignored,
        and ``(nan, nan)`` is returned when there is nothing to resample.
    """
    arrays = [np.asarray(a, dtype=np.float64).reshape(-1) for a in arrays]
    if not arrays:
        raise ValueError("bootstrap_ci needs at least one array")
    size = arrays[0].size
    if any(a.size != size for a in arrays):
        raise ValueError(f"arrays differ in length: {[a.size for a in arrays]}")
    if size == 0 or n <= 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    rows_fn = _VECTORISED.get(metric_fn) or getattr(metric_fn, "vectorised", None)
    # The (n, N) index matrix is drawn in row chunks; consecutive draws from one
    # Generator give the same indices as a single full draw, so the result does not
    # depend on the chunk size, while memory stays bounded for large N.
    step = max(1, _CHUNK_ELEMENTS // size)
    parts = []
    for start in range(0, n, step):
        index = rng.integers(0, size, size=(min(step, n - start), size))
        if rows_fn is not None:
            parts.append(np.asarray(rows_fn(*(a[index] for a in arrays)), dtype=np.float64))
        else:
            parts.append(np.array([metric_fn(*(a[row] for a in arrays)) for row in index], dtype=np.float64))
    stats = np.concatenate(parts)
    stats = stats[np.isfinite(stats)]
    if stats.size == 0:
        return (float("nan"), float("nan"))
    low, high = np.percentile(stats, [100.0 * alpha / 2.0, 100.0 * (1.0 - alpha / 2.0)])
    return (float(low), float(high))


def regression_metrics(y_true, y_pred, bootstrap: int = 1000, seed: int = 0) -> dict:
    """MAE, RMSE and R² of ``(N,)`` EF values, with 95 % bootstrap intervals.

    Returns:
        ``{"mae", "rmse", "r2"}`` floats plus ``"mae_ci95"``, ``"rmse_ci95"``,
        ``"r2_ci95"`` as ``[low, high]`` when ``bootstrap > 0``. The three intervals
        use the same resampled indices (same seed).
    """
    y_true, y_pred = _pair(y_true, y_pred)
    out: dict = {"mae": mae(y_true, y_pred), "rmse": rmse(y_true, y_pred), "r2": r2(y_true, y_pred)}
    if bootstrap > 0:
        for name, fn in (("mae", mae), ("rmse", rmse), ("r2", r2)):
            out[f"{name}_ci95"] = list(bootstrap_ci(fn, y_true, y_pred, n=bootstrap, seed=seed))
    return out


def _mean(values) -> float:
    return float(np.mean(values))


_mean.vectorised = _mean_rows  # type: ignore[attr-defined]


def mean_ci(values, bootstrap: int = 1000, seed: int = 0) -> list[float]:
    """95 % bootstrap interval of the mean of ``(N,)`` values (e.g. per-frame Dice).

    Returns:
        ``[low, high]``, ready for ``dice_ci95=mean_ci(values)``; the mean itself
        is ``np.nanmean(values)``. NaN values (undefined items) are dropped first;
        ``[nan, nan]`` when nothing is left or ``bootstrap`` is 0.
    """
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return [float("nan"), float("nan")]
    return list(bootstrap_ci(_mean, values, n=bootstrap, seed=seed))


# --- metrics.json ----------------------------------------------------------------


def _json_value(key: str, value):
    """Plain JSON value: numpy/torch scalars and arrays unwrapped, NaN/inf -> None."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # torch tensor, without importing torch
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        value = value.tolist()
    elif isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, (list, tuple)):
        items = [_json_value(key, v) for v in value]
        if any(isinstance(v, list) for v in items):
            raise ValueError(f"metrics.json is flat: {key!r} is nested")
        return items
    if isinstance(value, dict):
        raise ValueError(f"metrics.json is flat: {key!r} is a mapping")
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    raise TypeError(f"cannot write {key!r} of type {type(value).__name__} to metrics.json")


def write_metrics_json(path, *, task: str, split: str, n: int, **metrics) -> dict:
    """Write ``metrics.json`` as CONTRACT.md defines it, atomically.

    One flat JSON object: ``task``, ``split``, ``n``, then the metrics in the order
    given, keys lower-cased (``MAE`` -> ``mae``). Values may be Python, numpy or torch
    scalars, or ``[low, high]`` lists for ``*_ci95``; NaN and infinities become
    ``null``. The file is written to a temporary file in the same folder and moved
    into place with ``os.replace``, so readers never see half a file.

    Returns:
        The dictionary written.
    """
    path = Path(path)
    record: dict = {}
    for key, value in {"task": task, "split": split, "n": n, **metrics}.items():
        low = key.lower()
        if low in record:
            raise ValueError(f"metric {key!r} given twice (keys are lower-cased)")
        record[low] = _json_value(low, value)
    text = json.dumps(record, indent=2, allow_nan=False) + "\n"
    atomic_write_text(path, text)
    return record
