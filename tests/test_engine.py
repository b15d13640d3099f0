"""The shared engine: presets, a 2-process DDP fit on CPU (gloo), and a NaN guard."""

from __future__ import annotations

import json
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


def test_two_process_ddp_fit_on_cpu(sim_echonet, tiny_config, tmp_path):
    """Lightning's DDP (gloo on CPU) through the real command: no code change, only flags."""
    out = tmp_path / "ddp"
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(
        [sys.executable, "-m", "echossl", "train", "ef", "--data", str(sim_echonet), "--out", str(out),
         "--config", str(tiny_config), "--max-steps", "2", "--devices", "2", "--strategy", "ddp",
         "--accelerator", "cpu"],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (out / "checkpoints" / "last.ckpt").is_file()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n"] > 0 and metrics["mae"] is not None
    # the DDP checkpoint loads in one process
    from echossl.pipelines.semisupervised_ef import load_ef_model

    module, hp = load_ef_model(out / "checkpoints" / "last.ckpt")
    assert hp["task"] == "ef" and module.net is not None
