"""Metrics, volumes, beat analysis, probes, saliency and reports.

The metric functions take numpy arrays or tensors (``from echossl.evaluation import dice``).
"""

from __future__ import annotations

from echossl._lazy import lazy_exports

_LAZY = {
    # echossl.evaluation.metrics
    "mae": "echossl.evaluation.metrics", "rmse": "echossl.evaluation.metrics",
    "r2": "echossl.evaluation.metrics", "dice": "echossl.evaluation.metrics",
    "bootstrap_ci": "echossl.evaluation.metrics", "regression_metrics": "echossl.evaluation.metrics",
    "mean_ci": "echossl.evaluation.metrics", "write_metrics_json": "echossl.evaluation.metrics",
    # echossl.evaluation.stats
    "paired_bootstrap": "echossl.evaluation.stats",
    # echossl.evaluation.volumes
    "mask_volume": "echossl.evaluation.volumes",
    # echossl.evaluation.beats
    "segmentation_ef": "echossl.evaluation.beats", "find_beats": "echossl.evaluation.beats",
    "beat_ef": "echossl.evaluation.beats", "high_frequency_power": "echossl.evaluation.beats",
    # echossl.evaluation.saliency_metrics
    "kl_divergence": "echossl.evaluation.saliency_metrics",
    "correlation_coefficient": "echossl.evaluation.saliency_metrics",
    "similarity": "echossl.evaluation.saliency_metrics", "nss": "echossl.evaluation.saliency_metrics",
    "auc_judd": "echossl.evaluation.saliency_metrics",
   
    # echossl.evaluation.saliency
    "smoothgrad": "echossl.evaluation.saliency", "saliency_dice": "echossl.evaluation.saliency",
    # echossl.evaluation.run_report
    "write_run_report": "echossl.evaluation.run_report", "surface_metrics": "echossl.evaluation.run_report",
    "load_run": "echossl.evaluation.run_report",
    # echossl.evaluation.report
    "write_report": "echossl.evaluation.report",
}
__all__ = [*sorted(_LAZY)]

# imported on first use, so that importing the package stays fast
__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
