"""Saliency-map metrics of Bylinskii et al., "What do different evaluation metrics tell us
about saliency models?" (IEEE TPAMI 41(3), 2018), as used in video-speech-contrastive.md Table 2.

All functions take a predicted map ``P`` and a ground truth of shape ``(H, W)``
or batches ``(B, H, W)`` and return one value per map (``(B,)``, or a float for a
single map). Distribution-based metrics compare ``P`` with the continuous gaze
density ``Q`` (KL, CC, SIM); location-based metrics use the binary fixation map
(NSS, AUC). Definitions follow the MIT saliency benchmark code of that paper:

* KL  = sum_i Q_i log(eps + Q_i / (eps + P_i)), both normalised to sum 1, eps = 2.2e-16 (lower is better);
* CC  = Pearson correlation of P and Q;
* SIM = sum_i min(P_i, Q_i), each map first min-max normalised to [0, 1] and then normalised
  to sum 1 (the benchmark's ``SIM.m``; a constant map becomes uniform rather than NaN);
* NSS = mean of (P - mean P) / std P at the fixated pixels (std with N - 1, as MATLAB's ``std``);
* AUC = **AUC-Judd**: every fixated pixel's saliency is a threshold; the true-positive
  rate is the share of fixations at or above it, the false-positive rate the share of
  non-fixated pixels at or above it; the curve from (0, 0) to (1, 1) is integrated
  with the trapezoid rule. (The benchmark code also adds a tiny random jitter to
  break ties; we do not, so the value is deterministic.)

Maps with no fixation give NaN for NSS and AUC; constant maps give NaN for CC and NSS.
"""

from __future__ import annotations

import numpy as np

EPS = 2.2204e-16


def _batch(x) -> tuple[np.ndarray, bool]:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 2:
        return a.reshape(1, -1), True
    if a.ndim == 3:
        return a.reshape(a.shape[0], -1), False
    raise ValueError(f"saliency maps must be (H, W) or (B, H, W), got shape {a.shape}")


def _out(v: np.ndarray, single: bool):
    return float(v[0]) if single else v


def _density(a: np.ndarray) -> np.ndarray:
    s = a.sum(1, keepdims=True)
    return a / np.where(s > 0, s, 1.0)


def kl_divergence(pred, density):
    """KL(Q || P) of the ground-truth density Q from the predicted map P."""
    p, single = _batch(pred)
    q, _ = _batch(density)
    p, q = _density(p), _density(q)
    return _out((q * np.log(EPS + q / (EPS + p))).sum(1), single)


def correlation_coefficient(pred, density):
    """Pearson CC between the predicted map and the ground-truth density."""
    p, single = _batch(pred)
    q, _ = _batch(density)
    p = p - p.mean(1, keepdims=True)
    q = q - q.mean(1, keepdims=True)
    denom = np.sqrt((p * p).sum(1) * (q * q).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return _out(np.where(denom > 0, (p * q).sum(1) / np.where(denom > 0, denom, 1), np.nan), single)


def _minmax(a: np.ndarray) -> np.ndarray:
    """Per-map min-max normalisation to [0, 1], ``(B, N) -> (B, N)``.

    A constant map has no range; the benchmark divides by zero there (NaN). We map it to ones,
    so that after sum-normalisation it is the uniform distribution (the least informative map)."""
    lo, hi = a.min(1, keepdims=True), a.max(1, keepdims=True)
    rng = hi - lo
    return np.where(rng > 0, (a - lo) / np.where(rng > 0, rng, 1.0), 1.0)


def similarity(pred, density):
    """SIM: histogram intersection ``sum_i min(P_i, Q_i)``, ``(B, H, W) -> (B,)``.

    Each map is min-max normalised and then normalised to sum 1, as in the MIT benchmark's
    ``SIM.m`` (Bylinskii et al.). Without the min-max step a map with a floor (e.g. a softmax)
    spreads mass uniformly over the floor and scores far lower than the benchmark."""
    p, single = _batch(pred)
    q, _ = _batch(density)
    return _out(np.minimum(_density(_minmax(p)), _density(_minmax(q))).sum(1), single)


def nss(pred, fixations):
    """Normalised scanpath saliency: mean standardised prediction at fixated pixels."""
    p, single = _batch(pred)
    f, _ = _batch(fixations)
    f = f > 0
    std = p.std(1, ddof=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (p - p.mean(1, keepdims=True)) / np.where(std > 0, std, np.nan)
        n = f.sum(1)
        return _out(np.where(n > 0, (z * f).sum(1) / np.maximum(n, 1), np.nan), single)


def auc_judd(pred, fixations):
    """AUC-Judd (see the module docstring), vectorised per map with sorting and ``searchsorted``."""
    p, single = _batch(pred)
    f, _ = _batch(fixations)
    f = f > 0
    out = np.full(p.shape[0], np.nan)
    for i in range(p.shape[0]):  # maps differ in their number of fixations; each map is vectorised
        s = p[i]
        if s.max() > s.min():
            s = (s - s.min()) / (s.max() - s.min())
        thresholds = np.sort(s[f[i]])[::-1]
        n_fix, n_pix = thresholds.size, s.size
        if n_fix == 0 or n_fix == n_pix:
            continue
        sorted_all = np.sort(s)
        above = n_pix - np.searchsorted(sorted_all, thresholds, side="left")  # pixels >= threshold
        tp = np.arange(1, n_fix + 1) / n_fix
        fp = (above - np.arange(1, n_fix + 1)) / (n_pix - n_fix)
        tp = np.concatenate([[0.0], tp, [1.0]])
        fp = np.concatenate([[0.0], fp, [1.0]])
        out[i] = np.trapezoid(tp, fp) if hasattr(np, "trapezoid") else np.trapz(tp, fp)
    return _out(out, single)


def saliency_metrics(pred, density, fixations) -> dict:
    """Mean KL, NSS, AUC (Judd), CC and SIM over a batch ``(B, H, W)`` (NaNs skipped)."""
    return {
        "kl": float(np.nanmean(kl_divergence(pred, density))),
        "nss": float(np.nanmean(nss(pred, fixations))),
        "auc": float(np.nanmean(auc_judd(pred, fixations))),
        "cc": float(np.nanmean(correlation_coefficient(pred, density))),
        "sim": float(np.nanmean(similarity(pred, density))),
    }


def per_map_metrics(pred, density, fixations) -> dict[str, np.ndarray]:
    """The five metrics per map, ``{"kl": (B,), ...}`` (for confidence intervals)."""
    p = np.asarray(pred)
    if p.ndim == 2:
        pred, density, fixations = (np.asarray(a)[None] for a in (pred, density, fixations))
    return {"kl": kl_divergence(pred, density), "nss": nss(pred, fixations), "auc": auc_judd(pred, fixations),
            "cc": correlation_coefficient(pred, density), "sim": similarity(pred, density)}
