"""One module per paper: its losses and LightningModules.

The losses are plain functions of tensors, usable in any training loop
(``from echossl.methods import cyclical_loss``); the LightningModules wrap them.
"""

from __future__ import annotations

from echossl._lazy import lazy_exports

_LAZY = {
    # echossl.methods.css
    "cyclical_loss": "echossl.methods.css", "cyclical_logits": "echossl.methods.css",
    "frame_embeddings": "echossl.methods.css", "SegmentationModule": "echossl.methods.css",
    # echossl.methods.distill
    "distillation_loss": "echossl.methods.distill", "TeacherStudent": "echossl.methods.distill",
    # echossl.methods.ef
    "EFRegression": "echossl.methods.ef",
    # echossl.methods.discover
    "semantic_cluster_distillation": "echossl.methods.discover",
    "sinkhorn_targets": "echossl.methods.discover", "MaskedViewDistillation": "echossl.methods.discover",
    "DiscoverModule": "echossl.methods.discover",
    # echossl.methods.mrjet
    "structure_recovery_loss": "echossl.methods.mrjet", "color_tolerance_loss": "echossl.methods.mrjet",
    "recognition_loss": "echossl.methods.mrjet", "max_frame_dice_loss": "echossl.methods.mrjet",
    "JigsawModule": "echossl.methods.mrjet", "MRJetModule": "echossl.methods.mrjet",
    # echossl.methods.unilvseg
    "mask_frames": "echossl.methods.unilvseg", "reconstruction_loss": "echossl.methods.unilvseg",
    "sparse_dice_loss": "echossl.methods.unilvseg", "TemporalMaskingModule": "echossl.methods.unilvseg",
    "VideoSegModule": "echossl.methods.unilvseg",
    # echossl.methods.video_speech
    "cross_modal_contrast": "echossl.methods.video_speech",
    "correlation_loss": "echossl.methods.video_speech", "saliency_kl_loss": "echossl.methods.video_speech",
    "VideoSpeechPretraining": "echossl.methods.video_speech", "PlaneModule": "echossl.methods.video_speech",
    "SaliencyModule": "echossl.methods.video_speech",
    # echossl.methods.optim
    "build_optimizer": "echossl.methods.optim",
}
__all__ = [*sorted(_LAZY)]

# imported on first use, so that importing the package stays fast
__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
