"""Under load: many short epochs over a data set with bad videos mixed in.

One EF training run (the real pipeline: ``split_data`` -> ``train_ef`` -> TEST
evaluation, in this process so that it can be measured) over 24 simulated videos
of which 4 are broken (empty, cut in half, random bytes, header only). After
every epoch a callback reads this process's resident memory (``VmRSS``) and its
open file descriptors (``/proc/self/fd``). The run must show:

* memory does not grow without bound: after the first two (warm-up) epochs, RSS
  rises by at most ``RSS_BOUND_MB`` up to the last epoch;
* no file handle leaks: the descriptor count after the last epoch equals the
  count after the first;
* each bad video is reported exactly once per run (one warning naming it, however
  many epochs and datasets read the folder), and training never touches it.

``ECHOSSL_SOAK_EPOCHS`` sets the epochs of the default test (20); the ``slow``
variant runs 300. ``ECHOSSL_SOAK_REPORT=FILE`` writes the measurements as JSON.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import pytest
from lightning.pytorch.callbacks import Callback

RSS_BOUND_MB = 32  # measured: +11 MB over 20 epochs, +6 MB over 300 (a plateau)


def _rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


class Probe(Callback):
    """RSS (KiB) and open descriptors at the start of training and after every epoch."""

    def __init__(self):
        self.rss, self.fds, self.batches = [], [], 0
        self.seen: set[str] = set()  # FileNames that reached a training step

    def _sample(self):
        self.rss.append(_rss_kb())
        self.fds.append(_fds())

    def on_train_start(self, trainer, pl_module):
        self._sample()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.batches += 1
        self.seen.update(batch["filename"])

    def on_train_epoch_end(self, trainer, pl_module):
        self._sample()


@pytest.fixture(scope="module")
def dirty_echonet(tmp_path_factory) -> tuple[Path, list[str]]:
    """24 simulated videos; 3 TRAIN and 1 TEST video broken in different ways."""
    import pandas as pd

    from echossl.simulate.echonet import simulate_echonet

    root = tmp_path_factory.mktemp("soak")
    simulate_echonet(root, 24, seed=11, size=64, style="easy", progress=False)
    table = pd.read_csv(root / "FileList.csv")
    train = sorted(table.loc[table.Split == "TRAIN", "FileName"])
    test = sorted(table.loc[table.Split == "TEST", "FileName"])
    bad = [train[0], train[3], train[6], test[0]]
    videos = [root / "Videos" / f"{name}.avi" for name in bad]
    raw = [v.read_bytes() for v in videos]
    videos[0].write_bytes(b"")                              # empty
    videos[1].write_bytes(raw[1][: len(raw[1]) // 2])       # cut in half
    videos[2].write_bytes(os.urandom(len(raw[2])))          # random bytes
    videos[3].write_bytes(raw[3][:4096])                    # the header only
    return root, bad


def _soak(root: Path, bad: list[str], config: Path, out: Path, epochs: int) -> dict:
    from echossl.config import load_config
    from echossl.engine import TrainerOptions
    from echossl.pipelines.semisupervised_ef import split_data, train_ef

    cfg = load_config("cpu", config)
    probe = Probe()
    opts = TrainerOptions(max_epochs=epochs, progress=False, seed=0, callbacks=(probe,))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # count every report, not Python's once-per-place
        split = split_data(root, cfg)
        train_ef(root, out, cfg, opts, split=split)
    reports = [str(w.message) for w in caught]
    per_video = {name: sum(f"{name}.avi" in text for text in reports) for name in bad}
    mb = [kb / 1024 for kb in probe.rss]
    result = {
        "epochs": epochs, "batches": probe.batches,
        "rss_mb_start": round(mb[0], 1), "rss_mb_after_warmup": round(mb[2], 1), "rss_mb_end": round(mb[-1], 1),
        "rss_mb_max": round(max(mb), 1), "rss_mb_per_epoch": [round(m, 1) for m in mb],
        "fds_start": probe.fds[0], "fds_after_first_epoch": probe.fds[1], "fds_end": probe.fds[-1],
        "fds_max": max(probe.fds), "reports_per_bad_video": per_video, "trained_on_bad": sorted(probe.seen & set(bad)),
    }
    print(f"\nsoak: {epochs} epochs, {probe.batches} batches; RSS {result['rss_mb_start']} MB at start, "
          f"{result['rss_mb_after_warmup']} MB after 2 epochs, {result['rss_mb_end']} MB at the end "
          f"(max {result['rss_mb_max']}); fds {result['fds_start']} -> {result['fds_after_first_epoch']} -> "
          f"{result['fds_end']} (max {result['fds_max']}); reports per bad video {per_video}")
    target = os.environ.get("ECHOSSL_SOAK_REPORT")
    if target:
        from echossl.io import atomic_write_text

        atomic_write_text(target, json.dumps(result, indent=2) + "\n")
    return result


@pytest.mark.parametrize("epochs", [
    int(os.environ.get("ECHOSSL_SOAK_EPOCHS", "20")),
    pytest.param(300, marks=pytest.mark.slow, id="long"),
])
def test_soak_many_short_epochs_with_bad_videos(epochs, dirty_echonet, tiny_config, tmp_path):
    root, bad = dirty_echonet
    r = _soak(root, bad, tiny_config, tmp_path / "run", epochs)
    assert len(r["rss_mb_per_epoch"]) == epochs + 1 and r["batches"] >= 2 * epochs
    assert r["rss_mb_end"] - r["rss_mb_after_warmup"] <= RSS_BOUND_MB, r["rss_mb_per_epoch"]
    assert r["fds_end"] == r["fds_after_first_epoch"], r
    assert r["reports_per_bad_video"] == {name: 1 for name in bad}
    assert r["trained_on_bad"] == []
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["n"] >= 1 and metrics["mae"] is not None  # the run finished despite the bad videos
