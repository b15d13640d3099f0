"""`echossl bench --paper`: each paper model trains through its pipeline, with samples/s and a loss curve."""

from __future__ import annotations

import json
import math

import pytest

from echossl.bench.paper import PAPER_MODELS, curve_points, print_paper_summary, run_paper_bench

# the cpu preset's small networks at tiny batches: the same plumbing as --paper, in seconds
TINY = {"data": {"size": 32, "stats_videos": 4, "workers": 0},
        "seg": {"batch_size": 1},
        "ef": {"batch_size": 2, "length": 8, "pad": None},
        "distill": {"labeled_batch": 2, "unlabeled_batch": 1}}


def _check(result, steps, warmup):
    assert set(result["models"]) == set(PAPER_MODELS)
    for name, r in result["models"].items():
        assert r["steps"] == steps, name
        assert r["samples_per_s"] > 0 and r["step_ms_median"] > 0, name
        # every step's loss is recorded, warm-up included, and it is a real number
        assert len(r["loss_curve"]) == warmup + steps and all(math.isfinite(v) for v in r["loss_curve"]), name


@pytest.mark.slow  # three trainings and a simulation: ~40 s on 2 quiet cores, minutes on busy ones
def test_bench_paper_plumbing_on_small_models(tmp_path, capsys):
    out = tmp_path / "bench_paper.json"
    result = run_paper_bench(out, steps=2, warmup=1, videos=10, preset="cpu", overrides=TINY, accelerator="cpu",
                             progress=lambda text: None)
    _check(result, 2, 1)
    assert json.loads(out.read_text())["models"]["ef"]["loss_curve"] == result["models"]["ef"]["loss_curve"]
    assert result["models"]["distill"]["w_ulb"] == 5.0
    print_paper_summary(result)
    text = capsys.readouterr().out
    for name in PAPER_MODELS:
        assert name in text
    assert "samples/s" in text


def test_curve_points_keep_the_ends():
    losses = [float(i) for i in range(300)]
    points = curve_points(losses)
    assert points[0] == (1, 0.0) and points[-1] == (300, 299.0) and len(points) == 8
    assert curve_points([2.0]) == [(1, 2.0)] and curve_points([]) == []


def test_cli_passes_steps_to_the_paper_bench(tmp_path, monkeypatch):
    import echossl.bench.paper as paper
    from echossl.cli import main

    seen = {}

    def fake(out, **kw):
        seen.update(kw, out=out)
        return {"preset": "paper", "device": "x", "steps": kw["steps"], "models": {}}

    monkeypatch.setattr(paper, "run_paper_bench", fake)
    try:
        main(["bench", "--paper", "--steps", "4", "--out", str(tmp_path / "b.json"), "--accelerator", "cpu"])
    except SystemExit as stop:
        assert stop.code in (0, None)
    assert seen["steps"] == 4 and seen["accelerator"] == "cpu" and seen["out"] == tmp_path / "b.json"


@pytest.mark.slow
def test_bench_paper_runs_the_paper_models(tmp_path):
    """The real paper networks (DeepLabV3-ResNet50 + CSS on 40-frame clips, R(2+1)D-18) for one timed step each,
    at batch sizes a CPU can take."""
    small = {"data": {"stats_videos": 4, "workers": 0}, "seg": {"batch_size": 1},
             "ef": {"batch_size": 1, "length": 8, "pad": None},
             "distill": {"labeled_batch": 1, "unlabeled_batch": 1}}
    result = run_paper_bench(tmp_path / "b.json", steps=1, warmup=1, videos=10, overrides=small, accelerator="cpu",
                             progress=lambda text: None)
    _check(result, 1, 1)
    assert result["models"]["seg_css"]["network"] == "deeplabv3_resnet50"
    assert result["models"]["ef"]["network"] == "r2plus1d_18"
    assert result["models"]["seg_css"]["loss_reduction"] == "sum"
