"""The one training engine every method plugs into: a configured Lightning Trainer.

No method writes a training loop. A method provides a LightningModule and its
data loaders; :func:`fit` gives it checkpoints (``last`` and ``best``),
``--resume``, CSV and TensorBoard logs, a rich progress bar, seeding, and
passes ``--devices/--accelerator/--num-nodes/--strategy/--precision`` straight
to Lightning, so the same command runs on a laptop or on multi-node DDP.
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, RichProgressBar
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from echossl.config import save_config
from echossl.errors import EchosslError


@dataclass
class TrainerOptions:
    """Flags common to every training command (see CONTRACT.md)."""

    max_epochs: int | None = None
    max_steps: int | None = None
    devices: str | int = 1
    accelerator: str = "cpu"
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32-true"
    resume: bool = False
    progress: bool = True
    seed: int = 0


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


def quiet_lightning() -> None:
    """Hide Lightning's advice messages that do not concern our users."""
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.pytorch.accelerators.cuda",
                 "lightning.fabric.utilities.seed", "lightning.pytorch.utilities.model_summary"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*LeafSpec.*")
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
    run.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run / "config.yaml")
    return run


def build_trainer(run: Path, opts: TrainerOptions, *, monitor: str, mode: str) -> L.Trainer:
    quiet_lightning()
    callbacks: list[Callback] = [
        ModelCheckpoint(
            dirpath=run / "checkpoints", filename="best", monitor=monitor, mode=mode,
            save_last=True, save_top_k=1, enable_version_counter=False,
        ),
        StopOnNonFiniteLoss(),
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
        logger=[CSVLogger(run / "logs", name="csv", version=""), TensorBoardLogger(run / "logs", name="tb", version="")],
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
    trainer = build_trainer(run, opts, monitor=monitor, mode=mode)
    ckpt = run / "checkpoints" / "last.ckpt" if opts.resume else None
    trainer.fit(module, train_loaders, val_loaders, ckpt_path=ckpt, weights_only=True)
    return trainer


def best_checkpoint(run: str | Path) -> Path:
    """``best.ckpt`` if validation ever ran, else ``last.ckpt``."""
    run = Path(run)
    for name in ("best.ckpt", "last.ckpt"):
        if (run / "checkpoints" / name).exists():
            return run / "checkpoints" / name
    raise EchosslError(f"{run} holds no checkpoint (expected checkpoints/best.ckpt or last.ckpt)")


def finite(value: float) -> float | None:
    return value if value is not None and math.isfinite(value) else None
