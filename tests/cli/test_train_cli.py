"""The semi-supervised EF commands end to end on tiny simulated data, through the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ECHOSSL = [sys.executable, "-m", "echossl"]


def run(*args, check=True, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([*ECHOSSL, *map(str, args)], capture_output=True, text=True, env=env, timeout=600, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def runs(sim_echonet, tiny_config, tmp_path_factory):
    """seg (+CSS) -> teacher on its masks -> distilled student, a few steps each."""
    out = tmp_path_factory.mktemp("runs")
    common = ["--data", sim_echonet, "--config", tiny_config, "--max-steps", "2"]
    run("train", "seg", "--css", "--out", out / "seg", *common)
    run("train", "ef", "--out", out / "video", *common)
    run("train", "ef", "--masks", out / "seg", "--out", out / "teacher", *common)
    run("train", "distill", "--teacher", out / "teacher", "--out", out / "student", *common)
    return out


def test_run_folders_follow_the_contract(runs):
    for name in ("seg", "video", "teacher", "student"):
        run_dir = runs / name
        assert (run_dir / "config.yaml").is_file()
        assert (run_dir / "checkpoints" / "last.ckpt").is_file()
        assert (run_dir / "logs").is_dir()
        metrics = json.loads((run_dir / "metrics.json").read_text())
        assert metrics["split"] == "TEST" and metrics["n"] > 0
    seg = json.loads((runs / "seg" / "metrics.json").read_text())
    assert {"dice_ed", "dice_es", "dice_unlabeled"} <= set(seg)
    assert 0.0 <= seg["dice_ed"] <= 1.0
    for name in ("video", "teacher", "student"):
        m = json.loads((runs / name / "metrics.json").read_text())
        assert {"mae", "rmse", "r2", "mae_ci95"} <= set(m)
        assert m["mae"] >= 0 and m["mae_ci95"][0] <= m["mae"] <= m["mae_ci95"][1]
    # every frame of every video got a mask, at the video's own size
    masks = sorted((runs / "seg" / "masks").glob("*.npy"))
    assert len(masks) >= 10


def test_predict_writes_contract_columns(runs, sim_echonet, tmp_path):
    seg_csv, ef_csv = tmp_path / "seg.csv", tmp_path / "ef.csv"
    run("predict", "--checkpoint", runs / "seg", sim_echonet / "Videos", "--out", seg_csv, "--overlay", tmp_path / "ov")
    table = pd.read_csv(seg_csv)
    assert list(table.columns[:2]) == ["FileName", "EF"]
    assert {"ED_Frame", "ES_Frame", "EF_Seg"} <= set(table.columns)
    assert len(table) == len(list((sim_echonet / "Videos").glob("*.avi")))
    assert (table["ED_Frame"] >= 0).all() and (tmp_path / "ov").is_dir()
    run("predict", "--checkpoint", runs / "student" / "checkpoints" / "last.ckpt",
        sim_echonet / "Videos" / f"{table.FileName[0]}.avi", "--out", ef_csv)
    ef = pd.read_csv(ef_csv)
    assert list(ef.columns) == ["FileName", "EF"] and len(ef) == 1 and ef.EF.between(-50, 150).all()


def test_evaluate_writes_metrics(runs, sim_echonet, tmp_path):
    out = tmp_path / "m.json"
    run("evaluate", "--checkpoint", runs / "video", "--data", sim_echonet, "--split", "VAL", "--out", out)
    m = json.loads(out.read_text())
    assert m["split"] == "VAL" and m["task"] == "ef" and "mae" in m


def test_resume_continues_from_last(runs, sim_echonet, tiny_config):
    proc = run("train", "ef", "--out", runs / "video", "--data", sim_echonet, "--config", tiny_config,
               "--max-steps", "4", "--resume")
    assert proc.returncode == 0
    # without --resume an existing run is not overwritten
    proc = run("train", "ef", "--out", runs / "video", "--data", sim_echonet, "--config", tiny_config, check=False)
    assert proc.returncode == 1 and "--resume" in proc.stderr


@pytest.mark.parametrize("args, needle", [
    (["evaluate", "--checkpoint", "/nonexistent.ckpt", "--data", ".", "--out", "m.json"], "does not exist"),
    (["predict", "--checkpoint", "RUN_SEG", "EMPTY_DIR", "--out", "x.csv"], "no .avi"),
    (["train", "distill", "--teacher", "RUN_SEG", "--data", "DATA", "--out", "OUT"], "task 'seg'"),
    (["train", "ef", "--data", "/no/such/folder", "--out", "OUT"], "does not exist"),
])
def test_bad_input_is_one_sentence_and_exit_1(args, needle, runs, sim_echonet, tiny_config, tmp_path):
    (tmp_path / "empty").mkdir()
    subst = {"RUN_SEG": runs / "seg", "EMPTY_DIR": tmp_path / "empty", "DATA": sim_echonet, "OUT": tmp_path / "o"}
    args = [str(subst.get(a, a)) for a in args]
    if args[0] == "train":
        args += ["--config", str(tiny_config), "--max-steps", "1"]
    proc = run(*args, check=False, cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert needle in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len([l for l in proc.stderr.strip().splitlines() if l.startswith("error:")]) == 1


def test_wrong_task_checkpoint_is_refused(runs, sim_echonet, tmp_path):
    proc = run("train", "ef", "--masks", runs / "video", "--data", sim_echonet, "--out", tmp_path / "t",
               "--max-steps", "1", check=False)
    assert proc.returncode == 1 and "masks/" in proc.stderr
