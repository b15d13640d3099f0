"""export writes a model card beside the weights, with copies of config.yaml and metrics.json."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from echossl.config import deep_merge, load_preset, save_config
from echossl.evaluation.metrics import write_metrics_json

RUN_EF = {"size": 24, "length": 8, "period": 3, "test_clips": 3}


def make_ef_run(run):
    from echossl.methods.ef import EFRegression

    cfg = deep_merge(load_preset("cpu"), {"ef": dict(RUN_EF), "labeled_fraction": 0.25})
    torch.manual_seed(0)
    norm = {"mean": [30.5, 31.0, 32.0], "std": [40.0, 41.0, 42.0], "size": 24}
    module = EFRegression(model=cfg["ef"]["model"], norm=norm, model_kwargs=cfg["ef"].get("model_kwargs"))
    (run / "checkpoints").mkdir(parents=True)
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)},
               run / "checkpoints" / "best.ckpt")
    save_config(cfg, run / "config.yaml")
    write_metrics_json(run / "metrics.json", task="ef", split="TEST", n=7, mae=6.25, mae_ci95=[4.5, 8.125],
                       rmse=7.5, rmse_ci95=[5.0, 9.75], r2=0.31, r2_ci95=[0.1, 0.5])
    return run


@pytest.fixture(scope="module")
def ef_run(tmp_path_factory):
    return make_ef_run(tmp_path_factory.mktemp("card") / "run")


def test_export_writes_a_card_with_settings_metrics_and_simulated_limit(ef_run, sim_echonet, tmp_path):
    from echossl.engine import EXPORT_WEIGHTS, export_checkpoint

    out = tmp_path / "export"
    export_checkpoint(ef_run, out, training_data=sim_echonet)
    card = (out / "README.md").read_text()
    assert (out / EXPORT_WEIGHTS).is_file() and (out / "config.json").is_file()
    # copies, byte for byte
    assert (out / "config.yaml").read_bytes() == (ef_run / "config.yaml").read_bytes()
    assert (out / "metrics.json").read_bytes() == (ef_run / "metrics.json").read_bytes()
    assert "# echossl model: ef (small_r2plus1d)" in card
    assert "Preset: `cpu`" in card and "labeled fraction 0.25" in card
    # inference settings are the run's, not the cpu preset's
    assert "Frame size: 24 px" in card and "Clip length: 8 frames, period 3" in card
    assert "Test clips: 3 evenly spaced clips" in card and "mean [30.5, 31.0, 32.0]" in card
    # metrics with their CIs
    assert "| mae | 6.25 | 4.5 to 8.125 |" in card and "n = 7" in card
    # the data: counts per split from FileList.csv, and the simulator's meta.json
    assert "TRAIN" in card and "16 in FileList.csv" in card
    assert "Trained on simulated data" in card
    assert "sha256" in card and json.loads((out / "config.json").read_text())["sha256"] in card


def test_card_without_data_and_with_real_marker(ef_run, tmp_path):
    from echossl.engine import export_checkpoint

    export_checkpoint(ef_run, tmp_path / "a")
    card = (tmp_path / "a" / "README.md").read_text()
    assert "not recorded" in card and "Trained on simulated data" not in card
    # a run whose config says its data are real
    run = tmp_path / "real"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "best.ckpt").write_bytes((ef_run / "checkpoints" / "best.ckpt").read_bytes())
    cfg = yaml.safe_load((ef_run / "config.yaml").read_text())
    cfg["simulated"] = False
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    export_checkpoint(run, tmp_path / "b")
    card = (tmp_path / "b" / "README.md").read_text()
    assert "simulated" not in card.split("## Limits")[1].lower()
    assert not (tmp_path / "b" / "metrics.json").exists() and "run `echossl evaluate`" in card


def test_an_export_predicts_with_the_runs_settings(ef_run, sim_echonet, tmp_path):
    from echossl.engine import export_checkpoint
    from echossl.pipelines.predict import predict

    export_checkpoint(ef_run, tmp_path / "exp")
    videos = sorted((sim_echonet / "Videos").glob("*.avi"))[:1]
    a = predict(ef_run, videos, tmp_path / "a.csv")
    b = predict(tmp_path / "exp", videos, tmp_path / "b.csv")
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes() and len(a) == len(b) == 1


def test_cli_export_with_data(ef_run, sim_echonet, tmp_path):
    from echossl.cli import main

    main(["export", str(ef_run), "--out", str(tmp_path / "cli"), "--data", str(sim_echonet)])
    assert "Trained on simulated data" in (tmp_path / "cli" / "README.md").read_text()
