"""The benchmark's parts measure what they say: no timing is asserted here, only correctness."""

from __future__ import annotations

import time

import lightning as L
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from echossl.bench import targets
from echossl.bench.inference import bench_inference, naive_predict_ef
from echossl.bench.loading import bench_loading
from echossl.bench.training import StepsMeasured, StepTimer, recording, time_loss
from echossl.data.cache import FrameCache
from echossl.methods.ef import EFRegression
from echossl.pipelines.semisupervised_ef import predict_ef_frames


class SlowData(Dataset):
    """Each item costs ``delay`` seconds to load: a known data wait."""

    def __init__(self, n: int, delay: float):
        self.n, self.delay = n, delay

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        time.sleep(self.delay)
        return torch.randn(4), torch.randn(1)


class Tiny(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Linear(4, 1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return torch.nn.functional.mse_loss(self.net(x), y)

    def validation_step(self, batch, batch_idx):
        time.sleep(0.3)  # slow validation must not count as data wait

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _fit(timer, delay, val=True):
    trainer = L.Trainer(max_epochs=50, callbacks=[timer], logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                        accelerator="cpu")
    with timer.loader_clock(), pytest.raises(StepsMeasured):
        trainer.fit(Tiny(), DataLoader(SlowData(6, delay), batch_size=2),
                    DataLoader(SlowData(2, 0.0), batch_size=2) if val else None)


def test_step_timer_sees_data_wait_and_stops():
    timer = StepTimer(steps=6, warmup=1)
    _fit(timer, delay=0.02)  # a batch of 2 waits ~40 ms; the step itself is ~1 ms
    summary = timer.summary()
    assert summary["steps"] == 6 and summary["processes"] == 1
    assert summary["data_wait_share"] > 0.8 and summary["between_steps_share"] < 0.2
    assert all(n == 2 for n in timer.samples)


def test_step_timer_does_not_count_validation_as_wait():
    timer = StepTimer(steps=6, warmup=1)
    _fit(timer, delay=0.0)  # 3 steps per epoch, then a 300 ms validation between epochs
    assert len(timer.wait) == 6 and max(timer.gap) < 0.15 and max(timer.wait) < 0.15


def test_recording_keeps_the_first_call_and_restores_the_function():
    import echossl.methods.css as css

    original = css.cyclical_loss
    with recording("echossl.methods.css", "cyclical_loss") as calls:
        z = torch.randn(2, 40, 8)
        css.cyclical_loss(z, torch.tensor([0, 3]), template=15, search=21, s=3, c=2, tau=10.0)
        css.cyclical_loss(z + 1, torch.tensor([0, 3]), template=15, search=21, s=3, c=2, tau=10.0)
    assert css.cyclical_loss is original and len(calls) == 1
    args, kwargs = calls[0]
    assert torch.equal(args[0], z) and kwargs["template"] == 15
    assert time_loss(original, args, kwargs, repeats=2) > 0


def test_batched_inference_agrees_with_the_naive_loop():
    torch.manual_seed(0)
    module = EFRegression(model="small_r2plus1d", model_kwargs={"widths": [4, 8, 8, 8]}, mean_target=55.0).eval()
    x = torch.randn(37, 3, 16, 16)  # an odd frame count: the last clips are zero-padded
    fast = predict_ef_frames(module, x, length=8, period=2, clips="all", batch_size=5)
    assert fast == pytest.approx(naive_predict_ef(module, x, length=8, period=2), abs=1e-4)
    result = bench_inference(module, [x, x[:20]], length=8, period=2, batch_size=5)
    # every start whose clip fits: 37 - 7 * 2 and 20 - 7 * 2
    assert result["max_abs_ef_difference"] < 1e-3 and result["clips"] == 23 + 6


def test_loading_paths_return_identical_pixels(sim_echonet, tmp_path):
    paths = sorted((sim_echonet / "Videos").glob("*.avi"))[:2]
    result = bench_loading(paths, FrameCache(tmp_path), seconds=0.2, length=8)
    assert result["identical_pixels"] and result["cache_clips_per_s"] > 0 and result["opencv_clips_per_s"] > 0


def test_targets_compare_in_the_right_direction():
    result = {"loading": {"ratio": 6.0}, "inference": {"ratio": 1.5}, "scaling": {"ddp_speedup": None},
              "training": {"seg_css": {"data_wait_share": 0.2, "loss_share": 0.01}}}
    t = targets(result)
    assert t["cache_vs_opencv_>=5x"]["met"] is True and t["inference_vs_naive_>=2x"]["met"] is False
    assert t["ddp_2proc_>=1.6x"]["met"] is None
    assert t["seg_css_data_wait_<10%"]["met"] is False and t["seg_css_loss_<=5%"]["met"] is True
    assert np.isclose(t["seg_css_loss_<=5%"]["value"], 0.01)


class SlowEpochEnd(L.Callback):
    def on_train_epoch_end(self, trainer, pl_module):
        time.sleep(0.3)  # like saving a big checkpoint: not data loading


def test_step_timer_does_not_count_epoch_end_work_as_wait():
    timer = StepTimer(steps=6, warmup=1)
    trainer = L.Trainer(max_epochs=50, callbacks=[SlowEpochEnd(), timer], logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
    with timer.loader_clock(), pytest.raises(StepsMeasured):
        trainer.fit(Tiny(), DataLoader(SlowData(6, 0.0), batch_size=2))
    assert len(timer.wait) == 6 and max(timer.gap) < 0.15


class SlowStartSampler(torch.utils.data.Sampler):
    """Starting each epoch's iterator costs 0.2 s; every later batch is free."""

    def __init__(self, n: int):
        self.n = n

    def __len__(self):
        return self.n

    def __iter__(self):
        time.sleep(0.2)
        return iter(range(self.n))


def test_epoch_start_wait_is_reported_apart_from_the_steady_share():
    timer = StepTimer(steps=8, warmup=0)
    trainer = L.Trainer(max_epochs=50, callbacks=[timer], logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
    with timer.loader_clock(), pytest.raises(StepsMeasured):
        trainer.fit(Tiny(), DataLoader(SlowData(8, 0.0), batch_size=2, sampler=SlowStartSampler(8)))
    summary = timer.summary()
    assert summary["steps_first_of_epoch"] == 2 and summary["epoch_start_wait_ms"] >= 190
    # the 0.2 s epoch starts dominate the share over all steps and are absent from the steady one;
    # absolute shares of this tiny model depend on the machine's load, their order does not
    assert summary["data_wait_share"] < summary["data_wait_share_all"]
    assert summary["data_wait_share_all"] > 0.5


class SlowLogging(L.Callback):
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        time.sleep(0.05)  # per-step work that is not the loader's


def test_per_step_overhead_is_not_counted_as_data_wait():
    timer = StepTimer(steps=6, warmup=1)
    trainer = L.Trainer(max_epochs=50, callbacks=[timer, SlowLogging()], logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
    with timer.loader_clock(), pytest.raises(StepsMeasured):
        trainer.fit(Tiny(), DataLoader(SlowData(12, 0.0), batch_size=2))
    summary = timer.summary()
    assert summary["data_wait_share"] < 0.2 and summary["between_steps_share"] > 0.6
