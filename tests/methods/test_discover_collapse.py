"""DISCOVER collapse monitors on a short pre-training of simulated EchoNet data (issue 15)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch


def _tiny_cfg(**discover):
    from echossl.config import load_config

    return load_config("cpu", overrides={
        "data": {"size": 32, "stats_videos": 4}, "labeled_fraction": 1.0,
        "discover": {"length": 8, "batch_size": 4, "video": {"dim": 48, "depth": 2, "heads": 2},
                     "image": {"dim": 48, "depth": 2, "heads": 2},
                     "head": {"hidden_dim": 64, "bottleneck_dim": 32, "output_dim": 64}, **discover}})


def test_write_collapse_adds_the_section_to_metrics_json(tmp_path):
    from echossl.evaluation.metrics import write_metrics_json
    from echossl.pipelines.discover import write_collapse

    write_collapse(tmp_path, {"video_target_entropy_ratio": 0.5, "embedding_std": float("nan"), "extra": 3})
    write_metrics_json(tmp_path / "metrics.json", task="discover", split="TEST", n=2, mae=1.0)
    write_collapse(tmp_path, None)  # from RUN/collapse.json
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["mae"] == 1.0
    c = metrics["collapse"]
    assert c["video_target_entropy_ratio"] == 0.5 and c["embedding_std"] is None and c["extra"] == 3
    assert set(c) >= {"video_target_entropy_ratio", "image_target_entropy_ratio", "video_batch_entropy_ratio",
                      "image_batch_entropy_ratio", "embedding_std"}


def test_normal_only_follows_the_anomaly_protocol(sim_echonet):
    from echossl.data.echonet import read_filelist
    from echossl.evaluation.protocols import abnormal
    from echossl.pipelines.discover import normal_only, normal_videos

    assert normal_only(_tiny_cfg()) is True                   # cpu preset runs knn
    assert normal_only(_tiny_cfg(eval={"protocols": ["probe"]})) is False
    assert normal_only(_tiny_cfg(normal_only=False)) is False
    table = read_filelist(sim_echonet)
    names = sorted(table.loc[table["Split"] == "TRAIN", "FileName"])
    kept = normal_videos(sim_echonet, names)
    ef = table.set_index("FileName").loc[kept, "EF"].to_numpy(float)
    assert not abnormal(ef).any()
    assert len(kept) == int((~abnormal(table.set_index("FileName").loc[names, "EF"].to_numpy(float)).astype(bool)).sum())


@pytest.mark.slow
def test_short_pretraining_keeps_the_collapse_monitors_in_bounds(sim_echonet, tmp_path):
    from echossl.engine import TrainerOptions
    from echossl.methods.discover import collapse_warnings
    from echossl.pipelines.discover import pretrain

    torch.set_num_threads(1)
    cfg = _tiny_cfg(normal_only=False, eval={"protocols": []})
    run = pretrain(sim_echonet, tmp_path / "run", cfg, TrainerOptions(max_epochs=3, progress=False, accelerator="cpu"),
                   evaluate=False)
    c = json.loads((run / "collapse.json").read_text())
    for key in ("video_target_entropy_ratio", "image_target_entropy_ratio", "video_batch_entropy_ratio",
                "image_batch_entropy_ratio", "embedding_std"):
        assert c[key] is not None and np.isfinite(c[key]), key
    assert collapse_warnings(c) == [], c
    assert c["embedding_std"] > 0
    assert c["target_position_share"] > 0.1 and c["target_position_share_used"] < 1e-6
