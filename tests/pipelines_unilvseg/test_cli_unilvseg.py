"""End to end through the CLI on a few simulated videos: pretrain, fine-tune, evaluate, reproduce."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from echossl.cli import main

TINY = {
    "data": {"size": 32, "stats_videos": 4},
    "seg": {"batch_size": 2, "max_epochs": 1, "infer_batch": 256},
    "unilvseg": {
        "pretrain": {"batch_size": 2, "max_epochs": 1},
        "train": {"batch_size": 2, "max_epochs": 1},
        "unet3d": {"frames": 7, "period": 2, "channels": [4, 8, 16], "strides": [2, 2], "features": 4},
        "superimage": {"frames": 5, "period": 3, "channels": [4, 8, 16], "strides": [2, 2], "features": 4},
        "infer_batch": 16,
    },
}
KEYS = {"task", "split", "n", "dice", "dice_ci95", "dice_ed", "dice_ed_ci95", "dice_es", "dice_es_ci95",
        "dice_unlabeled", "dice_unlabeled_ci95", "hf_power", "hf_power_ci95", "ef_mae", "params_m",
        "gflops_per_frame", "dice_frame_mean", "dice_whole_video", "dice_whole_video_ci95",
        "dice_whole_video_frame_mean"}


@pytest.fixture(scope="module")
def tiny_unilvseg(tmp_path_factory):
    path = tmp_path_factory.mktemp("unilvseg-cfg") / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    return path


def test_pretrain_then_video_seg_writes_metrics(sim_echonet, tiny_unilvseg, tmp_path):
    pre = tmp_path / "pre"
    main(["pretrain", "temporal-masking", "--data", str(sim_echonet), "--out", str(pre),
          "--config", str(tiny_unilvseg), "--max-steps", "2", "--mask-ratio", "0.5"])
    pre_metrics = json.loads((pre / "metrics.json").read_text())
    assert pre_metrics["task"] == "temporal-masking" and pre_metrics["mask_ratio"] == 0.5
    assert {"mse", "mse_masked", "mse_visible"} <= set(pre_metrics)
    assert (pre / "config.yaml").is_file() and (pre / "checkpoints" / "last.ckpt").is_file()

    seg = tmp_path / "seg"
    main(["train", "video-seg", "--data", str(sim_echonet), "--out", str(seg), "--config", str(tiny_unilvseg),
          "--max-steps", "2", "--init", str(pre)])
    metrics = json.loads((seg / "metrics.json").read_text())
    assert KEYS <= set(metrics)
    assert metrics["task"] == "video-seg" and metrics["split"] == "TEST"
    assert 0.0 <= metrics["dice"] <= 1.0 and 0.0 <= metrics["hf_power"] <= 1.0
    assert (seg / "area_curve.png").read_bytes()[:4] == b"\x89PNG"
    assert (seg / "predictions.csv").read_text().startswith("FileName,EF,EF_Seg,ED_Frame,ES_Frame")
    assert (seg / "logs").is_dir()

    out = tmp_path / "eval.json"
    main(["evaluate", "--checkpoint", str(seg / "checkpoints" / "last.ckpt"), "--data", str(sim_echonet),
          "--out", str(out), "--config", str(tiny_unilvseg)])
    assert json.loads(out.read_text())["dice"] == pytest.approx(metrics["dice"])

    csv = tmp_path / "pred.csv"
    main(["predict", str(sim_echonet / "Videos"), "--checkpoint", str(seg), "--out", str(csv)])
    table = pd.read_csv(csv)
    assert list(table.columns)[:5] == ["FileName", "EF", "ED_Frame", "ES_Frame", "EF_Seg"] and len(table) == 16
    assert "HeartRate" in table.columns
    assert (table["ED_Frame"] != table["ES_Frame"]).all() and table["EF"].notna().all()


@pytest.mark.slow
def test_superimage_with_odd_sizes(sim_echonet, tiny_unilvseg, tmp_path):
    main(["train", "video-seg", "--arch", "superimage", "--data", str(sim_echonet), "--out", str(tmp_path / "si"),
          "--config", str(tiny_unilvseg), "--max-steps", "1"])
    assert KEYS <= set(json.loads((tmp_path / "si" / "metrics.json").read_text()))


def test_bad_arch_and_ratio_exit_1(sim_echonet, tiny_unilvseg, tmp_path, capsys):
    for extra in (["train", "video-seg", "--arch", "vit"], ["pretrain", "temporal-masking", "--mask-ratio", "1.0"]):
        with pytest.raises(SystemExit) as err:
            main(extra + ["--data", str(sim_echonet), "--out", str(tmp_path / extra[1]), "--config", str(tiny_unilvseg)])
        assert err.value.code == 1
    assert "error:" in capsys.readouterr().err


@pytest.mark.slow
def test_reproduce_writes_the_table(sim_echonet, tiny_unilvseg, tmp_path):
    main(["reproduce", "unilvseg", "--data", str(sim_echonet), "--out", str(tmp_path / "rep"),
          "--config", str(tiny_unilvseg)])
    results = json.loads((tmp_path / "rep" / "results.json").read_text())
    assert [r["method"] for r in results["rows"]] == ["2d-frame-by-frame", "unet3d-scratch",
                                                       "unet3d-temporal-masking", "superimage"]
    assert set(results["targets"]) == {"ssl_unet3d_dice_ge_2d", "ssl_unet3d_hf_power_lt_2d",
                                       "ssl_unet3d_dice_unlabeled_gt_2d"}
