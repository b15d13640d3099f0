"""Whole-video EF inference: the project's batched path against a naive clip-by-clip loop.

Both average the EF of every clip of a video (the reference's ``clips="all"``
test-time averaging). The naive loop is what the reference does: one clip per
forward, ``torch.no_grad``, float32. The project's path is
:func:`echossl.pipelines.semisupervised_ef.predict_ef_frames`: every clip cut in
one indexing operation, ``inference_mode``, ``infer_batch`` clips per forward.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from echossl.pipelines.semisupervised_ef import clips_from_frames, predict_ef_frames


def naive_predict_ef(module, x: torch.Tensor, length: int, period: int) -> float:
    """One clip per forward pass under ``no_grad`` (the reference's test loop)."""
    preds = []
    with torch.no_grad():
        for clip in clips_from_frames(x, length, period, "all"):
            preds.append(float(module.net(clip[None]).reshape(())))
    return float(np.mean(preds))


@torch.inference_mode()
def channels_last_predict_ef(module, x: torch.Tensor, length: int, period: int, batch_size: int) -> float:
    """The project's path with channels-last-3d clips (what it does on CUDA), timed on CPU for comparison."""
    clips = clips_from_frames(x, length, period, "all")
    preds = [module.net(clips[s:s + batch_size].contiguous(memory_format=torch.channels_last_3d)).reshape(-1)
             for s in range(0, len(clips), batch_size)]
    return float(torch.cat(preds).mean())


def _timed(fn, videos) -> tuple[list[float], float]:
    t0 = time.perf_counter()
    out = [fn(x) for x in videos]
    return out, time.perf_counter() - t0


def bench_inference(module, videos: list[torch.Tensor], *, length: int, period: int, batch_size: int) -> dict:
    """Videos/s of the naive loop and of the project's path on the same normalised videos ``(F, C, H, W)``.

    Also times the project's path with channels-last-3d inputs, to check the
    choice of keeping CPU inputs contiguous.
    """
    module = module.eval()
    predict_ef_frames(module, videos[0], length, period, "all", batch_size)  # warm-up (allocator, kernels)
    naive, t_naive = _timed(lambda x: naive_predict_ef(module, x, length, period), videos)
    fast, t_fast = _timed(lambda x: predict_ef_frames(module, x, length, period, "all", batch_size), videos)
    _, t_cl = _timed(lambda x: channels_last_predict_ef(module, x, length, period, batch_size), videos)
    clips = sum(len(clips_from_frames(x, length, period, "all")) for x in videos)
    return {
        "videos": len(videos), "clips": clips, "batch_size": batch_size,
        "naive_videos_per_s": len(videos) / t_naive,
        "project_videos_per_s": len(videos) / t_fast,
        "project_channels_last_videos_per_s": len(videos) / t_cl,
        "ratio": t_naive / t_fast,
        "max_abs_ef_difference": float(np.max(np.abs(np.subtract(naive, fast)))),
    }
