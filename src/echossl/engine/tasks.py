"""The one task table: a checkpoint's ``task`` -> its LightningModule, its evaluation, its kind.

Every checkpoint echossl writes names its task in ``hyper_parameters["task"]``.
This table is the only place that maps that name to code; ``evaluate``,
``predict``, ``load_model``, the run report, the model card and ``data check``
all look tasks up here, so a new method is one new row.

Code is named by dotted path (``"package.module:Name"``) and imported on first
use: the table itself imports nothing heavy, and it never makes ``engine``
import ``methods`` or ``pipelines`` at import time (tests/test_layers.py).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from echossl.errors import CheckpointError

KINDS = ("seg", "ef", "ssl", "downstream")


@dataclass(frozen=True)
class Task:
    """One row of the table.

    Attributes:
        name: the checkpoint's ``hyper_parameters["task"]``.
        module: ``"echossl.methods.X:ClassName"``, the LightningModule rebuilt from the
            hyper-parameters.
        pipeline: the recipe module whose ``evaluate_checkpoint(checkpoint, data, split,
            out_json, *, cfg)`` scores it (``None``: ``pipelines/evaluate.py`` itself).
        kind: ``seg`` (LV masks per frame), ``ef`` (EF per video), ``ssl`` (a pre-trained
            backbone) or ``downstream`` (another paper's labelled task).
        description: one sentence for the model card.
    """

    name: str
    module: str
    pipeline: str | None
    kind: str
    description: str

    def module_class(self):
        """The LightningModule class (imported now)."""
        path, _, cls = self.module.partition(":")
        return getattr(importlib.import_module(path), cls)

    def pipeline_module(self):
        """The pipeline module that evaluates this task (imported now)."""
        return importlib.import_module(self.pipeline or "echossl.pipelines.evaluate")


_ROWS = (
    Task("seg", "echossl.methods.css:SegmentationModule", None, "seg",
         "Left-ventricle segmentation of every echocardiogram frame (2D network; EF, ED/ES frames, "
         "heart rate and volumes follow from the masks by the method of disks)."),
    Task("ef", "echossl.methods.ef:EFRegression", None, "ef",
         "Ejection-fraction regression from an echocardiogram video clip (the mean over test clips)."),
    Task("distill", "echossl.methods.distill:TeacherStudent", None, "ef",
         "Ejection-fraction regression from video: a video-only student distilled from a "
         "video+segmentation teacher."),
    Task("video-seg", "echossl.methods.unilvseg:VideoSegModule", "echossl.pipelines.unilvseg", "seg",
         "Left-ventricle segmentation of every frame by a video network over sliding clips."),
    Task("temporal-masking", "echossl.methods.unilvseg:TemporalMaskingModule", "echossl.pipelines.unilvseg", "ssl",
         "Temporal-masking pre-training of a video segmentation network (UniLVSeg)."),
    Task("discover", "echossl.methods.discover:DiscoverModule", "echossl.pipelines.discover", "ssl",
         "DISCOVER video and image self-distillation with semantic cluster distillation."),
    Task("videomae", "echossl.methods.discover:DiscoverModule", "echossl.pipelines.discover", "ssl",
         "VideoMAE-style masked-video pre-training (DISCOVER's baseline)."),
    Task("video-dino", "echossl.methods.discover:DiscoverModule", "echossl.pipelines.discover", "ssl",
         "Video DINO self-distillation (DISCOVER's ablation without the image branch)."),
    Task("jigsaw", "echossl.methods.mrjet:JigsawModule", "echossl.pipelines.mrjet", "ssl",
         "Jigsaw and colour-contrast pre-training for colour-Doppler frames."),
    Task("mrjet", "echossl.methods.mrjet:MRJetModule", "echossl.pipelines.mrjet", "downstream",
         "Mitral-regurgitation jet segmentation and max-jet frame recognition in colour-Doppler video."),
    Task("video-speech", "echossl.methods.video_speech:VideoSpeechPretraining", "echossl.pipelines.video_speech",
         "ssl", "Video-speech contrastive pre-training, self-paced by voice activity."),
    Task("plane", "echossl.methods.video_speech:PlaneModule", "echossl.pipelines.video_speech", "downstream",
         "Standard-plane detection in fetal ultrasound sweeps."),
    Task("saliency", "echossl.methods.video_speech:SaliencyModule", "echossl.pipelines.video_speech", "downstream",
         "Gaze-saliency prediction in ultrasound sweeps."),
)
TASKS: dict[str, Task] = {t.name: t for t in _ROWS}


def get_task(name: str, path=None) -> Task:
    """The row of ``name``; one sentence naming the checkpoint (``path``) when unknown.

    Raises:
        CheckpointError: ``name`` is not a task echossl writes.
    """
    if name not in TASKS:
        where = f"checkpoint {path} is for" if path is not None else "there is no"
        raise CheckpointError(f"{where} task {name!r}, which echossl does not know (known: {', '.join(TASKS)})")
    return TASKS[name]


def tasks_of_kind(*kinds: str) -> tuple[str, ...]:
    """Task names of the given kinds, in table order."""
    return tuple(t.name for t in _ROWS if t.kind in kinds)


__all__ = ["KINDS", "Task", "TASKS", "get_task", "tasks_of_kind"]
