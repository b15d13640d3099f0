"""Metrics, volumes, beat analysis, probes, saliency and reports."""
