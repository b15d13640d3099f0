"""echossl: label-efficient learning on echocardiography and ultrasound video.

The most used names are importable from the top level and loaded on first use, so
``import echossl`` stays fast (torch is imported only when a name needs it)::

    import echossl
    model, settings = echossl.load_model("runs/student")
    loss = echossl.cyclical_loss(z, p_star=3)

The subpackages hold the rest: :mod:`echossl.data` (readers, Datasets,
DataModules), :mod:`echossl.methods` (losses, LightningModules),
:mod:`echossl.models` (builders), :mod:`echossl.evaluation` (metrics, reports).
"""

__version__ = "0.1.0"

_LAZY = {
    "load_model": "echossl.api", "load_module": "echossl.api", "predict_ef": "echossl.api",
    "prepare_frames": "echossl.api",
    "EchoNetDynamic": "echossl.data.echonet", "EchoNetFrames": "echossl.data.echonet", "Camus": "echossl.data.camus",
    "EchoNetDynamicDataModule": "echossl.data.datamodules", "CamusDataModule": "echossl.data.datamodules",
    "read_filelist": "echossl.data.echonet", "read_tracings": "echossl.data.echonet",
    "cyclical_loss": "echossl.methods.css", "distillation_loss": "echossl.methods.distill",
    "semantic_cluster_distillation": "echossl.methods.discover",
    "build_segmenter": "echossl.models.segmentation", "build_video_regressor": "echossl.models.video",
    "build_video_net": "echossl.models.video_seg", "build_vit": "echossl.models.vit",
    "regression_metrics": "echossl.evaluation.metrics", "dice": "echossl.evaluation.metrics",
    "write_run_report": "echossl.evaluation.run_report",
    "simulate_echonet": "echossl.simulate.echonet", "simulate_camus": "echossl.simulate.camus",
}
_SUBPACKAGES = ("api", "data", "methods", "models", "evaluation", "simulate", "pipelines")
__all__ = ["__version__", *sorted(_LAZY), *_SUBPACKAGES]


def __getattr__(name: str):
    import importlib

    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    if name in _SUBPACKAGES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
