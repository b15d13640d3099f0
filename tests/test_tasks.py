"""The one task table (engine/tasks.py): every row points at real code that agrees with it."""

from __future__ import annotations

import inspect

import pytest

from echossl.engine.tasks import KINDS, TASKS, get_task, tasks_of_kind
from echossl.errors import CheckpointError


@pytest.mark.parametrize("name", sorted(TASKS))
def test_row_points_at_its_module_and_evaluation(name):
    task = TASKS[name]
    cls = task.module_class()
    params = inspect.signature(cls.__init__).parameters
    assert "task" in params, f"{cls.__name__} does not record its task"
    if task.module.endswith(":DiscoverModule"):
        assert name in ("discover", "videomae", "video-dino")  # one module, task = variant
    else:
        assert params["task"].default == name
    assert hasattr(task.pipeline_module(), "evaluate_checkpoint" if task.pipeline else "evaluate")
    assert task.kind in KINDS and task.description.endswith(".")


def test_unknown_task_is_one_sentence_naming_the_checkpoint():
    with pytest.raises(CheckpointError, match=r"checkpoint x\.ckpt is for task 'nope'.*known: seg, ef"):
        get_task("nope", "x.ckpt")


def test_kinds_partition_the_table():
    assert set(tasks_of_kind(*KINDS)) == set(TASKS)
    assert tasks_of_kind("ef") == ("ef", "distill")
