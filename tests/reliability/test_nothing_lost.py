"""Nothing lost: atomic outputs, a full disk or a blocked folder, and a NaN loss.

* Every output goes through :mod:`echossl.io`: when the write fails (at the
  temporary file, at the flush, at the rename) the target keeps its old bytes, no
  temporary file is left, and the CLI says one sentence naming the file.
* A checkpoint that cannot be written because the file-size limit is hit (a real
  kernel ``EFBIG`` in a real training process, the same failure path as a full
  disk) stops training with one sentence and leaves the earlier checkpoints intact.
* A NaN loss in a real training stops it with a clear message; ``best.ckpt``,
  ``last.ckpt`` and ``metrics.json`` are byte-identical to their state before the NaN.

We run as root here, where permissions are not enforced, so "no permission" and
"read-only" are simulated by making the OS calls raise the matching ``OSError``;
the real ``chmod`` variant runs where the tests are not root.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch

from echossl.errors import OutputError
from echossl.io import atomic_write_text


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tree(folder: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under ``folder``."""
    return {str(p.relative_to(folder)): _sha(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def _cli(capsys, *args) -> tuple[int, str]:
    """Run the real CLI entry point in this process; returns (exit code, stderr)."""
    from echossl.cli import main

    capsys.readouterr()
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err


def _one_error_line(code: int, err: str) -> str:
    assert code == 1, err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


def _echossl(*args, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "echossl", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=300, **kw)


@pytest.fixture(scope="module")
def ef_run(sim_echonet, tiny_config, tmp_path_factory) -> Path:
    """A finished two-epoch EF run (checkpoints, logs, metrics.json)."""
    out = tmp_path_factory.mktemp("lost") / "ef"
    proc = _echossl("train", "ef", "--data", sim_echonet, "--out", out, "--config", tiny_config, "--max-epochs", "2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


# --------------------------------------------------------------------------- #
# atomic writes
# --------------------------------------------------------------------------- #

def _fail(monkeypatch, where: str, code: int, target: str) -> None:
    """Make the OS fail with ``code`` at one step of writing a file named ``target``."""
    exc = OSError(code, os.strerror(code))
    if where == "mkstemp":  # creating the temporary file: no permission, read-only folder
        real = tempfile.mkstemp

        def fake(*a, **kw):
            if str(kw.get("prefix", "")).startswith(f".{target}."):
                raise exc
            return real(*a, **kw)

        monkeypatch.setattr(tempfile, "mkstemp", fake)
    elif where == "fsync":  # the data do not fit: the disk is full
        real = os.fsync

        def fake(fd):
            if Path(os.readlink(f"/proc/self/fd/{fd}")).name.startswith(f".{target}."):
                raise exc
            return real(fd)

        monkeypatch.setattr(os, "fsync", fake)
    else:  # the rename into place
        real = os.replace

        def fake(src, dst, *a, **kw):
            if Path(dst).name == target:
                raise exc
            return real(src, dst, *a, **kw)

        monkeypatch.setattr(os, "replace", fake)


@pytest.mark.parametrize("where, code, reason", [
    ("mkstemp", errno.EACCES, "permission is denied"),
    ("fsync", errno.ENOSPC, "the disk is full"),
    ("replace", errno.EROFS, "the file system is read-only"),
])
def test_a_failed_write_keeps_the_old_file(tmp_path, monkeypatch, where, code, reason):
    target = tmp_path / "metrics.json"
    target.write_text("old")
    _fail(monkeypatch, where, code, "metrics.json")
    with pytest.raises(OutputError) as err:
        atomic_write_text(target, "new" * 1000)
    assert str(err.value) == f"cannot write {target}: {reason} (files written before are unchanged)"
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]  # no temporary file left


def test_atomic_write_gives_the_mode_of_a_plain_open(tmp_path):
    atomic_write_text(tmp_path / "a.txt", "x")
    (tmp_path / "b.txt").write_text("x")
    assert (tmp_path / "a.txt").stat().st_mode == (tmp_path / "b.txt").stat().st_mode


@pytest.mark.parametrize("command, output, where, code", [
    ("evaluate", "m.json", "fsync", errno.ENOSPC),
    ("predict", "p.csv", "replace", errno.ENOSPC),
    ("export", "model.safetensors", "mkstemp", errno.EROFS),
])
def test_the_cli_reports_a_full_disk_in_one_sentence(command, output, where, code, ef_run, sim_echonet,
                                                      tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / output).write_text("old results")
    if command == "export":
        (out / "config.json").write_text("old config")
    before = _tree(out)
    video = next((sim_echonet / "Videos").glob("*.avi"))
    args = {"evaluate": ["evaluate", "--checkpoint", ef_run, "--data", sim_echonet, "--out", out / output],
            "predict": ["predict", "--checkpoint", ef_run, video, "--out", out / output],
            "export": ["export", ef_run, "--out", out]}[command]
    _fail(monkeypatch, where, code, output)
    line = _one_error_line(*_cli(capsys, *args))
    assert line.startswith(f"error: cannot write {out / output}: ") and "unchanged" in line, line
    assert _tree(out) == before  # old bytes kept, nothing half-written, no temporary file


def test_a_checkpoint_that_cannot_be_written_stops_training_in_one_sentence(ef_run, sim_echonet, tiny_config,
                                                                            tmp_path):
    """A real write failure: the kernel refuses to grow any file past 256 KiB (RLIMIT_FSIZE, EFBIG),
    so the first checkpoint of the resumed run cannot be written; the earlier ones stay intact."""
    run = tmp_path / "ef"
    shutil.copytree(ef_run, run)
    before = {name: _sha(run / name) for name in ("checkpoints/last.ckpt", "checkpoints/best.ckpt", "metrics.json")}
    limit = 256 * 1024
    assert (run / "checkpoints" / "last.ckpt").stat().st_size > limit  # so the limit does bite

    def small_files_only():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG instead of being killed
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    proc = _echossl("train", "ef", "--data", sim_echonet, "--out", run, "--config", tiny_config,
                    "--max-epochs", "3", "--resume", preexec_fn=small_files_only)
    line = _one_error_line(proc.returncode, proc.stderr)
    assert "cannot write" in line and ".ckpt" in line and "unchanged" in line, line
    assert {name: _sha(run / name) for name in before} == before
    assert not list((run / "checkpoints").glob(".*.tmp"))


def test_an_output_folder_blocked_by_a_file_is_one_sentence(ef_run, sim_echonet, tiny_config, tmp_path, capsys):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the run folder should go")
    for out in (blocker, blocker / "run"):
        line = _one_error_line(*_cli(capsys, "train", "ef", "--data", sim_echonet, "--out", out,
                                     "--config", tiny_config, "--max-steps", "1"))
        assert "a file stands where a folder is needed" in line and str(blocker) in line, line
    line = _one_error_line(*_cli(capsys, "evaluate", "--checkpoint", ef_run, "--data", sim_echonet,
                                 "--out", blocker / "m.json"))
    assert f"cannot write {blocker}: a file stands where a folder is needed" in line, line
    assert blocker.read_text() == "a file where the run folder should go"


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_a_read_only_folder_is_one_sentence(ef_run, sim_echonet, tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    (ro / "m.json").write_text("old")
    ro.chmod(0o500)
    try:
        line = _one_error_line(*_cli(capsys, "evaluate", "--checkpoint", ef_run, "--data", sim_echonet,
                                     "--out", ro / "m.json"))
        assert "permission is denied" in line and (ro / "m.json").read_text() == "old"
    finally:
        ro.chmod(0o700)


# --------------------------------------------------------------------------- #
# NaN / inf loss
# --------------------------------------------------------------------------- #

def test_a_nan_loss_stops_training_and_keeps_the_last_good_files(ef_run, sim_echonet, tiny_config, tmp_path,
                                                                 monkeypatch, capsys):
    """Resume a finished 2-epoch run to 5 epochs; the loss turns NaN at epoch 3, batch 1."""
    from echossl.methods.ef import EFRegression

    run = tmp_path / "ef"
    shutil.copytree(ef_run, run)
    metrics_before = _sha(run / "metrics.json")
    files = ("checkpoints/best.ckpt", "checkpoints/last.ckpt")
    at_nan: dict[str, str] = {}
    original = EFRegression.training_step

    def poisoned(self, batch, batch_idx):
        loss = original(self, batch, batch_idx)
        if self.current_epoch == 3 and batch_idx == 1:
            at_nan.update({name: _sha(run / name) for name in files})  # the files as they were before the NaN
            return loss * float("nan")
        return loss

    monkeypatch.setattr(EFRegression, "training_step", poisoned)
    line = _one_error_line(*_cli(capsys, "train", "ef", "--data", sim_echonet, "--out", run,
                                 "--config", tiny_config, "--max-epochs", "5", "--resume"))
    assert "training loss became nan" in line and "last good checkpoint was kept" in line, line
    assert at_nan, "the NaN was never injected"
    assert {name: _sha(run / name) for name in files} == at_nan  # best not overwritten with garbage
    assert _sha(run / "metrics.json") == metrics_before
    last = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["epoch"] == 2  # the last complete epoch before the NaN
    assert all(torch.isfinite(v).all() for v in last["state_dict"].values() if v.is_floating_point())
    assert json.loads((run / "metrics.json").read_text())["mae"] is not None
