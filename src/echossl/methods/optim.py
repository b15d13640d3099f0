"""Optimisers by name, shared by every method (one place to add another)."""

from __future__ import annotations

import torch


def build_optimizer(params, name: str, lr: float, momentum: float = 0.9, weight_decay: float = 0.0):
    """``sgd`` (the papers' choice), ``adam`` or ``adamw``."""
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; choose sgd, adam or adamw")


def with_step_lr(optimizer, step_size: int | None, gamma: float = 0.1):
    """Lightning's optimizer config with the reference's StepLR (every ``step_size`` epochs)."""
    if not step_size:
        return optimizer
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=step_size, gamma=gamma)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}
