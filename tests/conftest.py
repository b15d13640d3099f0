"""Shared fixtures: a small simulated EchoNet-Dynamic folder and a tiny training config."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

# `make test` runs two xdist workers on CI's two cores: one torch thread each (set before
# any test imports torch; CLI subprocesses inherit it) instead of two contending ones.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")

# Behaviours checked more than once through whole CLI runs (each ~10 s of imports and
# training): the fast suite keeps one case of each, these others run under `-m slow`
# (issue 16: pytest at most 300 s on a fresh clone). Node-id prefixes.
SLOW_REPEATS = (
    # full disk: `export` stays fast; also an output folder blocked by a file
    "tests/reliability/test_nothing_lost.py::test_the_cli_reports_a_full_disk_in_one_sentence[evaluate",
    "tests/reliability/test_nothing_lost.py::test_the_cli_reports_a_full_disk_in_one_sentence[predict",
    "tests/reliability/test_nothing_lost.py::test_an_output_folder_blocked_by_a_file_is_one_sentence",
    # malicious checkpoint: `predict` stays fast (the loader is one function for every command)
    "tests/reliability/test_checkpoints_security.py::test_the_cli_refuses_a_malicious_checkpoint_in_one_sentence[train",
    "tests/reliability/test_checkpoints_security.py::test_the_cli_refuses_a_malicious_checkpoint_in_one_sentence[evaluate",
    "tests/reliability/test_checkpoints_security.py::test_the_cli_refuses_a_malicious_checkpoint_in_one_sentence[export",
    "tests/reliability/test_checkpoints_security.py::test_export_round_trips_every_tensor",
    # readers leave data unchanged / names escaping the root: EchoNet and dot-dot stay fast
    "tests/reliability/test_paths.py::test_readers_leave_data_folder_unchanged[camus",
    "tests/reliability/test_paths.py::test_readers_leave_data_folder_unchanged[mrjet",
    "tests/reliability/test_paths.py::test_readers_leave_data_folder_unchanged[sweep",
    "tests/reliability/test_paths.py::test_echonet_filename_escaping_root_refused[absolute",
    "tests/reliability/test_paths.py::test_echonet_filename_escaping_root_refused[symlink",
    # `data check` through the CLI: the EchoNet case stays fast; readers are fuzzed directly
    "tests/reliability/test_fuzz_camus.py::test_cli_data_check_bad_cfg",
    "tests/reliability/test_fuzz_video.py::test_cli_data_check_garbage_avi",
    "tests/reliability/test_fuzz_mrjet_sweep.py::test_cli_data_check_mrjet",
    "tests/reliability/test_fuzz_mrjet_sweep.py::test_cli_data_check_sweep",
    "tests/reliability/test_fuzz_camus.py::test_nifti_compressed_bytes",
    "tests/reliability/test_fuzz_camus.py::test_info_cfg_values",
    "tests/reliability/test_fuzz_mrjet_sweep.py::test_sweep_files_bytes",
    "tests/reliability/test_fuzz_mrjet_sweep.py::test_sweeps_csv_cell",
    # kill and resume: mid-epoch stays fast
    "tests/reliability/test_kill_resume.py::test_sigkill_then_resume_ends_like_an_uninterrupted_run[mid-checkpoint",
    # whole-pipeline CLI runs whose modules have their own fast unit tests
    "tests/pipelines_unilvseg/test_cli_unilvseg.py::test_pretrain_then_video_seg_writes_metrics",
    "tests/pipelines_unilvseg/test_cli_unilvseg.py::test_bad_arch_and_ratio_exit_1",
    "tests/methods/test_mrjet.py::test_cli_pretrain_then_train_then_evaluate",
    "tests/test_engine.py::test_two_process_ddp_matches_one_process",
)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.nodeid.startswith(SLOW_REPEATS):
            item.add_marker(pytest.mark.slow)


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
