"""Training-step throughput, data-wait share and method-loss share, per model family.

Each family trains through its real pipeline (the same function the CLI calls)
on simulated data, with :class:`StepTimer` added to the engine's callbacks.
The timer splits each step's wall time into *data wait* (from the end of one
step to the start of the next: the loader's ``next()``) and *compute*
(forward, backward, optimiser step), and stops the run after the measured
steps by raising :class:`StepsMeasured`, so the pipeline's evaluation never runs.

Method-specific losses are timed alone: :func:`recording` wraps the loss
function where its method module calls it, keeps the arguments of one real
call, and :func:`time_loss` then runs forward + backward on copies of them.
"""

from __future__ import annotations

import contextlib
import importlib
import statistics
import time
from dataclasses import dataclass, field

import torch
from lightning.pytorch.callbacks import Callback


# family -> (method module, its loss functions timed alone); families without one train a plain loss
LOSSES = {
    "ef": (None, ()),
    "seg_css": ("echossl.methods.css", ("cyclical_loss",)),
    "unet3d": (None, ()),
    "vit": ("echossl.methods.discover", ("semantic_cluster_distillation",)),
    "jigsaw": ("echossl.methods.mrjet", ("structure_recovery_loss", "color_tolerance_loss")),
    "video_speech": ("echossl.methods.video_speech", ("cross_modal_contrast",)),
}
FAMILIES = tuple(LOSSES)


class StepsMeasured(Exception):
    """Raised by :class:`StepTimer` once it has its steps; ends the run early on purpose."""


def _batch_size(batch) -> int:
    """Leading size of the first tensor in a (nested) batch."""
    if torch.is_tensor(batch):
        return int(batch.shape[0])
    items = batch.values() if isinstance(batch, dict) else batch if isinstance(batch, (list, tuple)) else []
    for item in items:
        n = _batch_size(item)
        if n:
            return n
    return 0


@dataclass(eq=False)  # Lightning keeps callbacks in lists; identity equality
class StepTimer(Callback):
    """Times ``steps`` training steps after ``warmup`` steps; records the loss of every step.

    A step's time is the gap since the previous step ended plus its compute
    (forward, backward, optimiser step). Inside :meth:`loader_clock`, the time
    spent in DataLoader ``next()`` calls is counted apart: that is the *data
    wait*. The rest of the gap is Lightning's own per-step work (logging,
    callbacks). Validation passes are left out of the gap, and so is the end
    of an epoch (checkpoint saving): the first step of an epoch counts from the
    epoch's start.
    """

    steps: int
    warmup: int = 2
    stop: bool = True
    wait: list = field(default_factory=list)
    gap: list = field(default_factory=list)
    compute: list = field(default_factory=list)
    samples: list = field(default_factory=list)
    first_of_epoch: list = field(default_factory=list)
    losses: list = field(default_factory=list)
    _seen: int = 0
    _end: float | None = None
    _start: float = 0.0
    _pending: tuple | None = None
    _val_start: float = 0.0
    _val_seconds: float = 0.0
    _loader_seconds: float = 0.0
    _first: bool = True
    world_size: int = 1
    global_rank: int = 0

    @contextlib.contextmanager
    def loader_clock(self):
        """Count the seconds spent in every DataLoader iterator's ``__next__`` while inside."""
        from torch.utils.data.dataloader import _BaseDataLoaderIter

        original = _BaseDataLoaderIter.__next__
        timer = self

        def timed_next(it):
            t0 = time.perf_counter()
            try:
                return original(it)
            finally:
                timer._loader_seconds += time.perf_counter() - t0

        _BaseDataLoaderIter.__next__ = timed_next
        try:
            yield self
        finally:
            _BaseDataLoaderIter.__next__ = original

    def on_train_start(self, trainer, pl_module):
        self.world_size, self.global_rank = trainer.world_size, trainer.global_rank

    def on_train_epoch_start(self, trainer, pl_module):
        self._end, self._val_seconds, self._first = time.perf_counter(), 0.0, True
        self._loader_seconds = 0.0

    def on_validation_start(self, trainer, pl_module):
        self._val_start = time.perf_counter()

    def on_validation_end(self, trainer, pl_module):
        self._val_seconds += time.perf_counter() - self._val_start
        self._loader_seconds = 0.0  # validation batches are not training's wait

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        now = time.perf_counter()
        if self._end is None:
            self._pending = None
        else:
            self._pending = (now - self._end - self._val_seconds, self._loader_seconds)
        self._val_seconds = self._loader_seconds = 0.0
        self._start = now

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        now = time.perf_counter()
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        self.losses.append(float(loss.detach()) if loss is not None else float("nan"))
        if self._seen >= self.warmup and self._pending is not None:
            gap, loader = self._pending
            self.gap.append(gap)
            self.wait.append(min(loader, gap))
            self.compute.append(now - self._start)
            self.samples.append(_batch_size(batch))
            self.first_of_epoch.append(self._first)
        self._first = False
        self._seen += 1
        self._end = now
        self._loader_seconds = 0.0
        if self.stop and len(self.compute) >= self.steps:
            raise StepsMeasured()

    def summary(self) -> dict:
        """Samples/s over all processes (each measures its own share), median step, time shares.

        ``data_wait_share`` is the steady state: steps after the first of their
        epoch. The first step of an epoch also pays for starting the loader,
        reported as ``epoch_start_wait_ms``; on the bench's small data sets an
        epoch is a few steps, so counting it in the share
        (``data_wait_share_all``) weighs it far more than an EchoNet-sized epoch
        of ~900 steps would. ``between_steps_share`` is Lightning's per-step
        work outside the loader and the step (logging, callbacks).
        """
        step = [g + c for g, c in zip(self.gap, self.compute)]
        total = sum(step)
        steady = [(w, s) for w, s, first in zip(self.wait, step, self.first_of_epoch) if not first] \
            or list(zip(self.wait, step))
        starts = [w for w, first in zip(self.wait, self.first_of_epoch) if first]
        return {
            "processes": self.world_size,
            "steps": len(step),
            "samples_per_s": self.world_size * sum(self.samples) / total if total else None,
            "step_ms_median": 1000 * statistics.median(step) if step else None,
            "data_wait_share": sum(w for w, _ in steady) / sum(s for _, s in steady) if steady else None,
            "data_wait_share_all": sum(self.wait) / total if total else None,
            "between_steps_share": (sum(self.gap) - sum(self.wait)) / total if total else None,
            "epoch_start_wait_ms": 1000 * statistics.median(starts) if starts else None,
            "steps_first_of_epoch": len(starts),
        }


@contextlib.contextmanager
def recording(module_name: str, function_name: str):
    """Wrap ``module_name.function_name`` so the arguments of its first call are kept.

    Yields the list the ``(args, kwargs)`` pair lands in.
    """
    module = importlib.import_module(module_name)
    original = getattr(module, function_name)
    calls: list = []

    def wrapper(*args, **kwargs):
        if not calls:
            calls.append(([a.detach().clone() if torch.is_tensor(a) else a for a in args], dict(kwargs)))
        return original(*args, **kwargs)

    setattr(module, function_name, wrapper)
    try:
        yield calls
    finally:
        setattr(module, function_name, original)


def time_loss(fn, args, kwargs, repeats: int = 10) -> float:
    """Median seconds of ``fn(*args, **kwargs)`` forward + backward, on fresh leaf copies of float inputs."""
    times = []
    for _ in range(repeats + 1):
        leaves = [a.clone().requires_grad_(a.is_floating_point()) if torch.is_tensor(a) else a for a in args]
        t0 = time.perf_counter()
        out = fn(*leaves, **kwargs)
        if out.requires_grad:
            out.backward()
        times.append(time.perf_counter() - t0)
    return statistics.median(times[1:])
