"""UniLVSeg: temporal-masking pre-training and sparse-label video LV segmentation.

Implements unilvseg-temporal-masking.md, Sec. II-A and II-B:

- :func:`mask_frames` and :func:`reconstruction_loss` (eq. 1): a random
  ``F_m = round(ratio * F)`` of a clip's whole frames are set to 0 *before
  normalisation* (so in normalised space they hold ``-mean / std``, the value a
  black frame gets); the network reconstructs the unmasked clip, scored with MSE.
  ``F_m < F`` as the paper requires: at least one frame stays visible.
- :func:`sparse_dice_loss` (eqs. 2-6): a frame-wise Dice loss (MONAI
  ``DiceLoss`` with a sigmoid) summed over the *labeled* frames of each clip and
  averaged over the batch. Unlabeled frames are never put into the loss graph,
  so their gradient is exactly zero (eq. 4), while the shared weights still learn
  from the labeled ones (eq. 5).

Reading of the paper chosen here: eq. 3 sums frame losses (not a mean), eq. 6
divides by the batch size N; a clip whose window holds several traced frames
(e.g. ED and ES of a short beat) uses all of them, since eq. 2 keeps every
labeled frame's label.
"""

from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F

from echossl.evaluation.metrics import dice as dice_score
from echossl.methods.optim import build_optimizer
from echossl.models.video_seg import build_video_net

# --------------------------------------------------------------------------- #
# losses
# --------------------------------------------------------------------------- #


def masked_count(frames: int, ratio: float) -> int:
    """``F_m``: frames hidden out of ``frames`` for a masking ``ratio``, kept below ``F``."""
    if not 0.0 <= float(ratio) < 1.0:
        raise ValueError(f"the masking ratio must be in [0, 1), got {ratio}")
    return int(min(round(float(ratio) * frames), max(frames - 1, 0)))


def mask_frames(video: torch.Tensor, ratio: float, fill=0.0, generator: torch.Generator | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Hide ``F_m`` random whole frames of each clip (Sec. II-A).

    Args:
        video: ``(B, C, T, H, W)`` clips.
        ratio: share of frames to hide (paper: 0.6); ``F_m = round(ratio * T)``, at most ``T - 1``.
        fill: value of a hidden frame: a scalar or ``(C,)`` per channel. For
            normalised clips, ``-mean / std`` is a frame zeroed before normalisation.
        generator: CPU generator for reproducible masks.

    Returns:
        ``(masked (B, C, T, H, W), hidden (B, T) bool)``; exactly ``F_m`` frames
        per clip are hidden, chosen uniformly without replacement.
    """
    b, c, t = video.shape[:3]
    k = masked_count(t, ratio)
    # the k smallest of T uniform draws per clip: a uniform k-subset, no loop over clips
    ranks = torch.rand(b, t, generator=generator).argsort(dim=1).argsort(dim=1)
    hidden = (ranks < k).to(video.device)
    fill = torch.as_tensor(fill, dtype=video.dtype, device=video.device).reshape(-1)
    fill = fill.reshape(1, -1, 1, 1, 1).expand(b, c, t, *video.shape[3:])
    masked = torch.where(hidden[:, None, :, None, None], fill, video)
    return masked, hidden


def reconstruction_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``L_rec`` of eq. 1: ``1/N sum_n MSE(v^n, G(v_m^n))`` for ``(N, C, T, H, W)`` clips.

    Every sample has the same size, so the mean of per-sample MSEs is the MSE
    over the whole batch.
    """
    return F.mse_loss(prediction, target)


def frame_dice_losses(logits: torch.Tensor, target: torch.Tensor, dice_loss=None) -> torch.Tensor:
    """Frame-wise Dice loss ``l_d`` of ``(K, 1, H, W)`` logits and masks -> ``(K,)``."""
    if dice_loss is None:
        from monai.losses import DiceLoss

        dice_loss = DiceLoss(sigmoid=True, reduction="none")
    return dice_loss(logits, target).reshape(logits.shape[0])


def sparse_dice_loss(logits: torch.Tensor, target: torch.Tensor, labeled: torch.Tensor, dice_loss=None
                     ) -> torch.Tensor:
    """``L_seg`` of eqs. 2-6: Dice on labeled frames only, summed per clip, averaged over clips.

    Args:
        logits: ``(B, 1, T, H, W)`` LV logits for every frame.
        target: ``(B, 1, T, H, W)`` masks; values on unlabeled frames are ignored.
        labeled: ``(B, T)`` bool, True where the frame carries a label.
        dice_loss: a MONAI ``DiceLoss(sigmoid=True, reduction="none")`` (built if None).

    Returns:
        Scalar loss. Frames that are not labeled never enter the computation, so
        the gradient w.r.t. their logits is exactly zero (eq. 4); with no labeled
        frame in the batch the loss is a graph-connected 0.
    """
    b = logits.shape[0]
    labeled = labeled.to(torch.bool).to(logits.device)
    frames = logits.transpose(1, 2)[labeled]  # (K, 1, H, W): the labeled frames of all clips
    if frames.shape[0] == 0:
        return logits.sum() * 0.0
    masks = target.transpose(1, 2)[labeled].to(frames.dtype)
    return frame_dice_losses(frames, masks, dice_loss).sum() / b  # eq. 3 per clip, eq. 6 over N


# --------------------------------------------------------------------------- #
# LightningModules
# --------------------------------------------------------------------------- #


class _VideoNetModule(L.LightningModule):
    """Shared parts: the network ``self.net``, AdamW, and the normalisation record."""

    out_channels = 1

    def __init__(self, arch: str, net: dict | None, optimizer: str, lr: float, weight_decay: float,
                 norm: dict | None, frames: int, period: int):
        super().__init__()
        self.net = build_video_net(arch, out_channels=self.out_channels, **(net or {}))

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """``(B, 3, T, H, W) -> (B, out, T, H, W)``."""
        return self.net(video)

    def configure_optimizers(self):
        hp = self.hparams
        return build_optimizer(self.parameters(), hp.optimizer, hp.lr, weight_decay=hp.weight_decay)


class TemporalMaskingModule(_VideoNetModule):
    """Self-supervised temporal masking (Sec. II-A, eq. 1).

    Batches hold ``video``: ``(B, 3, T, H, W)`` normalised clips. Masking happens
    here, on the fly, so every epoch sees new masks.

    Args:
        arch, net: the video network (see :func:`echossl.models.video_seg.build_video_net`).
        mask_ratio: share of whole frames hidden (paper: 0.6).
        optimizer, lr, weight_decay: paper: AdamW, 3e-4, 1e-5.
        norm: ``{"mean": [3], "std": [3], "size": int|None}`` of the data; a hidden
            frame holds ``-mean / std``, i.e. zero before normalisation.
        frames, period: the clip sampling ``F`` and ``T`` (recorded for evaluation).
    """

    out_channels = 3

    def __init__(self, arch: str = "unet3d", net: dict | None = None, mask_ratio: float = 0.6,
                 optimizer: str = "adamw", lr: float = 3e-4, weight_decay: float = 1e-5, norm: dict | None = None,
                 frames: int = 32, period: int = 1, task: str = "temporal-masking"):
        super().__init__(arch, net, optimizer, lr, weight_decay, norm, frames, period)
        self.save_hyperparameters()
        masked_count(frames, mask_ratio)  # validates the ratio early
        norm = norm or {"mean": [0.0] * 3, "std": [1.0] * 3}
        fill = -torch.tensor(norm["mean"], dtype=torch.float32) / torch.tensor(norm["std"], dtype=torch.float32)
        self.register_buffer("fill", fill, persistent=False)

    def _step(self, video: torch.Tensor, generator=None):
        masked, hidden = mask_frames(video, self.hparams.mask_ratio, self.fill, generator)
        prediction = self.net(masked)
        return reconstruction_loss(prediction, video), prediction, hidden

    def training_step(self, batch, batch_idx):
        loss, _, _ = self._step(batch["video"])
        self.log("train_loss", loss, prog_bar=True, batch_size=batch["video"].shape[0])
        return loss

    def validation_step(self, batch, batch_idx):
        # a fixed mask per batch so that val_loss compares epochs on the same task
        generator = torch.Generator().manual_seed(batch_idx)
        loss, prediction, hidden = self._step(batch["video"], generator)
        n = batch["video"].shape[0]
        err = ((prediction - batch["video"]) ** 2).mean(dim=(1, 3, 4))  # (B, T)
        self.log("val_loss", loss, prog_bar=True, batch_size=n, sync_dist=True)
        if hidden.any():
            self.log("val_mse_masked", err[hidden].mean(), batch_size=n, sync_dist=True)


class VideoSegModule(_VideoNetModule):
    """Video LV segmentation from sparse labels (Sec. II-B, eqs. 2-6).

    Batches hold ``video`` ``(B, 3, T, H, W)``, ``mask`` ``(B, 1, T, H, W)`` and
    ``labeled`` ``(B, T)`` bool. ``val_dice`` is the Dice of the labeled frames of
    the validation clips (each centred on a traced frame).
    """

    out_channels = 1

    def __init__(self, arch: str = "unet3d", net: dict | None = None, optimizer: str = "adamw", lr: float = 3e-4,
                 weight_decay: float = 1e-5, norm: dict | None = None, frames: int = 32, period: int = 1,
                 task: str = "video-seg"):
        super().__init__(arch, net, optimizer, lr, weight_decay, norm, frames, period)
        self.save_hyperparameters()
        from monai.losses import DiceLoss

        self.dice_loss = DiceLoss(sigmoid=True, reduction="none")

    def training_step(self, batch, batch_idx):
        loss = sparse_dice_loss(self.net(batch["video"]), batch["mask"], batch["labeled"], self.dice_loss)
        self.log("train_loss", loss, prog_bar=True, batch_size=batch["video"].shape[0])
        return loss

    def validation_step(self, batch, batch_idx):
        logits = self.net(batch["video"])
        n = batch["video"].shape[0]
        labeled = batch["labeled"].bool()
        self.log("val_loss", sparse_dice_loss(logits, batch["mask"], labeled, self.dice_loss),
                 batch_size=n, sync_dist=True)
        pred = logits.transpose(1, 2)[labeled][:, 0] > 0
        truth = batch["mask"].transpose(1, 2)[labeled][:, 0] > 0.5
        d = torch.as_tensor(dice_score(pred, truth), dtype=torch.float32, device=logits.device)
        self.log("val_dice", d.mean(), prog_bar=True, batch_size=max(1, int(labeled.sum())), sync_dist=True)
