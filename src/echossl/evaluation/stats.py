"""Paired statistics for comparing rows of a results table on the same TEST items.

Every claim of a ``reproduce`` table or of ``echossl demo`` is a *paired*
difference: two rows are scored on the same TEST items (videos, scans), the
per-item metric (e.g. the absolute EF error of each video) is differenced, and
the difference is bootstrapped by resampling the *unit* — the video or scan —
never the frame: frames of one scan are strongly correlated, and resampling
them as if independent makes intervals far too narrow.

Conventions (CONTRACT.md "claims")::

    {"claim": str, "difference": float, "ci95": [lo, hi], "verdict": "holds"|"fails"|"inconclusive"}

Seeds: :func:`combine_seeds` averages each item's *error* over the training
seeds (labeled subset fixed by ``cfg["split_seed"]``) before pairing. The figure
is then the expected error of one training run of the method on that item, and
the bootstrap resamples items only; run-to-run variation is averaged out of the
point estimate rather than added to the interval. Averaging *predictions*
instead would score a seed ensemble, which is a different (better) model than
any row of the paper's table.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from echossl.errors import EchosslError

VERDICTS = ("holds", "fails", "inconclusive")


def _as_units(a: np.ndarray, groups) -> tuple[np.ndarray, np.ndarray]:
    """Item -> unit index ``(N,)`` and the number of units; identity without ``groups``."""
    if groups is None:
        return np.arange(len(a)), len(a)
    groups = np.asarray(groups)
    if groups.shape[0] != len(a):
        raise EchosslError(f"groups has {groups.shape[0]} entries but there are {len(a)} items")
    _, inverse = np.unique(groups, return_inverse=True)
    return inverse.reshape(-1), int(inverse.max()) + 1


def _resample_weights(n_units: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """``(n_boot, U)`` counts: how often each unit is drawn in each bootstrap replicate."""
    draws = rng.integers(0, n_units, size=(n_boot, n_units))
    offsets = (np.arange(n_boot) * n_units)[:, None]
    return np.bincount((draws + offsets).ravel(), minlength=n_boot * n_units).reshape(n_boot, n_units)


def bootstrap_means(arrays: Sequence, *, groups=None, n_boot: int = 10000, seed: int = 0):
    """Item-weighted means of several per-item arrays under one cluster bootstrap.

    Args:
        arrays: K arrays of shape ``(N,)`` over the same N items (same order).
        groups: optional ``(N,)`` unit label per item (e.g. the scan of each frame);
            units are resampled with replacement, each bringing all its items.
    Returns:
        ``(point, boot)``: ``(K,)`` means on the data and ``(n_boot, K)`` means of
        the replicates (the same resampled units for every array: paired).
    """
    x = np.stack([np.asarray(a, dtype=np.float64).reshape(-1) for a in arrays])  # (K, N)
    if x.shape[1] == 0:
        raise EchosslError("paired bootstrap: no items to compare")
    if not np.all(np.isfinite(x)):
        raise EchosslError("paired bootstrap: the per-item values contain NaN or infinity")
    unit, n_units = _as_units(x[0], groups)
    sums = np.stack([np.bincount(unit, weights=row, minlength=n_units) for row in x])  # (K, U)
    counts = np.bincount(unit, minlength=n_units).astype(np.float64)  # (U,)
    w = _resample_weights(n_units, n_boot, np.random.default_rng(seed)).astype(np.float64)  # (B, U)
    boot = (w @ sums.T) / (w @ counts)[:, None]  # (B, K)
    return x.mean(axis=1), boot


def paired_bootstrap(a, b, *, groups=None, n_boot: int = 10000, seed: int = 0,
                     statistic: Callable | None = None) -> tuple[float, list[float]]:
    """Difference ``statistic(a) - statistic(b)`` of two rows on the same items, with a 95 % CI.

    Args:
        a, b: ``(N,)`` per-item metric of two rows (e.g. absolute EF error per
            TEST video), item i of ``a`` and of ``b`` being the same item.
        groups: optional ``(N,)`` unit of each item; units, not items, are
            resampled (pass the video of each frame so frames are never resampled alone).
        statistic: ``None`` (the mean, vectorised) or a function of a ``(n,)`` array
            returning a float (e.g. ``np.median``), applied to the items of the
            resampled units.
    Returns:
        ``(difference, [lo, hi])``: percentile interval of the paired bootstrap.
    """
    a = np.asarray(a, dtype=np.float64).reshape(-1)
    b = np.asarray(b, dtype=np.float64).reshape(-1)
    if a.shape != b.shape:
        raise EchosslError(f"paired bootstrap: rows have {a.size} and {b.size} items; they must be the same items")
    if statistic is None or statistic is np.mean:
        point, boot = bootstrap_means([a - b], groups=groups, n_boot=n_boot, seed=seed)
        diffs = boot[:, 0]
        diff = float(point[0])
    else:
        unit, n_units = _as_units(a, groups)
        members = [np.flatnonzero(unit == u) for u in range(n_units)]
        rng = np.random.default_rng(seed)
        diffs = np.empty(n_boot)
        for k in range(n_boot):  # a generic statistic cannot be vectorised over replicates
            idx = np.concatenate([members[u] for u in rng.integers(0, n_units, n_units)])
            diffs[k] = statistic(a[idx]) - statistic(b[idx])
        diff = float(statistic(a) - statistic(b))
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    return diff, [float(lo), float(hi)]


def bootstrap_function(arrays: Sequence, fn: Callable[[np.ndarray], np.ndarray], *, groups=None,
                       n_boot: int = 10000, seed: int = 0) -> tuple[float, list[float]]:
    """A function of several rows' paired means, e.g. the fraction of a gap recovered.

    ``fn`` maps a ``(..., K)`` array of row means to ``(...)`` values (it is called
    once on the data and once, vectorised, on the ``(n_boot, K)`` replicates).
    Replicates where ``fn`` is not finite (a gap of zero) are dropped.
    """
    point, boot = bootstrap_means(arrays, groups=groups, n_boot=n_boot, seed=seed)
    vals = np.asarray(fn(boot), dtype=np.float64)
    vals = vals[np.isfinite(vals)]
    value = float(fn(point[None])[0])
    if vals.size == 0:
        return value, [float("nan"), float("nan")]
    lo, hi = np.percentile(vals, [2.5, 97.5])
    return value, [float(lo), float(hi)]


def verdict(diff: float, ci, better: str = "lower", threshold: float = 0.0) -> str:
    """``holds`` when the whole CI lies on the claimed side of ``threshold``,
    ``fails`` when it lies wholly on the other side, else ``inconclusive``.

    ``better="lower"``: the claim is ``value < threshold`` (e.g. a MAE difference
    below 0); ``"higher"``: ``value > threshold``.
    """
    if better not in ("lower", "higher"):
        raise EchosslError(f"verdict: better must be 'lower' or 'higher', got {better!r}")
    lo, hi = float(ci[0]), float(ci[1])
    if not (np.isfinite(lo) and np.isfinite(hi) and np.isfinite(diff)):
        return "inconclusive"
    if better == "lower":
        return "holds" if hi < threshold else "fails" if lo > threshold else "inconclusive"
    return "holds" if lo > threshold else "fails" if hi < threshold else "inconclusive"


def claim(text: str, diff: float, ci, better: str = "lower", threshold: float = 0.0) -> dict:
    """One entry of the ``claims`` list (CONTRACT.md)."""
    return {"claim": text, "difference": float(diff), "ci95": [float(ci[0]), float(ci[1])],
            "verdict": verdict(diff, ci, better, threshold)}


def informative(oracle, floor, *, better: str = "lower", groups=None, n_boot: int = 10000, seed: int = 0) -> dict:
    """Whether a protocol can tell methods apart: the oracle beats the floor by more than the paired CI.

    Args:
        oracle, floor: ``(N,)`` per-item metric of the oracle row (true masks,
            supervised backbone) and the floor row (random init) on the same items.
    Returns:
        ``{"difference", "ci95", "informative": bool}``, the difference being oracle - floor.
    """
    diff, ci = paired_bootstrap(oracle, floor, groups=groups, n_boot=n_boot, seed=seed)
    return {"difference": diff, "ci95": ci, "informative": verdict(diff, ci, better) == "holds"}


def combine_seeds(per_seed_errors) -> np.ndarray:
    """``(S, N)`` per-item errors of S training seeds -> ``(N,)`` per-item mean over seeds.

    The labeled subset must be the same for every seed (``cfg["split_seed"]``
    fixed); see the module docstring for why errors, not predictions, are averaged.
    """
    e = np.asarray(per_seed_errors, dtype=np.float64)
    if e.ndim == 1:
        return e
    if e.ndim != 2:
        raise EchosslError(f"combine_seeds takes (seeds, items) errors, got shape {e.shape}")
    return e.mean(axis=0)


def format_claims(claims: list[dict]) -> list[dict]:
    """``claims`` as table rows: claim | difference [95% CI] | verdict."""
    return [{"claim": c["claim"], "difference [95% CI]":
             f"{c['difference']:+.3f} [{c['ci95'][0]:+.3f}, {c['ci95'][1]:+.3f}]", "verdict": c["verdict"]}
            for c in claims]


def paired_balanced_accuracy(correct_a, correct_b, labels, *, groups=None, n_boot: int = 10000,
                             seed: int = 0) -> tuple[float, list[float]]:
    """Paired difference of balanced accuracy (mean per-class recall), ``bAcc(a) - bAcc(b)``.

    Balanced accuracy is not a mean over items, so each replicate recomputes it from
    the resampled units: with ``1[y = c]`` the class indicator, it is the mean over
    classes of ``mean(correct · 1[y = c]) / mean(1[y = c])`` (:func:`bootstrap_function`).
    Replicates that miss a class are dropped.

    Args:
        correct_a, correct_b: ``(N,)`` per-item correctness of two rows (1/0, or the
            mean correctness over seeds from :func:`combine_seeds`).
        labels: ``(N,)`` true class of each item.
    """
    a = np.asarray(correct_a, dtype=np.float64).reshape(-1)
    b = np.asarray(correct_b, dtype=np.float64).reshape(-1)
    y = np.asarray(labels).reshape(-1)
    if not (a.shape == b.shape == y.shape):
        raise EchosslError(f"paired balanced accuracy: {a.size}, {b.size} and {y.size} items; they must be the same")
    classes = np.unique(y)
    arrays = []
    for c in classes:
        ind = (y == c).astype(np.float64)
        arrays += [a * ind, b * ind, ind]

    def fn(m):
        with np.errstate(divide="ignore", invalid="ignore"):
            ra = np.mean([m[..., 3 * j] / m[..., 3 * j + 2] for j in range(len(classes))], axis=0)
            rb = np.mean([m[..., 3 * j + 1] / m[..., 3 * j + 2] for j in range(len(classes))], axis=0)
        return ra - rb

    return bootstrap_function(arrays, fn, groups=groups, n_boot=n_boot, seed=seed)


def paired_bootstrap_sums(parts_a, parts_b, fn: Callable[[np.ndarray], np.ndarray], *, n_boot: int = 10000,
                          seed: int = 0) -> tuple[float, list[float]]:
    """Paired cluster bootstrap of a metric that is a function of *summed* per-unit parts.

    Corpus metrics such as macro-F1 are not means of per-item values, but they are functions
    of additive per-unit counts (a confusion matrix per scan). Each replicate draws units
    (scans) with replacement, sums their parts, applies ``fn``, and differences the two rows
    (the same draws for both: paired).

    Args:
        parts_a, parts_b: ``(S, U, *part)`` per-unit parts of the two rows for S training seeds
            (S may differ between rows; U and the part shape may not; one seed: ``x[None]``).
            ``fn`` is applied per seed and averaged over seeds: the expected metric of one
            training run, as :func:`combine_seeds` does for per-item errors.
        fn: maps summed parts ``(..., *part)`` to values ``(...)`` (vectorised).
    Returns:
        ``(fn(a) - fn(b), [lo, hi])``: the difference on the data and its 95 % percentile CI.
    """
    a, b = np.asarray(parts_a, dtype=np.float64), np.asarray(parts_b, dtype=np.float64)
    if a.ndim < 2 or a.shape[1:] != b.shape[1:]:
        raise EchosslError(f"paired bootstrap: parts of shapes {a.shape} and {b.shape} are not (seeds, units, ...) "
                           "of the same units")
    n_units = a.shape[1]
    if n_units == 0:
        raise EchosslError("paired bootstrap: no units to compare")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise EchosslError("paired bootstrap: the per-unit parts contain NaN or infinity")
    w = _resample_weights(n_units, n_boot, np.random.default_rng(seed)).astype(np.float64)  # (B, U)
    part = a.shape[2:]

    def value(x):  # (S, U, *part) -> point, (B,) replicates
        flat = x.reshape(x.shape[0], n_units, -1)                                   # (S, U, P)
        point = float(np.mean(fn(flat.sum(1).reshape(x.shape[0], *part))))
        boot = np.einsum("bu,sup->bsp", w, flat).reshape(n_boot, x.shape[0], *part)
        return point, np.asarray(fn(boot), dtype=np.float64).mean(axis=1)

    pa, ba = value(a)
    pb, bb = value(b)
    diffs = ba - bb
    diffs = diffs[np.isfinite(diffs)]
    if diffs.size == 0:
        return pa - pb, [float("nan"), float("nan")]
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    return pa - pb, [float(lo), float(hi)]


def macro_f1_from_confusion(conf) -> np.ndarray:
    """Macro-F1 over the classes present (non-zero true support) of ``(..., K, K)`` confusion
    matrices (rows = true, columns = predicted) -> ``(...)``; as sklearn's ``f1_score(average="macro",
    labels=<classes present>, zero_division=0)``."""
    c = np.asarray(conf, dtype=np.float64)
    tp = np.diagonal(c, axis1=-2, axis2=-1)
    support, predicted = c.sum(-1), c.sum(-2)
    denom = support + predicted
    f1 = np.where(denom > 0, 2 * tp / np.where(denom > 0, denom, 1), 0.0)
    present = support > 0
    return (f1 * present).sum(-1) / np.maximum(present.sum(-1), 1)
