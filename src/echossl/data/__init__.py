"""Readers of real data formats, clip sampling, the decoded-frame cache and checks.

Every public name is imported on first use (``from echossl.data import EchoNetDynamic``).
"""

from __future__ import annotations

from echossl._lazy import lazy_exports

_LAZY = {
    # echossl.data.echonet
    "EchoNetDynamic": "echossl.data.echonet", "EchoNetFrames": "echossl.data.echonet",
    "read_filelist": "echossl.data.echonet", "read_tracings": "echossl.data.echonet",
    "trace_mask": "echossl.data.echonet", "ed_es_frames": "echossl.data.echonet",
    "labeled_split": "echossl.data.echonet", "compute_mean_std": "echossl.data.echonet",
    "load_truth": "echossl.data.echonet", "validate": "echossl.data.echonet",
    # echossl.data.camus
    "Camus": "echossl.data.camus", "read_info": "echossl.data.camus", "camus_splits": "echossl.data.camus",
    "list_patients": "echossl.data.camus", "load_nifti_sequence": "echossl.data.camus",
    # echossl.data.datamodules
    "EchoNetDynamicDataModule": "echossl.data.datamodules", "CamusDataModule": "echossl.data.datamodules",
    "collate_items": "echossl.data.datamodules",
    # echossl.data.mrjet
    "MRJetClips": "echossl.data.mrjet", "MRJetFrames": "echossl.data.mrjet",
    # echossl.data.sweep
    "VideoSpeechIntervals": "echossl.data.sweep", "PlaneFrames": "echossl.data.sweep",
    "SaliencyFrames": "echossl.data.sweep", "load_split": "echossl.data.sweep",
    # echossl.data.video
    "read_video": "echossl.data.video", "write_video": "echossl.data.video",
    "video_info": "echossl.data.video",
    # echossl.data.cache
    "FrameCache": "echossl.data.cache",
    # echossl.data.check
    "check_dir": "echossl.data.check", "detect_format": "echossl.data.check",
    # echossl.data.sampling
    "all_starts": "echossl.data.sampling", "spaced_starts": "echossl.data.sampling",
    "clip_indices": "echossl.data.sampling",
}
__all__ = [*sorted(_LAZY)]

# imported on first use, so that importing the package stays fast
__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
