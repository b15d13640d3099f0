"""Figures for reports, each returned as PNG bytes.

Figures are built on :class:`matplotlib.figure.Figure` with the Agg canvas, never
through ``pyplot``: no global figure state and no GUI backend (and the process-wide
backend is left alone), safe in worker processes and tests. The figures mirror the papers' (EchoNet-Dynamic's scatter and
Bland–Altman plots, the CSS paper's t-SNE (Fig. 5), saliency heatmaps (Fig. 4/8)
and label-fraction curves (Fig. 6)).
"""

from __future__ import annotations

import io

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

_DPI = 100


def _figure(width: float = 5.0, height: float = 4.0):
    fig = Figure(figsize=(width, height), dpi=_DPI)
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot(1, 1, 1)


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _vector(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float64).reshape(-1)


def scatter_pred_true(y_true, y_pred, title: str = "") -> bytes:
    """Predicted vs. true values (``(N,)`` each) with the identity line."""
    y_true, y_pred = _vector(y_true), _vector(y_pred)
    fig, ax = _figure(4.5, 4.5)
    ax.scatter(y_true, y_pred, s=10, alpha=0.7, edgecolors="none")
    both = np.concatenate([y_true, y_pred])
    both = both[np.isfinite(both)]
    if both.size:
        lo, hi = float(both.min()), float(both.max())
        pad = 0.05 * (hi - lo or 1.0)
        ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], "k--", lw=1)
        ax.set_xlim(lo - pad, hi + pad)
        ax.set_ylim(lo - pad, hi + pad)
    ax.set_xlabel("true")
    ax.set_ylabel("predicted")
    ax.set_title(title)
    return _png(fig)


def bland_altman(y_true, y_pred, title: str = "") -> bytes:
    """Bland–Altman plot: difference (pred − true) against the mean, bias ± 1.96 SD."""
    y_true, y_pred = _vector(y_true), _vector(y_pred)
    mean = (y_true + y_pred) / 2.0
    diff = y_pred - y_true
    fig, ax = _figure()
    ax.scatter(mean, diff, s=10, alpha=0.7, edgecolors="none")
    if diff.size:
        bias = float(np.nanmean(diff))
        sd = float(np.nanstd(diff, ddof=1)) if diff.size > 1 else 0.0
        ax.axhline(bias, color="k", lw=1, label=f"bias {bias:.2f}")
        for sign in (-1, 1):
            ax.axhline(bias + sign * 1.96 * sd, color="k", ls="--", lw=1)
        ax.legend(loc="best", fontsize=8)
    ax.set_xlabel("mean of true and predicted")
    ax.set_ylabel("predicted − true")
    ax.set_title(title)
    return _png(fig)


def area_curve(area, ed_frames=(), es_frames=(), title: str = "") -> bytes:
    """LV area (or volume) over ``(T,)`` frames with ED and ES picks marked."""
    area = _vector(area)
    ed = np.asarray(ed_frames, dtype=int).reshape(-1)
    es = np.asarray(es_frames, dtype=int).reshape(-1)
    fig, ax = _figure(6.0, 3.0)
    ax.plot(np.arange(area.size), area, color="0.3", lw=1.2)
    if ed.size:
        ax.plot(ed, area[ed], "o", color="tab:red", label="ED")
    if es.size:
        ax.plot(es, area[es], "o", color="tab:blue", label="ES")
    if ed.size or es.size:
        ax.legend(loc="best", fontsize=8)
    ax.set_xlabel("frame")
    ax.set_ylabel("LV area")
    ax.set_title(title)
    return _png(fig)


def saliency_overlay(frame, saliency, mask=None, title: str = "") -> bytes:
    """A frame with its saliency heatmap (normalised to [0, 1]) and the LV outline.

    Args:
        frame: ``(H, W)`` or ``(H, W, 3)`` uint8 image.
        saliency: ``(H, W)`` non-negative map (e.g. channel-max of SmoothGrad).
        mask: optional ``(H, W)`` bool LV mask, drawn as a white contour.
    """
    frame = np.asarray(frame)
    sal = np.asarray(saliency, dtype=np.float64)
    span = float(np.nanmax(sal) - np.nanmin(sal)) if sal.size else 0.0
    sal = (sal - np.nanmin(sal)) / span if span > 0 else np.zeros_like(sal)
    fig, ax = _figure(4.0, 4.0)
    ax.imshow(frame, cmap="gray" if frame.ndim == 2 else None, vmin=0, vmax=255)
    ax.imshow(sal, cmap="jet", alpha=0.45, vmin=0.0, vmax=1.0)
    if mask is not None:
        m = np.asarray(mask, dtype=float)
        if m.any() and not m.all():
            ax.contour(m, levels=[0.5], colors="white", linewidths=1.0)
    ax.set_axis_off()
    ax.set_title(title)
    return _png(fig)


def tsne_plot(features, labels, title: str = "", seed: int = 0) -> bytes:
    """2-D t-SNE of ``(N, D)`` features coloured by ``(N,)`` labels (CSS Fig. 5).

    The perplexity is ``min(30, (N − 1) / 3)`` so that small sets (a few clips in
    the CPU demo) still work; below 4 points the first two feature dimensions are
    drawn instead. A legend is shown for at most 12 labels.
    """
    from sklearn.manifold import TSNE

    x = np.asarray(features, dtype=np.float64)
    x = x.reshape(x.shape[0], -1)
    labels = np.asarray(labels).reshape(-1)
    if labels.size != x.shape[0]:
        raise ValueError(f"{x.shape[0]} features but {labels.size} labels")
    n = x.shape[0]
    if n >= 4:
        perplexity = float(min(30.0, max(1.0, (n - 1) / 3.0)))
        emb = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(x)
    else:
        emb = np.zeros((n, 2))
        emb[:, : min(2, x.shape[1])] = x[:, :2]
    fig, ax = _figure(5.0, 5.0)
    uniques = list(dict.fromkeys(labels.tolist()))
    cmap = matplotlib.colormaps["tab20"]
    for i, lab in enumerate(uniques):
        sel = labels == lab
        ax.scatter(emb[sel, 0], emb[sel, 1], s=12, color=cmap(i % 20), label=str(lab), edgecolors="none")
    if 0 < len(uniques) <= 12:
        ax.legend(loc="best", fontsize=7, markerscale=1.5)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title)
    return _png(fig)


def line_plot(x, series: dict, title: str = "", xlabel: str = "", ylabel: str = "") -> bytes:
    """Curves with ±SD bands, e.g. MAE against labelled fraction (CSS Fig. 6).

    Args:
        x: ``(K,)`` x values shared by all series.
        series: ``{name: (mean (K,), sd (K,) or None)}`` (a tuple), or
            ``{name: mean}``.
    """
    x = _vector(x)
    fig, ax = _figure(5.5, 4.0)
    for name, value in series.items():
        # a tuple is (mean, sd); anything else is a bare mean curve
        mean, sd = value if isinstance(value, tuple) and len(value) == 2 else (value, None)
        mean = _vector(mean)
        (line,) = ax.plot(x, mean, marker="o", ms=4, label=str(name))
        if sd is not None:
            sd = _vector(sd)
            ax.fill_between(x, mean - sd, mean + sd, color=line.get_color(), alpha=0.2, lw=0)
    if series:
        ax.legend(loc="best", fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    return _png(fig)
