"""Kill -9 a real training process, resume it, and get the run that was never interrupted.

Each case starts ``echossl train ef`` (tiny config, 4 epochs, seed 0, one thread)
in a subprocess, waits until it reaches the chosen point, sends SIGKILL, then runs
the same command with ``--resume`` to the end. The final ``metrics.json`` must
equal the uninterrupted run's within an absolute tolerance of 1e-6 on every
number (in practice it is bit-identical), and the final weights must be equal.

Lightning resumes from ``checkpoints/last.ckpt``, written at the end of each
epoch, so an epoch cut short by the kill is run again from its start: exact
resumption *mid-epoch* is not what happens, but the redone epoch draws the same
shuffles and clip starts because the random generators' state travels in the
checkpoint (``engine.RestoreRandomState``), so the final result is the same.

Kill points:

* ``mid-epoch`` — inside the second training batch of epoch 2;
* ``mid-checkpoint`` — after epoch 1's ``last.ckpt`` was fully written to its
  temporary file but before the rename: the old ``last.ckpt`` must still load.

The process is parked at the kill point (a marker file, then a sleep) so that the
SIGKILL always lands there; the kill itself is a real ``os.kill(pid, SIGKILL)``.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

TOLERANCE = 1e-6  # absolute, on every number in metrics.json
EPOCHS = 4

# Runs the real CLI with one hook that parks the process at the kill point.
PARKED = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path

    marker, where = Path(sys.argv[1]), sys.argv[2]

    def park():
        marker.write_text(str(os.getpid()))
        time.sleep(600)  # the test sends SIGKILL now

    if where == "mid-epoch":
        from echossl.methods.ef import EFRegression

        step = EFRegression.training_step

        def training_step(self, batch, batch_idx):
            if self.current_epoch == 2 and batch_idx == 1:
                park()
            return step(self, batch, batch_idx)

        EFRegression.training_step = training_step
    else:
        replace, seen = os.replace, []

        def parked_replace(src, dst, *a, **kw):
            if Path(dst).name == "last.ckpt":
                seen.append(dst)
                if len(seen) == 2:  # epoch 1's last.ckpt: complete in its temporary file, not yet renamed
                    park()
            return replace(src, dst, *a, **kw)

        os.replace = parked_replace

    from echossl.cli import main

    main(sys.argv[3:])
""")


def _env() -> dict:
    return {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _train(data, out, config, *extra) -> list[str]:
    return ["train", "ef", "--data", str(data), "--out", str(out), "--config", str(config),
            "--max-epochs", str(EPOCHS), "--seed", "0", *extra]


def _run(args) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "echossl", *args], capture_output=True, text=True, env=_env(),
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _numbers(metrics: dict) -> dict[str, float]:
    flat = {}
    for key, value in metrics.items():
        for i, v in enumerate(value if isinstance(value, list) else [value]):
            if isinstance(v, (int, float)):
                flat[f"{key}[{i}]"] = float(v)
    return flat


def _weights(run: Path) -> dict:
    return torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]


@pytest.fixture(scope="module")
def uninterrupted(sim_echonet, tiny_config, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("kill") / "straight"
    _run(_train(sim_echonet, out, tiny_config))
    return out


@pytest.mark.parametrize("where", ["mid-epoch", "mid-checkpoint"])
def test_sigkill_then_resume_ends_like_an_uninterrupted_run(where, uninterrupted, sim_echonet, tiny_config,
                                                            tmp_path):
    run, marker = tmp_path / "killed", tmp_path / "parked"
    script = tmp_path / "parked.py"
    script.write_text(PARKED)
    proc = subprocess.Popen([sys.executable, str(script), str(marker), where, *_train(sim_echonet, run, tiny_config)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=_env())
    try:
        deadline = time.monotonic() + 240
        while not marker.exists():
            assert proc.poll() is None, f"training ended before the kill point:\n{proc.stderr.read()[-3000:]}"
            assert time.monotonic() < deadline, "the kill point was never reached"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()

    # the state the kill left behind: an earlier epoch's last.ckpt, and no final metrics
    left = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert left["epoch"] == (1 if where == "mid-epoch" else 0)
    assert not (run / "metrics.json").exists()
    if where == "mid-checkpoint":
        assert list((run / "checkpoints").glob(".last.ckpt.*.tmp")), "the write was not cut short"

    _run(_train(sim_echonet, run, tiny_config, "--resume"))

    assert not list((run / "checkpoints").glob(".*.tmp"))  # the cut-short write was cleaned up
    expected = _numbers(json.loads((uninterrupted / "metrics.json").read_text()))
    got = _numbers(json.loads((run / "metrics.json").read_text()))
    assert got.keys() == expected.keys() and expected
    worst = max(abs(got[k] - expected[k]) for k in expected)
    print(f"\n{where}: largest metric difference after kill+resume = {worst:.3g}")
    assert worst <= TOLERANCE, {k: (got[k], expected[k]) for k in expected if not math.isclose(got[k], expected[k])}
    a, b = _weights(run), _weights(uninterrupted)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), "the resumed run's final weights differ"
