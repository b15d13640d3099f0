"""Backbones and heads, built by name from presets.

Builders by name (``build_segmenter("small_deeplab")``), imported on first use.
"""

from __future__ import annotations

from echossl._lazy import lazy_exports

_LAZY = {
    # echossl.models.segmentation
    "build_segmenter": "echossl.models.segmentation", "Segmenter": "echossl.models.segmentation",
    # echossl.models.video
    "build_video_regressor": "echossl.models.video", "SmallR2Plus1D": "echossl.models.video",
    "widen_input": "echossl.models.video",
    # echossl.models.video_seg
    "build_video_net": "echossl.models.video_seg", "UNet3DVideo": "echossl.models.video_seg",
    "SuperImageUNet": "echossl.models.video_seg",
    # echossl.models.vit
    "build_vit": "echossl.models.vit", "VideoViT": "echossl.models.vit", "ImageViT": "echossl.models.vit",
    "count_parameters": "echossl.models.vit",
    # echossl.models.mrjet
    "JigsawNet": "echossl.models.mrjet", "MRJetNet": "echossl.models.mrjet",
    # echossl.models.video_speech
    "VideoSpeechNet": "echossl.models.video_speech", "PlaneClassifier": "echossl.models.video_speech",
    "SaliencyNet": "echossl.models.video_speech",
}
__all__ = [*sorted(_LAZY)]

# imported on first use, so that importing the package stays fast
__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
