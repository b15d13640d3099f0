"""EF regression from video: the video-only baseline and the multi-input teacher f_m.

css-semisupervised-ef.md Sec. III-B, eq. (10): an R(2+1)D network regresses EF
with MSE on 32-frame clips at period 2. With ``in_channels=4`` it is the
multi-input teacher f_m (video + predicted LV mask); with 3 it is the
video-only baseline of Ouyang et al. The output bias starts at the training
set's mean EF, as in the EchoNet-Dynamic reference.
"""

from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F

from echossl.methods.optim import build_optimizer, with_step_lr
from echossl.models.video import build_video_regressor


def flatten_clips(video: torch.Tensor) -> tuple[torch.Tensor, int]:
    """``(B, K, C, T, H, W) -> (B*K, C, T, H, W)``; a 5-D batch passes through with K = 1."""
    if video.dim() == 6:
        b, k = video.shape[:2]
        return video.flatten(0, 1), k
    return video, 1


class EFRegression(L.LightningModule):
    """EF regressor; batches are EchoNetDynamic dicts with ``video`` and ``EF``.

    Validation batches may hold several clips per video ``(B, K, C, T, H, W)``;
    their predictions are averaged per video, as at test time.
    """

    def __init__(self, model: str = "small_r2plus1d", in_channels: int = 3, mean_target: float = 55.0,
                 optimizer: str = "adam", lr: float = 1e-3, momentum: float = 0.9, weight_decay: float = 1e-4,
                 step_size: int | None = 15, norm: dict | None = None, masks_dir: str | None = None,
                 model_kwargs: dict | None = None, task: str = "ef"):
        super().__init__()
        self.save_hyperparameters()
        self.net = build_video_regressor(model, in_channels, mean_target, **(model_kwargs or {}))

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """``(B, C, T, H, W) -> (B,)`` EF in %; ``(B, K, C, T, H, W)`` averages over K clips."""
        flat, k = flatten_clips(video)
        return self.net(flat).reshape(-1, k).mean(1)

    def training_step(self, batch, batch_idx):
        loss = F.mse_loss(self(batch["video"]), batch["EF"].float())
        self.log("train_loss", loss, prog_bar=True, batch_size=batch["EF"].shape[0])
        return loss

    def validation_step(self, batch, batch_idx):
        pred = self(batch["video"])
        n = batch["EF"].shape[0]
        self.log("val_mae", (pred - batch["EF"]).abs().mean(), prog_bar=True, batch_size=n, sync_dist=True)
        self.log("val_loss", F.mse_loss(pred, batch["EF"].float()), batch_size=n, sync_dist=True)

    def configure_optimizers(self):
        hp = self.hparams
        opt = build_optimizer(self.parameters(), hp.optimizer, hp.lr, hp.momentum, hp.weight_decay)
        return with_step_lr(opt, hp.step_size)
