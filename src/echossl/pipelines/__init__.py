"""End-to-end workflows that tie data, methods, engine and evaluation together (one per paper).

Each workflow is a submodule, imported on first use (``echossl.pipelines.semisupervised_ef``).
"""

from __future__ import annotations

__all__ = ["semisupervised_ef", "demo", "unilvseg", "discover", "mrjet", "video_speech", "evaluate", "predict",
           "calibrate"]


def __getattr__(name: str):
    if name in __all__:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
