"""Cyclical self-supervision (CSS) for semi-supervised LV segmentation.

Implements css-semisupervised-ef.md, Sec. III-A, eqs. (1)-(9): a segmentation
network whose encoder is also trained so that its per-frame embeddings repeat
with the heartbeat. The loss needs no labels, so it runs on labeled and
unlabeled clips alike.

Reading of the paper (and of its reference code) chosen here:

- Regions are contiguous: template ``P`` = frames ``[0, template)``, search
  ``Q`` = ``[template, template + search)``, buffer ``B`` = the rest
  (paper: 15 / 21 / 4 of a 40-frame clip).
- ``gamma`` (eq. 3) is the negative squared distance between phases of ``s``
  consecutive embeddings divided by ``d * s``; ``tau`` multiplies it (eq. 2),
  as in the reference code (``-dist / d / s * tau``).
- ``z~`` (eq. 4) is the alpha-weighted average of the embeddings shifted by
  ``theta``; the phase ``E~^{q*+c}`` (eq. 5) is therefore the alpha-weighted
  average of the phases starting at ``q + c``, which reach into ``B``.
- ``beta`` (eq. 6) is a softmax over the phases starting in ``P``, and the loss
  (eq. 7) is its cross-entropy against ``p* + c``, computed with log-softmax so
  that large distances cannot overflow.
- Frame embeddings are the encoder's last feature map summed over H and W
  (the reference code's pooling), see :func:`frame_embeddings`.
"""

from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F

from echossl.evaluation.metrics import dice as dice_score
from echossl.methods.optim import build_optimizer
from echossl.models.segmentation import build_segmenter


def _phases(z: torch.Tensor, s: int) -> torch.Tensor:
    """All phases ``E^t`` (eq. 1): ``(B, T, D) -> (B, T - s + 1, s * D)``."""
    b, t, d = z.shape
    # unfold gives (B, T-s+1, D, s); put the s axis before D so a phase is
    # [z^t, z^{t+1}, ...] flattened, whose squared norm is the sum in eq. 3.
    return z.unfold(1, s, 1).transpose(-1, -2).reshape(b, t - s + 1, s * d)


def _similarity(a: torch.Tensor, b: torch.Tensor, d: int, s: int) -> torch.Tensor:
    """``gamma`` of eq. 3 between ``a (B, sD)`` and each of ``b (B, K, sD)`` -> ``(B, K)``."""
    return -((a.unsqueeze(1) - b) ** 2).sum(-1) / (d * s)


def cyclical_logits(
    z: torch.Tensor,
    p_star,
    *,
    template: int = 15,
    search: int = 21,
    s: int = 3,
    c: int = 2,
    tau: float = 10.0,
) -> torch.Tensor:
    """Logits of ``beta`` (eq. 6) over the template region.

    Args:
        z: ``(T, D)`` or ``(B, T, D)`` frame embeddings of one or several clips.
        p_star: 0-based template index (int, or ``(B,)`` tensor), ``0 <= p* < template - c``.

    Returns:
        ``(B, template)`` logits whose softmax is ``beta`` (``B = 1`` for one clip).
    """
    if z.dim() == 2:
        z = z.unsqueeze(0)
    b, t, d = z.shape
    if t < template + search + c + s - 1:
        raise ValueError(
            f"a clip of {t} frames is too short for template={template}, search={search}, "
            f"c={c}, s={s}: it needs {template + search + c + s - 1}"
        )
    p_star = torch.as_tensor(p_star, device=z.device, dtype=torch.long).reshape(-1).expand(b)
    if bool(((p_star < 0) | (p_star + c >= template)).any()):
        raise ValueError(f"p_star must lie in [0, {template - c - 1}] so that p*+c is in the template region")
    phases = _phases(z, s)  # (B, T-s+1, sD)
    rows = torch.arange(b, device=z.device)
    anchor = phases[rows, p_star]  # E^{p*}: (B, sD)
    q = slice(template, template + search)
    alpha = torch.softmax(_similarity(anchor, phases[:, q], d, s) * tau, dim=1)  # eq. 2: (B, |Q|)
    shifted = phases[:, template + c : template + c + search]  # E^{q+c} for q in Q
    soft_match = torch.einsum("bq,bqk->bk", alpha, shifted)  # eqs. 4-5: E~^{q*+c}
    return _similarity(soft_match, phases[:, :template], d, s) * tau  # eq. 6 logits


def cyclical_loss(
    z: torch.Tensor,
    p_star,
    *,
    template: int = 15,
    search: int = 21,
    s: int = 3,
    c: int = 2,
    tau: float = 10.0,
) -> torch.Tensor:
    """CSS loss, eqs. (2)-(7): cross-entropy of ``beta`` against ``p* + c``.

    Args:
        z: ``(T, D)`` embeddings of one clip (paper: T = 40) or ``(B, T, D)``
            for a batch of clips; no Python loop over time or clips.
        p_star: 0-based template index, an int or a ``(B,)`` tensor
            (paper: drawn from frames 1-13, i.e. 0..12).
        template, search: sizes of regions P and Q; the buffer B is the rest.
        s: embeddings per phase. c: temporal offset. tau: temperature multiplier.

    Returns:
        Scalar loss, the mean over clips (eq. 7).
    """
    logits = cyclical_logits(z, p_star, template=template, search=search, s=s, c=c, tau=tau)
    p_star = torch.as_tensor(p_star, device=logits.device, dtype=torch.long).reshape(-1).expand(logits.shape[0])
    return F.cross_entropy(logits, p_star + c)


def frame_embeddings(feature_map: torch.Tensor, pool: str = "sum") -> torch.Tensor:
    """Per-frame embeddings ``z`` from an encoder map: ``(N, d, h, w) -> (N, d)``.

    ``sum`` over H and W follows the reference code; ``mean`` is offered for
    input sizes where the sum's scale would make the softmax in eq. 2 one-hot.
    """
    if pool == "sum":
        return feature_map.sum(dim=(-2, -1))
    if pool == "mean":
        return feature_map.mean(dim=(-2, -1))
    raise ValueError(f"pool must be 'sum' or 'mean', got {pool!r}")


LOSS_REDUCTIONS = ("sum", "mean")


def segmentation_loss(logits: torch.Tensor, mask: torch.Tensor, reduction: str = "sum") -> torch.Tensor:
    """``L_seg`` (eq. 8): binary cross-entropy with logits on the traced ED and ES frames.

    Args:
        logits: ``(B, 1, H, W)`` (or any shape) LV logits of the batch's frames.
        mask: the same shape, 0/1 LV masks.
        reduction: ``sum`` -- the EchoNet-Dynamic reference's and the CSS code's
            reduction: the BCE summed over every pixel of the batch, then halved,
            i.e. ``(sum over the ED frames + sum over the ES frames) / 2`` when the
            batch holds B ED and B ES frames (``EchoNetFrames`` yields both of every
            labeled video). The paper's SGD at lr 1e-5 and ``w_css = 0.01`` were set
            against this scale: with 20 + 20 frames of 112 px it is 2.5e5 times the
            per-pixel mean. ``mean`` -- the per-pixel mean, kept by the ``cpu``
            preset: its Adam is invariant to the scale of the loss, and its
            measured results were obtained with it (what changes is only the
            balance of ``L_seg`` against ``w_css * L_css``).

    Returns:
        A scalar.
    """
    if reduction == "sum":
        return F.binary_cross_entropy_with_logits(logits, mask, reduction="sum") / 2
    if reduction == "mean":
        return F.binary_cross_entropy_with_logits(logits, mask, reduction="mean")
    raise ValueError(f"reduction must be {' or '.join(LOSS_REDUCTIONS)}, got {reduction!r}")


# --------------------------------------------------------------------------- #
# The segmentation model trained with L_vol = L_seg + w_css * L_css (eq. 9).
# --------------------------------------------------------------------------- #


class SegmentationModule(L.LightningModule):
    """LV segmentation on traced ED/ES frames, optionally with CSS on 40-frame clips.

    Batches are ``{"frames": EchoNetFrames batch, "clip": EchoNetDynamic batch}``
    (the ``clip`` part only when CSS is on). The supervised loss is pixel-wise
    binary cross-entropy on the ED and ES masks (eq. 8; two-class cross-entropy
    with one logit), reduced as :func:`segmentation_loss` says. CSS acts on the
    shared encoder's pooled per-frame features, never on the predicted masks
    (Sec. III-A).

    Args:
        model: segmenter name (see :func:`echossl.models.segmentation.build_segmenter`).
        css: ``None`` for supervised only, else the CSS settings (weight, template,
            search, s, c, tau, pool).
        norm: ``{"mean": [...], "std": [...], "size": int|None}`` recorded for inference.
        loss_reduction: ``sum`` (the reference's, which the paper's SGD lr 1e-5 and
            ``w_css = 0.01`` were tuned against) or ``mean`` (per pixel); see
            :func:`segmentation_loss`. The default ``mean`` keeps checkpoints made
            before the option existed loading as they were trained.
    """

    def __init__(self, model: str = "small_deeplab", optimizer: str = "adam", lr: float = 1e-3,
                 momentum: float = 0.9, weight_decay: float = 0.0, css: dict | None = None,
                 norm: dict | None = None, task: str = "seg", loss_reduction: str = "mean"):
        super().__init__()
        if loss_reduction not in LOSS_REDUCTIONS:
            raise ValueError(f"seg.loss_reduction must be {' or '.join(LOSS_REDUCTIONS)}, got {loss_reduction!r}")
        self.save_hyperparameters()
        self.net = build_segmenter(model)

    def bce(self, logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``L_seg`` of ``(B, 1, H, W)`` logits against ``(B, 1, H, W)`` masks, in this module's reduction."""
        return segmentation_loss(logits, mask, self.hparams.get("loss_reduction", "mean"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W) -> (B, 1, H, W)`` logits."""
        return self.net(x)

    def css_loss(self, video: torch.Tensor) -> torch.Tensor:
        """``L_css`` of a batch of clips ``(B, 3, T, H, W)``; one random p* per clip."""
        cfg = self.hparams.css
        b, c, t, h, w = video.shape
        frames = video.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
        z = frame_embeddings(self.net.encode(frames), cfg.get("pool", "sum")).reshape(b, t, -1)
        p_star = torch.randint(0, cfg["template"] - cfg["c"], (b,), device=video.device)
        return cyclical_loss(z, p_star, template=cfg["template"], search=cfg["search"],
                             s=cfg["s"], c=cfg["c"], tau=cfg["tau"])

    def training_step(self, batch, batch_idx):
        frames = batch["frames"] if "frames" in batch else batch
        loss_seg = self.bce(self(frames["image"]), frames["mask"])
        loss = loss_seg
        if self.hparams.css and "clip" in batch:
            loss_css = self.css_loss(batch["clip"]["video"])
            loss = loss_seg + self.hparams.css["weight"] * loss_css
            self.log("train_css", loss_css, prog_bar=True, batch_size=frames["image"].shape[0])
        self.log("train_seg", loss_seg, prog_bar=True, batch_size=frames["image"].shape[0])
        self.log("train_loss", loss, batch_size=frames["image"].shape[0])
        return loss

    def validation_step(self, batch, batch_idx):
        logits = self(batch["image"])
        d = dice_score((logits > 0).squeeze(1), batch["mask"].squeeze(1) > 0.5)
        d = torch.as_tensor(d, dtype=torch.float32, device=logits.device)
        n = batch["image"].shape[0]
        self.log("val_dice", d.mean(), prog_bar=True, batch_size=n, sync_dist=True)
        self.log("val_loss", self.bce(logits, batch["mask"]), batch_size=n, sync_dist=True)

    def configure_optimizers(self):
        hp = self.hparams
        return build_optimizer(self.parameters(), hp.optimizer, hp.lr, hp.momentum, hp.weight_decay)
