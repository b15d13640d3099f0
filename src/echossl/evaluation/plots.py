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


def _finish_lines(fig, ax, xlabel: str, ylabel: str, title: str, fmt: str, *, legend: bool) -> bytes:
    """Labels, title, grid and legend of a line plot, then its encoded bytes."""
    if legend:
        ax.legend(loc="best", fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    return _png(fig, fmt)


def _png(fig, fmt: str = "png") -> bytes:
    """The figure's bytes in ``fmt`` ("png" or "svg"); SVG text is UTF-8 encoded."""
    if fmt not in ("png", "svg"):
        raise ValueError(f"figure format must be png or svg, not {fmt!r}")
    buf = io.BytesIO()
    fig.tight_layout()
    # a fixed hash salt makes SVG ids repeatable, so identical figures give identical files
    with matplotlib.rc_context({"svg.hashsalt": "echossl", "svg.fonttype": "none"}):
        fig.savefig(buf, format=fmt)
    return buf.getvalue()


def _vector(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float64).reshape(-1)


def scatter_pred_true(y_true, y_pred, title: str = "", *, xlabel: str = "Actual EF (%)",
                      ylabel: str = "Predicted EF (%)", fmt: str = "png") -> bytes:
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
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    return _png(fig, fmt)


def agreement(y_true, y_pred) -> dict:
    """Bland–Altman statistics of ``pred − true``: ``bias``, ``sd`` (ddof 1), ``loa_low``, ``loa_high``
    (bias ∓ 1.96 SD) and ``n``; NaN pairs are left out."""
    y_true, y_pred = _vector(y_true), _vector(y_pred)
    diff = y_pred - y_true
    diff = diff[np.isfinite(diff)]
    bias = float(diff.mean()) if diff.size else float("nan")
    sd = float(diff.std(ddof=1)) if diff.size > 1 else 0.0
    return {"bias": bias, "sd": sd, "loa_low": bias - 1.96 * sd, "loa_high": bias + 1.96 * sd, "n": int(diff.size)}


def bland_altman(y_true, y_pred, title: str = "", *, unit: str = "EF (%)", fmt: str = "png") -> bytes:
    """Bland–Altman plot: difference (pred − true) against the mean, bias ± 1.96 SD.

    The bias line and both limits of agreement carry their values as text at the
    right edge, so a printed figure can be read without the legend.
    """
    y_true, y_pred = _vector(y_true), _vector(y_pred)
    mean = (y_true + y_pred) / 2.0
    diff = y_pred - y_true
    fig, ax = _figure()
    ax.scatter(mean, diff, s=10, alpha=0.7, edgecolors="none")
    stats = agreement(y_true, y_pred)
    if stats["n"]:
        lines = ((stats["bias"], "-", f"bias {stats['bias']:+.2f}"),
                 (stats["loa_high"], "--", f"+1.96 SD {stats['loa_high']:+.2f}"),
                 (stats["loa_low"], "--", f"−1.96 SD {stats['loa_low']:+.2f}"))
        for y, style, text in lines:
            ax.axhline(y, color="k", ls=style, lw=1, label=text)
            # x in axes fraction, y in data units: the label sits on its line at the right edge
            ax.annotate(text, xy=(0.99, y), xycoords=("axes fraction", "data"), ha="right", va="bottom",
                        fontsize=8, color="0.15")
        span = stats["loa_high"] - stats["loa_low"]
        finite = diff[np.isfinite(diff)]
        lo = min(stats["loa_low"], float(finite.min())) - 0.15 * (span or 1.0)
        hi = max(stats["loa_high"], float(finite.max())) + 0.15 * (span or 1.0)
        ax.set_ylim(lo, hi)
    ax.set_xlabel(f"Mean of actual and predicted {unit}")
    ax.set_ylabel(f"Predicted − actual {unit}")
    ax.set_title(title)
    return _png(fig, fmt)


def roc_curves(y_true, y_pred, thresholds=(35, 40, 45, 50), title: str = "", *, fmt: str = "png"
               ) -> tuple[bytes, list[dict]]:
    """ROC curves for detecting ``true < t`` from the predicted value, one per threshold.

    Lower predictions mean "positive" (reduced EF), so the score is ``−pred``.
    A threshold with only one class among the true values has no curve; its row
    says so (``auc`` None) instead of failing.

    Returns:
        ``(figure bytes, rows)`` with rows ``{"threshold", "positives", "negatives", "auc"}``.
    """
    from sklearn.metrics import roc_auc_score, roc_curve

    y_true, y_pred = _vector(y_true), _vector(y_pred)
    keep = np.isfinite(y_true) & np.isfinite(y_pred)
    y_true, y_pred = y_true[keep], y_pred[keep]
    fig, ax = _figure(4.8, 4.5)
    ax.plot([0, 1], [0, 1], color="0.6", ls=":", lw=1)
    rows = []
    for t in thresholds:
        positive = y_true < float(t)
        pos, neg = int(positive.sum()), int((~positive).sum())
        auc = None
        if pos and neg:
            fpr, tpr, _ = roc_curve(positive, -y_pred)
            auc = float(roc_auc_score(positive, -y_pred))
            ax.plot(fpr, tpr, lw=1.5, label=f"EF < {t:g} %: AUC {auc:.2f} ({pos}+/{neg}−)")
        rows.append({"threshold": float(t), "positives": pos, "negatives": neg, "auc": auc})
    if any(r["auc"] is not None for r in rows):
        ax.legend(loc="lower right", fontsize=7)
    else:
        ax.text(0.5, 0.5, "every threshold has one class only", ha="center", va="center", fontsize=9)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("False-positive rate (1 − specificity)")
    ax.set_ylabel("True-positive rate (sensitivity)")
    ax.set_title(title)
    return _png(fig, fmt), rows


def area_curve(area, ed_frames=(), es_frames=(), title: str = "", *, ylabel: str = "LV area",
               xlabel: str = "frame", fps: float | None = None, fmt: str = "png") -> bytes:
    """LV area (or volume) over ``(T,)`` frames with ED and ES picks marked.

    With ``fps`` the x axis is in seconds; ``ylabel`` names the unit
    (e.g. "LV area (cm²)" when the pixel spacing is known).
    """
    area = _vector(area)
    ed = np.asarray(ed_frames, dtype=int).reshape(-1)
    es = np.asarray(es_frames, dtype=int).reshape(-1)
    scale = 1.0 / fps if fps else 1.0
    t = np.arange(area.size) * scale
    fig, ax = _figure(6.0, 3.0)
    ax.plot(t, area, color="0.3", lw=1.2)
    if ed.size:
        ax.plot(ed * scale, area[ed], "o", color="tab:red", label="ED")
    if es.size:
        ax.plot(es * scale, area[es], "o", color="tab:blue", label="ES")
    if ed.size or es.size:
        ax.legend(loc="best", fontsize=8)
    ax.set_xlabel("time (s)" if fps else xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    return _png(fig, fmt)


def saliency_overlay(frame, saliency, mask=None, title: str = "", *, fmt: str = "png") -> bytes:
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
    return _png(fig, fmt)


def mask_overlay(frame, pred, truth=None, title: str = "", *, fmt: str = "png") -> bytes:
    """A frame with the predicted LV outline (red) and, if given, the traced one (green, dashed).

    Args:
        frame: ``(H, W)`` or ``(H, W, 3)`` uint8 image.
        pred, truth: ``(H, W)`` bool masks at the frame's size.
    """
    frame = np.asarray(frame)
    fig, ax = _figure(3.2, 3.4)
    ax.imshow(frame, cmap="gray" if frame.ndim == 2 else None, vmin=0, vmax=255)
    handles = []
    for m, colour, style, name in ((pred, "tab:red", "solid", "predicted"), (truth, "lime", "dashed", "traced")):
        if m is None:
            continue
        m = np.asarray(m, dtype=float)
        if m.any() and not m.all():
            ax.contour(m, levels=[0.5], colors=colour, linewidths=1.2, linestyles=style)
            handles.append(matplotlib.lines.Line2D([], [], color=colour, ls=style, label=name))
    if handles:
        ax.legend(handles=handles, loc="lower right", fontsize=7, framealpha=0.6)
    ax.set_axis_off()
    ax.set_title(title, fontsize=9)
    return _png(fig, fmt)


def loss_curves(curves: dict, title: str = "", *, xlabel: str = "step", ylabel: str = "loss",
                fmt: str = "png") -> bytes:
    """Training curves ``{name: (x (K,), y (K,))}`` on one axis (log scale when all values are positive
    and span more than a factor of 20)."""
    fig, ax = _figure(6.0, 3.6)
    positive, lo, hi = True, np.inf, -np.inf
    for name, (x, y) in curves.items():
        x, y = _vector(x), _vector(y)
        keep = np.isfinite(x) & np.isfinite(y)
        if not keep.any():
            continue
        ax.plot(x[keep], y[keep], lw=1.2, label=str(name), marker="." if keep.sum() < 30 else None)
        positive &= bool((y[keep] > 0).all())
        lo, hi = min(lo, float(y[keep].min())), max(hi, float(y[keep].max()))
    if positive and np.isfinite(lo) and lo > 0 and hi / lo > 20:
        ax.set_yscale("log")
    return _finish_lines(fig, ax, xlabel, ylabel, title, fmt, legend=bool(curves))


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


def line_plot(x, series: dict, title: str = "", xlabel: str = "", ylabel: str = "", *, fmt: str = "png") -> bytes:
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
    return _finish_lines(fig, ax, xlabel, ylabel, title, fmt, legend=bool(series))
