"""``echossl predict``: EF for every input video, plus ED/ES and EF_Seg for segmentation checkpoints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from echossl.checkpoints import load_checkpoint
from echossl.data.cache import FrameCache
from echossl.data.video import video_info
from echossl.errors import EchosslError
from echossl.evaluation.beats import segmentation_ef
from echossl.io import atomic_write_text
from echossl.progress import progress_bar


def gather_videos(inputs) -> list[Path]:
    """AVI files from a mix of files and folders (folders searched one level, then ``Videos/``)."""
    videos: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            found = sorted(item.glob("*.avi")) or sorted((item / "Videos").glob("*.avi"))
            if not found:
                raise EchosslError(f"input folder {item} holds no .avi videos")
            videos += found
        elif item.is_file():
            videos.append(item)
        else:
            raise EchosslError(f"input {item} does not exist")
    if not videos:
        raise EchosslError("no input videos were given")
    return videos


def _segmenter(ckpt: dict, cfg: dict):
    """``(F, H, W, 3)`` uint8 frames -> ``(F, H, W)`` LV probability, for a ``seg`` or ``video-seg`` checkpoint.

    A 2D segmenter runs frame by frame; a video segmenter over sliding clips,
    with overlapping predictions averaged (UniLVSeg whole-video inference).
    """
    if ckpt["hyper_parameters"]["task"] == "seg":
        from echossl.pipelines import semisupervised_ef as pipe

        module, hp = pipe.load_segmenter(ckpt["path"])
        return lambda frames: pipe.segment_video(module, frames, hp["norm"], cfg["seg"].get("infer_batch", 64))
    from echossl.pipelines import unilvseg

    module, hp = unilvseg.load_module(ckpt["path"])
    return lambda frames: unilvseg.segment_video(module.net, frames, hp["norm"], clip_frames=hp["frames"],
                                                 period=hp["period"])


def predict(checkpoint, inputs, out_csv, *, cfg: dict, overlay_dir=None) -> pd.DataFrame:
    """Write ``out_csv`` with ``FileName,EF`` (+ ``ED_Frame,ES_Frame,EF_Seg`` for seg and video-seg checkpoints)."""
    from echossl.pipelines import semisupervised_ef as pipe

    videos = gather_videos(inputs)
    ckpt = load_checkpoint(checkpoint, expect_task=("seg", "video-seg", "ef", "distill"))
    task = ckpt["hyper_parameters"]["task"]
    cache = FrameCache()
    rows = []
    if task in ("seg", "video-seg"):
        lv_probability = _segmenter(ckpt, cfg)
        for path in progress_bar(videos, "segmenting"):
            frames = cache.get(path)
            probs = lv_probability(frames)
            result = segmentation_ef(probs >= 0.5)
            rows.append({"FileName": path.stem, "EF": result["ef"], "ED_Frame": int(result["ed_frame"]),
                         "ES_Frame": int(result["es_frame"]), "EF_Seg": result["ef"]})
            if overlay_dir is not None:
                from echossl.evaluation.overlay import write_overlay_video

                write_overlay_video(Path(overlay_dir) / f"{path.stem}.avi", np.asarray(frames), probs >= 0.5,
                                    video_info(path)["fps"] or 50.0)
    else:
        module, hp = pipe.load_ef_model(ckpt["path"])
        if module.net.stem[0].in_channels == 4:
            raise EchosslError(f"{ckpt['path']} is a multi-input teacher that needs predicted masks; "
                               "predict with the distilled student or a video-only EF model")
        ef = cfg["ef"]
        for path in progress_bar(videos, "predicting EF"):
            x = pipe._normalise(cache.get(path), hp["norm"], "cpu")
            rows.append({"FileName": path.stem,
                         "EF": pipe.predict_ef_frames(module, x, ef["length"], ef["period"], ef["test_clips"],
                                                      ef.get("infer_batch", 16))})
    table = pd.DataFrame(rows)
    atomic_write_text(out_csv, table.to_csv(index=False, float_format="%.4f"))
    return table
