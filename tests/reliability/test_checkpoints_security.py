"""Nobody gets in: a checkpoint that would run a command is refused, and ``echossl export``.

The malicious checkpoints here carry an object whose ``__reduce__`` is
``(os.system, ("touch MARKER",))``: unpickling it runs the command. A control
load with ``weights_only=False`` shows the payload is live; every echossl entry
point (the Python loaders and the CLI, in a real subprocess) must refuse the same
file with one sentence, and MARKER must never appear.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from echossl.engine import export_checkpoint, load_checkpoint, load_module_weights
from echossl.errors import CheckpointError


class _Exploit:
    """Unpickling this runs ``touch marker``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _malicious(path: Path, marker: Path, how: str) -> Path:
    """A file that looks like an echossl checkpoint and runs ``touch marker`` when unpickled."""
    payload = {"state_dict": {"net.weight": torch.zeros(2)}, "hyper_parameters": {"task": "ef"},
               "evil": _Exploit(marker)}
    if how == "torch.save":  # the zip format torch and Lightning write
        torch.save(payload, path)
    else:  # a bare pickle stream, which torch.load also accepts
        with open(path, "wb") as handle:
            pickle.dump(payload, handle)
    return path


def _one_line_error(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 1, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def _echossl(*args, cwd=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "echossl", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=300, cwd=cwd)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("how", ["torch.save", "pickle.dump"])
def test_the_payload_is_live_and_the_loaders_refuse_it(tmp_path, how):
    # control: an unsafe load of the same kind of file does run the command
    control = tmp_path / "control-ran"
    unsafe = _malicious(tmp_path / "control.ckpt", control, how)
    if how == "torch.save":
        torch.load(unsafe, weights_only=False)
    else:
        pickle.loads(unsafe.read_bytes())
    assert control.exists(), "the exploit is not live, so this test would prove nothing"

    marker = tmp_path / "pwned"
    evil = _malicious(tmp_path / "evil.ckpt", marker, how)
    with pytest.raises(CheckpointError, match="could run code") as err:
        load_checkpoint(evil)
    assert "\n" not in str(err.value) and str(evil) in str(err.value)
    with pytest.raises(CheckpointError, match="could run code"):
        load_module_weights(torch.nn.Linear(2, 2), evil)
    # a run folder whose best checkpoint is the malicious one
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    _malicious(tmp_path / "run" / "checkpoints" / "best.ckpt", marker, how)
    with pytest.raises(CheckpointError, match="could run code"):
        load_checkpoint(tmp_path / "run")
    assert not marker.exists(), "a refused checkpoint ran its command"


def test_a_pickle_disguised_as_safetensors_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    export = tmp_path / "export"
    export.mkdir()
    weights = _malicious(export / "model.safetensors", marker, "torch.save")
    # even with a config whose sha256 matches, the bytes go to the safetensors parser, never to pickle
    sha = hashlib.sha256(weights.read_bytes()).hexdigest()
    (export / "config.json").write_text(json.dumps({"hyper_parameters": {"task": "ef"}, "sha256": sha}))
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_checkpoint(export)
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_module_weights(torch.nn.Linear(2, 2), weights)
    assert not marker.exists()


@pytest.fixture(scope="module")
def ef_run(sim_echonet, tiny_config, tmp_path_factory) -> Path:
    """A real (tiny) EF run: two optimizer steps."""
    out = tmp_path_factory.mktemp("sec") / "ef"
    proc = _echossl("train", "ef", "--data", sim_echonet, "--out", out, "--config", tiny_config, "--max-steps", "2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


@pytest.mark.parametrize("command", ["evaluate", "predict", "export", "train --init", "train --resume"])
def test_the_cli_refuses_a_malicious_checkpoint_in_one_sentence(command, tmp_path, sim_echonet, tiny_config,
                                                                 ef_run):
    marker = tmp_path / "pwned"
    evil = _malicious(tmp_path / "evil.ckpt", marker, "torch.save")
    video = next((sim_echonet / "Videos").glob("*.avi"))
    train = ["train", "ef", "--data", sim_echonet, "--config", tiny_config, "--max-steps", "1"]
    if command == "train --resume":  # a run folder whose last.ckpt was replaced by an attacker
        run = tmp_path / "run"
        (run / "checkpoints").mkdir(parents=True)
        _malicious(run / "checkpoints" / "last.ckpt", marker, "torch.save")
    args = {
        "evaluate": ["evaluate", "--checkpoint", evil, "--data", sim_echonet, "--out", tmp_path / "m.json"],
        "predict": ["predict", "--checkpoint", evil, video, "--out", tmp_path / "p.csv"],
        "export": ["export", evil, "--out", tmp_path / "exp"],
        "train --init": [*train, "--out", tmp_path / "new", "--init", evil],
        "train --resume": [*train, "--out", tmp_path / "run", "--resume"],
    }[command]
    line = _one_line_error(_echossl(*args))
    assert "could run code" in line and ("evil.ckpt" in line or "last.ckpt" in line), line
    assert not marker.exists(), f"`echossl {command}` ran the checkpoint's command"
    assert not (tmp_path / "m.json").exists() and not (tmp_path / "p.csv").exists()
    assert not (tmp_path / "exp").exists()


# --------------------------------------------------------------------------- #
# echossl export: safetensors + config.json
# --------------------------------------------------------------------------- #

def test_export_round_trips_every_tensor(ef_run, tmp_path):
    from safetensors.torch import load_file

    from echossl.cli import main
    from echossl.pipelines.semisupervised_ef import load_ef_model

    out = tmp_path / "exported"
    main(["export", str(ef_run), "--out", str(out)])
    ckpt = load_checkpoint(ef_run)
    weights, config = out / "model.safetensors", json.loads((out / "config.json").read_text())

    tensors = load_file(str(weights))
    assert set(tensors) == set(ckpt["state_dict"]) and len(tensors) == config["tensors"] > 0
    for name, value in ckpt["state_dict"].items():
        assert tensors[name].dtype == value.dtype and torch.equal(tensors[name], value), name
    assert config["sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert config["task"] == "ef" and config["hyper_parameters"] == ckpt["hyper_parameters"]
    assert config["echossl_version"] and config["dropped_hyper_parameters"] == []

    # --init DIR/model.safetensors puts the same weights into a fresh network
    module, _ = load_ef_model(ef_run)
    fresh, _ = load_ef_model(ef_run)
    for p in fresh.net.parameters():
        torch.nn.init.zeros_(p)
    load_module_weights(fresh.net, weights, prefix="net.")
    for (name, a), b in zip(module.net.state_dict().items(), fresh.net.state_dict().values()):
        assert torch.equal(a, b), name

    # the export folder itself loads wherever a checkpoint does, and is integrity-checked
    again = load_checkpoint(out, expect_task="ef")
    assert again["hyper_parameters"] == ckpt["hyper_parameters"]
    assert all(torch.equal(again["state_dict"][k], v) for k, v in ckpt["state_dict"].items())
    raw = bytearray(weights.read_bytes())
    raw[-1] ^= 0xFF
    weights.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="does not match the sha256"):
        load_checkpoint(out)


def test_an_exported_model_predicts_like_its_checkpoint(ef_run, sim_echonet, tiny_config, tmp_path):
    from echossl.cli.common import RunFlags
    from echossl.pipelines.predict import predict

    export_checkpoint(ef_run, tmp_path / "exp")
    cfg = RunFlags(preset="cpu", config_file=tiny_config).config()
    videos = sorted((sim_echonet / "Videos").glob("*.avi"))[:2]
    a = predict(ef_run, videos, tmp_path / "a.csv", cfg=cfg)
    b = predict(tmp_path / "exp", videos, tmp_path / "b.csv", cfg=cfg)
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    assert len(a) == len(b) == 2
