"""The one training engine every method plugs into: a configured Lightning Trainer.

No method writes a training loop. A method provides a LightningModule and its
data loaders; :func:`fit` gives it checkpoints (``last`` and ``best``),
``--resume``, CSV and TensorBoard logs, a rich progress bar, seeding, and
passes ``--devices/--accelerator/--num-nodes/--strategy/--precision`` straight
to Lightning, so the same command runs on a laptop or on multi-node DDP.
"""

from __future__ import annotations

import csv
import errno
import io
import logging
import math
import pickle
import random
import warnings
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.fabric.plugins import TorchCheckpointIO
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, RichProgressBar
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter

from echossl.config import save_config
from echossl.engine.checkpoints import best_checkpoint  # noqa: F401  (re-exported: the trainer's runs)
from echossl.errors import CheckpointError, EchosslError
from echossl.io import atomic_write_bytes, make_dirs, output_error


# Lightning's CombinedLoader trips torch's LeafSpec deprecation when a pipeline
# builds it, before any Trainer exists; the notice is about Lightning's code,
# not the user's, so it is silenced as soon as the engine is imported.
warnings.filterwarnings("ignore", ".*LeafSpec.*", FutureWarning)


@dataclass
class TrainerOptions:
    """Flags common to every training command (see CONTRACT.md)."""

    max_epochs: int | None = None
    max_steps: int | None = None
    devices: str | int = 1
    accelerator: str = "auto"
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32-true"
    resume: bool = False
    progress: bool = True
    seed: int = 0
    compile: bool = False
    threads: int | None = None
    callbacks: tuple = ()  # extra Lightning callbacks, e.g. the benchmark's step timer


class NonFiniteLossError(EchosslError):
    """Training produced a NaN or infinite loss."""


class StopOnNonFiniteLoss(Callback):
    """Stop at the first NaN/inf loss, before a checkpoint can store garbage.

    The ``best`` checkpoint is only written on validation, which never runs
    after this fires, and ``last`` keeps the previous good epoch.
    """

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is not None and not torch.isfinite(loss).all():
            raise NonFiniteLossError(
                f"the training loss became {loss.item()} at step {trainer.global_step}; "
                "training stopped and the last good checkpoint was kept (lower the learning rate)"
            )

    def on_save_checkpoint(self, trainer, pl_module, checkpoint):
        # a finite loss can still leave NaN weights behind (an inf gradient); such a
        # checkpoint must never replace a good `last` or `best`
        bad = next((k for k, v in checkpoint["state_dict"].items()
                    if torch.is_floating_point(v) and not torch.isfinite(v).all()), None)
        if bad is not None:
            raise NonFiniteLossError(
                f"the weight {bad} became NaN or infinite at step {trainer.global_step}; "
                "training stopped and the last good checkpoint was kept (lower the learning rate)"
            )


class RestoreRandomState(Callback):
    """Keep the random generators' state in every checkpoint and restore it on ``--resume``.

    Lightning restores weights, optimizer and loop counters but not the torch,
    numpy and Python generators, so a resumed run would shuffle and crop its next
    epoch differently from a run that was never stopped. With the state restored,
    a run killed anywhere and resumed ends with the same weights and metrics
    (one process, ``data.workers: 0``, the same thread count).
    """

    def state_dict(self) -> dict:
        kind, keys, pos, has_gauss, gauss = np.random.get_state()
        # weights_only loading accepts tensors and plain Python values, not numpy arrays
        return {"torch": torch.get_rng_state(), "python": random.getstate(),
                "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss))}

    def load_state_dict(self, state: dict) -> None:
        torch.set_rng_state(state["torch"])
        random.setstate(state["python"])
        kind, keys, pos, has_gauss, gauss = state["numpy"]
        np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, made atomic inside the run folder.

    Lightning stages a checkpoint in the system temp folder and moves it into
    place, which is a copy (and can be cut half-way) when that folder is on another
    file system. Here the temporary file sits beside the target
    (:func:`echossl.io.atomic_write_bytes`), and a full disk or a read-only folder
    is one sentence naming the checkpoint, with the previous one left intact.
    """

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        if storage_options is not None or "://" in str(path):  # remote storage: Lightning's own way
            return super().save_checkpoint(checkpoint, path, storage_options)
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        atomic_write_bytes(path, buffer.getvalue())


class KeepingCSVLogger(CSVLogger):
    """Lightning's CSV logger, except that ``--resume`` appends to ``metrics.csv``.

    Lightning deletes an existing ``metrics.csv`` when a logger starts, which
    would throw away the history of the epochs before an interruption. Rows of an
    epoch that was cut short and redone after ``--resume`` appear twice; the later
    ones are the ones that count.
    """

    @property
    def experiment(self):
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _KeepingWriter(log_dir=self.log_dir)
        return self._experiment


class _KeepingWriter(ExperimentWriter):
    def _check_log_dir_exists(self) -> None:
        if self._fs.isfile(self.metrics_file_path):
            # continue under the existing header, so that old rows keep every column
            with self._fs.open(self.metrics_file_path, "r", newline="") as handle:
                self.metrics_keys = next(csv.reader(handle), [])


def quiet_lightning() -> None:
    """Hide Lightning's advice messages that do not concern our users."""
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.pytorch.accelerators.cuda",
                 "lightning.fabric.utilities.seed", "lightning.pytorch.utilities.model_summary"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*number of training batches.*")
    warnings.filterwarnings("ignore", ".*Checkpoint directory.*exists and is not empty.*")


def prepare_run(out: str | Path, cfg: dict, resume: bool) -> Path:
    """Create ``RUN/`` and save the resolved config; refuse to clobber a finished run."""
    run = Path(out)
    last = run / "checkpoints" / "last.ckpt"
    if last.exists() and not resume:
        raise EchosslError(f"{run} already holds a run (checkpoints/last.ckpt); pass --resume or choose another --out")
    if resume and not last.exists():
        raise EchosslError(f"--resume was given but {last} does not exist")
    # an unwritable or full output folder fails here, in one sentence, before any training
    make_dirs(run / "checkpoints")
    for stale in (run / "checkpoints").glob(".*.tmp"):  # a write cut short by a kill; the target is intact
        stale.unlink(missing_ok=True)
    save_config(cfg, run / "config.yaml")
    # seeded before the caller builds its model, so that --seed fixes the initial weights too
    L.seed_everything(int(cfg.get("seed", 0)), workers=True, verbose=False)
    return run


def build_trainer(run: Path, opts: TrainerOptions, *, monitor: str, mode: str) -> L.Trainer:
    quiet_lightning()
    callbacks: list[Callback] = [
        ModelCheckpoint(
            dirpath=run / "checkpoints", filename="best", monitor=monitor, mode=mode,
            save_last=True, save_top_k=1, enable_version_counter=False,
        ),
        StopOnNonFiniteLoss(),
        RestoreRandomState(),
        *opts.callbacks,
    ]
    if opts.progress:
        callbacks.append(RichProgressBar(leave=False))
    max_epochs = opts.max_epochs if opts.max_epochs is not None else (-1 if opts.max_steps else 1)
    return L.Trainer(
        default_root_dir=run,
        max_epochs=max_epochs,
        max_steps=opts.max_steps if opts.max_steps is not None else -1,
        devices=opts.devices,
        accelerator=opts.accelerator,
        num_nodes=opts.num_nodes,
        strategy=opts.strategy,
        precision=opts.precision,
        callbacks=callbacks,
        plugins=[AtomicCheckpointIO()],
        logger=[KeepingCSVLogger(run / "logs", name="csv", version=""), TensorBoardLogger(run / "logs", name="tb", version="")],
        enable_progress_bar=opts.progress,
        enable_model_summary=False,
        log_every_n_steps=1,
        num_sanity_val_steps=0,
        deterministic=False,
    )


def fit(module: L.LightningModule, train_loaders, val_loaders, run: Path, opts: TrainerOptions,
        *, monitor: str, mode: str) -> L.Trainer:
    """Fit ``module``; with ``opts.resume`` continue from ``RUN/checkpoints/last.ckpt``.

    Checkpoints are read back with ``weights_only=True``: no pickled code runs.
    """
    L.seed_everything(opts.seed, workers=True, verbose=False)
    if opts.threads:
        torch.set_num_threads(opts.threads)
    if opts.compile:
        # Lightning unwraps the compiled module when it saves, so checkpoints stay plain
        module = torch.compile(module)
    trainer = build_trainer(run, opts, monitor=monitor, mode=mode)
    ckpt = run / "checkpoints" / "last.ckpt" if opts.resume else None
    try:
        trainer.fit(module, train_loaders, val_loaders, ckpt_path=ckpt, weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(f"checkpoint {ckpt} holds pickled objects that could run code, so it was not loaded") from None
    except OSError as err:
        # the logs and checkpoints Lightning writes itself; other OSErrors are not about output
        if err.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG):
            raise
        raise output_error(err, err.filename or run) from err
    return trainer


def finite(value: float) -> float | None:
    return value if value is not None and math.isfinite(value) else None
