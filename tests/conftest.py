"""Shared fixtures: a small simulated EchoNet-Dynamic folder and a tiny training config."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory):
    """Every test session decodes into its own frame cache, never the user's ~/.cache."""
    import os

    old = os.environ.get("ECHOSSL_CACHE")
    os.environ["ECHOSSL_CACHE"] = str(tmp_path_factory.mktemp("frame-cache"))
    yield
    if old is None:
        os.environ.pop("ECHOSSL_CACHE", None)
    else:
        os.environ["ECHOSSL_CACHE"] = old


@pytest.fixture(scope="session")
def sim_echonet(tmp_path_factory) -> Path:
    """16 simulated videos (easy style) in EchoNet-Dynamic's layout (TRAIN/VAL/TEST all non-empty)."""
    from echossl.simulate.echonet import simulate_echonet

    root = tmp_path_factory.mktemp("echonet")
    simulate_echonet(root, 16, seed=3, size=112, style="easy", progress=False)
    return root


@pytest.fixture(scope="session")
def tiny_config(tmp_path_factory) -> Path:
    """The cpu preset shrunk further so that a training command runs in seconds."""
    cfg = {
        "labeled_fraction": 0.5,
        "data": {"size": 32, "stats_videos": 4},
        "seg": {"batch_size": 2, "max_epochs": 1, "infer_batch": 256},
        "ef": {"batch_size": 2, "max_epochs": 1, "length": 16, "period": 2, "test_clips": 2, "pad": 2},
        "distill": {"labeled_batch": 2, "unlabeled_batch": 2, "max_epochs": 1},
        "saliency": {"samples": 2, "videos": 1},
    }
    path = tmp_path_factory.mktemp("cfg") / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path
