"""The shared engine: presets, a 2-process DDP fit on CPU (gloo), and a NaN guard."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest
import torch

from echossl.config import load_config
from echossl.engine import NonFiniteLossError, StopOnNonFiniteLoss


def test_presets_hold_the_papers_settings():
    paper = load_config("paper")
    assert paper["seg"]["model"] == "deeplabv3_resnet50" and paper["ef"]["model"] == "r2plus1d_18"
    css = paper["seg"]["css"]
    assert (css["length"], css["period"], css["template"], css["search"], css["s"], css["c"]) == (40, 3, 15, 21, 3, 2)
    assert css["tau"] == 10 and css["weight"] == 0.01 and paper["distill"]["w_ulb"] == 5
    assert (paper["ef"]["length"], paper["ef"]["period"], paper["ef"]["lr"]) == (32, 2, 1e-4)
    assert paper["seg"]["lr"] == 1e-5 and paper["ef"]["test_clips"] == "all"
    cpu = load_config("cpu")
    assert cpu["seg"]["css"]["weight"] == css["weight"]  # same method, smaller sizes


def test_config_file_overrides_and_is_saved(tmp_path, sim_echonet, tiny_config):
    cfg = load_config("cpu", tiny_config, {"seed": 7})
    assert cfg["data"]["size"] == 32 and cfg["seed"] == 7 and cfg["seg"]["model"] == "small_deeplab"


def test_nan_loss_stops_with_a_clear_error():
    guard = StopOnNonFiniteLoss()

    class T:
        global_step = 3

    with pytest.raises(NonFiniteLossError, match="last good checkpoint"):
        guard.on_train_batch_end(T(), None, torch.tensor(float("nan")), None, 0)
    guard.on_train_batch_end(T(), None, torch.tensor(1.0), None, 0)  # finite: no error
    # a finite loss with weights already gone to inf (an inf gradient): the checkpoint is refused
    with pytest.raises(NonFiniteLossError, match="weight net.w became NaN or infinite"):
        guard.on_save_checkpoint(T(), None, {"state_dict": {"net.w": torch.tensor([1.0, float("inf")])}})
    guard.on_save_checkpoint(T(), None, {"state_dict": {"net.w": torch.ones(2), "n": torch.tensor(3)}})


def _train(command: list[str], data, config, out, *extra: str) -> dict:
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "echossl", *command, "--data", str(data), "--out", str(out), "--config", str(config),
         "--max-steps", "2", "--accelerator", "cpu", *extra],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (out / "checkpoints" / "last.ckpt").is_file()
    return json.loads((out / "metrics.json").read_text())


def _non_finite_numbers(metrics: dict) -> list[float]:
    values = [v for v in metrics.values() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return [v for v in values if not math.isfinite(v)]


DDP_COMMANDS = [
    pytest.param(["train", "ef"], "ef", id="train-ef"),
    pytest.param(["train", "seg"], "seg", id="train-seg", marks=pytest.mark.slow),
    pytest.param(["train", "video-seg", "--arch", "superimage"], "video-seg", id="train-video-seg",
                 marks=pytest.mark.slow),
]


@pytest.mark.parametrize("command,task", DDP_COMMANDS)
def test_two_process_ddp_matches_one_process(command, task, sim_echonet, tiny_config, tmp_path):
    """Lightning's DDP (gloo on CPU) through the real command: no code change, only flags.

    The DDP run writes metrics.json with the same keys as a one-process run, all
    finite, and its checkpoint loads in one process.
    """
    single = _train(command, sim_echonet, tiny_config, tmp_path / "one")
    ddp = _train(command, sim_echonet, tiny_config, tmp_path / "ddp", "--devices", "2", "--strategy", "ddp")
    assert set(ddp) == set(single)
    assert not _non_finite_numbers(ddp) and ddp["n"] == single["n"] > 0
    from echossl.engine import load_checkpoint

    ckpt = load_checkpoint(tmp_path / "ddp" / "checkpoints" / "last.ckpt", expect_task=task)
    assert ckpt["hyper_parameters"]["task"] == task
    if task == "ef":
        from echossl.pipelines.semisupervised_ef import load_ef_model

        module, _ = load_ef_model(tmp_path / "ddp" / "checkpoints" / "last.ckpt")
        assert module.net is not None


@pytest.mark.slow
def test_compile_flag_trains_and_saves_a_plain_checkpoint(sim_echonet, tiny_config, tmp_path):
    """``--compile`` wraps the module in torch.compile; the checkpoint's keys stay those of the plain module."""
    metrics = _train(["train", "ef"], sim_echonet, tiny_config, tmp_path / "compiled", "--compile", "--threads", "1")
    assert metrics["n"] > 0 and not _non_finite_numbers(metrics)
    from echossl.engine import load_checkpoint

    keys = load_checkpoint(tmp_path / "compiled" / "checkpoints" / "last.ckpt")["state_dict"]
    assert keys and not any("_orig_mod" in k for k in keys)
