"""DISCOVER: video self-distillation + online image guidance + semantic cluster distillation.

Implements discover-cluster-distillation.md, Sec. 3, eqs. (1)-(9), and the two
baselines that share its backbone: a VideoMAE-style pixel reconstruction and
video self-distillation alone (Table 5a, first row: no L_SCD, no image branch).

Readings of the paper chosen here (and why):

- Eqs. (1)-(4), (5)-(6): the teacher sees the full clip (frame) once, the student
  ``M`` (``N``) masked views; the loss is the mean over views of ``H(P_t, P_s^m)``.
  The heads are DINO heads (MLP 2048-2048-256, L2-norm, weight-normed last
  layer), the teacher output is centred and sharpened with a temperature warmed
  from 0.04 to 0.07, the student temperature is 0.1 (REFERENCE-NOTES). Lightly's
  ``DINOLoss`` skips same-index teacher/student pairs (it assumes every view is
  seen by both); here the teacher never sees a masked view, so
  :class:`MaskedViewDistillation` puts a dummy view at the skipped index.
- Eqs. (7)-(9): features and prototypes are L2-normalised; Sinkhorn-Knopp runs
  on the cosine scores with ``epsilon`` (SwaV's convention, 0.05, 10
  iterations) and the cross-entropy uses ``softmax(score / tau)`` (tau = 0.1).
  Passing ``score / tau`` to Sinkhorn as well would sharpen the targets by a
  further factor of 10 to near one-hot codes; the paper's numbers (eps 0.05,
  tau 0.1) are exactly SwaV's, whose convention this is.
- The SCD targets are the *image teacher's* patch features of the same frames,
  detached; a tube token spans ``tubelet`` frames, so its target is the mean of
  those frames' patch features at the same spatial patch. The reshaping is done
  on a ``(B, T, P, D)`` tensor, never by slicing the flattened time x patch
  tokens (the original code's "every-other-token" mistake, REFERENCE-NOTES).
- All frames chosen for the image branch are processed in one batch, and the
  image loss is the mean over all of them (the original code kept only the last
  chunk's loss). ``image_frames`` may limit how many frames per clip the image
  *student* sees, to bound CPU cost; ``None`` (paper) uses every frame.
- Gradients of L_SCD reach the video student (through the decoder) and the
  prototypes only; the image encoders learn from L_img alone (eq. 9 text).
- The total loss is ``L_vid + L_img + w_scd * L_SCD`` with ``w_scd = 1``: the
  paper states no weights.
- The inference network ``self.net`` is the EMA teacher video encoder (DINO's
  evaluation choice) for the two distillation variants and the encoder for the
  VideoMAE-style baseline.
- Masking is VideoMAE's *tube* masking (:func:`echossl.models.vit.tube_token_mask`): one
  spatial mask shared by all time steps, for DISCOVER's video student and the VideoMAE-style
  row. The image student's views are single frames and keep i.i.d. patch masks.
- Position shortcut: the image teacher adds fixed position codes to its patch tokens, so at
  initialisation about half of its patch-token variance is a function of the patch position
  alone (measured by :func:`position_variance_share`). The decoder receives the masked
  tokens' position codes, so it could score L_SCD by predicting position. With
  ``scd.centre_positions`` (default true) the per-position mean over the batch is removed from
  the targets (:func:`remove_position_mean`), leaving no position-only component to predict.
- Optimisation (VideoMAE / DINO conventions): ``lr = base_lr x total_batch / 256`` with
  ``total_batch = batch_size x devices x nodes x accumulation`` (``base_lr`` 1.5e-4);
  AdamW with no weight decay on norms, biases, the heads' last layers and the prototypes
  (lightly's ``get_weight_decay_parameters``); gradient clipping by norm (``grad_clip``,
  DINO 3.0) in ``configure_gradient_clipping``; the heads' last layers and the prototypes
  frozen for the first ``freeze_last_layer`` epochs (DINO; SwaV freezes its prototypes).
- Collapse monitors (:func:`collapse_statistics`): per batch, the mean per-sample entropy of
  the teacher's centred, sharpened targets / ln K, the entropy of the batch-mean target / ln K
  (video and image branches) and the std across the batch of the L2-normalised teacher CLS
  embedding; averaged per epoch into ``self.collapse`` and logged as ``collapse_*``. A healthy
  run keeps each target ratio <= 0.95 (not uniform) and each batch ratio >= 0.3 (not all on
  one dimension); crossing a bound warns once.
"""

from __future__ import annotations

import copy
import warnings

import lightning as L
import torch
import torch.nn.functional as F
from lightly.loss import DINOLoss
from lightly.loss.swav_loss import sinkhorn
from lightly.models.modules import DINOProjectionHead
from lightly.models.utils import get_weight_decay_parameters, update_momentum
from lightly.utils.scheduler import cosine_schedule
from torch import nn

from echossl.models.vit import TokenDecoder, build_vit, random_token_mask, tube_token_mask

VARIANTS = ("discover", "videomae", "video-dino")


# --------------------------------------------------------------------------- #
# Losses
# --------------------------------------------------------------------------- #


class MaskedViewDistillation(nn.Module):
    """Masked self-distillation, eqs. (3)-(4) for video and (5)-(6) for frames.

    ``L = 1/M sum_m H(P_t, P_s^(m))`` with ``P_t = softmax((W_t z_t - c) / tau_t)``
    (centre ``c``, DINO) and ``P_s^(m) = softmax(W_s z_s^(m) / tau_s)``. Built on
    lightly's ``DINOLoss`` (centring, temperature warm-up by epoch).

    Args:
        output_dim: width of the head outputs.
        teacher_temp_start, teacher_temp: tau_t warmed linearly over ``warmup_epochs``.
        student_temp: tau_s.
        center_momentum: EMA of the centre.

    Forward:
        ``teacher (B, K)``, ``students (M, B, K)`` head outputs -> scalar.
    """

    def __init__(self, output_dim: int, teacher_temp_start: float = 0.04, teacher_temp: float = 0.07,
                 warmup_epochs: int = 30, student_temp: float = 0.1, center_momentum: float = 0.9):
        super().__init__()
        self.dino = DINOLoss(output_dim=output_dim, warmup_teacher_temp=teacher_temp_start,
                             teacher_temp=teacher_temp, warmup_teacher_temp_epochs=warmup_epochs,
                             student_temp=student_temp, center_momentum=center_momentum)

    def teacher_temperature(self, epoch: int) -> float:
        """tau_t at ``epoch`` (lightly's linear warm-up, then constant)."""
        d = self.dino
        if epoch < d.warmup_teacher_temp_epochs:
            return float(d.teacher_temp_schedule[epoch])
        return float(d.teacher_temp)

    def statistics(self, teacher: torch.Tensor, epoch: int = 0) -> dict[str, float]:
        """:func:`collapse_statistics` of ``teacher (B, K)`` with the current centre (before its update)."""
        return collapse_statistics(teacher, self.dino.center, self.teacher_temperature(epoch))

    def forward(self, teacher: torch.Tensor, students: torch.Tensor, epoch: int = 0,
                update_center: bool = True) -> torch.Tensor:
        # DINOLoss zeroes teacher view i against student view i; the dummy at
        # index 0 absorbs that, so every real masked view is compared with the
        # full-clip teacher and the sum is divided by M * B.
        dummy = torch.zeros_like(students[0])
        center = self.dino.center.clone()
        loss = self.dino([teacher.detach()], [dummy, *students.unbind(0)], epoch=epoch)
        if not update_center:
            self.dino.center.copy_(center)
        return loss


def sinkhorn_targets(scores: torch.Tensor, iterations: int = 10, epsilon: float = 0.05) -> torch.Tensor:
    """Sinkhorn-Knopp soft assignments of eq. (8) (lightly's SwaV implementation).

    Args:
        scores: ``(N, K)`` cosine similarities of N tokens to K prototypes.

    Returns:
        ``(N, K)`` non-negative codes; each row sums to 1 and each prototype
        receives about ``N / K`` of the mass (equipartition). No gradient.
    """
    return sinkhorn(scores.detach().float(), iterations=iterations, epsilon=epsilon)


def semantic_cluster_distillation(z_video: torch.Tensor, z_image: torch.Tensor, prototypes: torch.Tensor, *,
                                  tau: float = 0.1, epsilon: float = 0.05, iterations: int = 10) -> torch.Tensor:
    """L_SCD, eqs. (7)-(9): symmetric cross-entropy between Sinkhorn cluster codes.

    Args:
        z_video: ``(N, D)`` decoder-reconstructed features of masked video tokens.
        z_image: ``(N, D)`` image-teacher patch features of the same tokens
            (detached here: the image encoder does not learn from this loss).
        prototypes: ``(K, D)`` shared learnable prototypes ``P``.
        tau: temperature of the scores ``s = z P^T / tau`` (eq. 7).
        epsilon, iterations: Sinkhorn settings (eq. 8).

    Returns:
        ``CE(s_v, sg(q_i)) + CE(s_i, sg(q_v))`` averaged over the N tokens.
    """
    protos = F.normalize(prototypes.float(), dim=1)
    cos_v = F.normalize(z_video.float(), dim=1) @ protos.t()
    cos_i = F.normalize(z_image.detach().float(), dim=1) @ protos.t()
    q_v = sinkhorn_targets(cos_v, iterations, epsilon)
    q_i = sinkhorn_targets(cos_i, iterations, epsilon)
    ce_v = -(q_i * F.log_softmax(cos_v / tau, dim=1)).sum(1).mean()
    ce_i = -(q_v * F.log_softmax(cos_i / tau, dim=1)).sum(1).mean()
    return ce_v + ce_i


def tube_targets(patch_features: torch.Tensor, tubelet: int) -> torch.Tensor:
    """Per-frame patch features -> one target per tube token, in the video's token order.

    Args:
        patch_features: ``(B, T, P, D)`` (P = h*w patches of each frame, row-major).
        tubelet: frames per tube token.

    Returns:
        ``(B, T/tubelet * P, D)``: the mean over each tube's frames, flattened
        time-major like :meth:`VideoViT.tokenize` (index ``t*P + p``).
    """
    b, t, p, d = patch_features.shape
    if t % tubelet:
        raise ValueError(f"{t} frames do not split into tubes of {tubelet}")
    return patch_features.reshape(b, t // tubelet, tubelet, p, d).mean(2).reshape(b, (t // tubelet) * p, d)


def pixel_targets(video: torch.Tensor, tubelet: int, patch: int) -> torch.Tensor:
    """VideoMAE's normalised-pixel targets: ``(B, C, T, H, W) -> (B, N, tubelet*patch*patch*C)``.

    Each tube's pixels are standardised by their own mean and variance
    (VideoMAE's ``norm_pix_loss``).
    """
    b, c, t, h, w = video.shape
    x = video.reshape(b, c, t // tubelet, tubelet, h // patch, patch, w // patch, patch)
    x = x.permute(0, 2, 4, 6, 3, 5, 7, 1).reshape(b, -1, tubelet * patch * patch * c)
    return (x - x.mean(-1, keepdim=True)) / (x.var(-1, keepdim=True, unbiased=True) + 1e-6).sqrt()


def remove_position_mean(patch_features: torch.Tensor) -> torch.Tensor:
    """Remove the per-position mean over the batch: ``(B, T, P, D) -> (B, T, P, D)``.

    The mean over all ``B x T`` frames at patch position ``p`` is the part of the image
    teacher's patch feature that position alone predicts; the decoder knows each masked
    token's position, so that part would score L_SCD without any video content."""
    return patch_features - patch_features.mean(dim=(0, 1), keepdim=True)


def position_variance_share(patch_features: torch.Tensor) -> float:
    """Share of the patch-token variance explained by the position: ``(B, T, P, D) -> float``.

    ``sum_d Var_p(E_{b,t}[x_{btpd}]) / sum_d Var_{b,t,p}(x_{btpd})`` (between-position over
    total variance, population variances)."""
    x = patch_features.detach().float().flatten(0, 1)  # (BT, P, D)
    total = x.var(dim=(0, 1), unbiased=False).sum()
    between = x.mean(0).var(0, unbiased=False).sum()
    return float(between / total.clamp_min(1e-12))


@torch.no_grad()
def collapse_statistics(teacher_out: torch.Tensor, center: torch.Tensor, temperature: float) -> dict[str, float]:
    """DINO collapse monitors of one batch of teacher head outputs ``(B, K)``.

    ``P = softmax((teacher_out - center) / temperature)`` are the targets. Returns
    ``target_entropy_ratio`` = mean_b H(P_b) / ln K (1: uniform targets, collapse by
    flattening) and ``batch_entropy_ratio`` = H(mean_b P_b) / ln K (near 0: every sample on
    the same dimension, collapse by domination)."""
    k = teacher_out.shape[-1]
    p = F.softmax((teacher_out.float() - center.reshape(1, -1).float()) / temperature, dim=-1)
    ent = -(p * p.clamp_min(1e-12).log()).sum(-1)
    mean = p.mean(0)
    batch = -(mean * mean.clamp_min(1e-12).log()).sum()
    log_k = float(torch.log(torch.tensor(float(k))))
    return {"target_entropy_ratio": float(ent.mean()) / log_k, "batch_entropy_ratio": float(batch) / log_k}


COLLAPSE_BOUNDS = {"target_entropy_ratio": ("<=", 0.95), "batch_entropy_ratio": (">=", 0.3)}


def ema_update(student: nn.Module, teacher: nn.Module, momentum: float) -> None:
    """Eq. (2): ``theta_t <- lambda theta_t + (1 - lambda) theta_s`` (lightly's ``update_momentum``)."""
    update_momentum(student, teacher, m=momentum)


# --------------------------------------------------------------------------- #
# The LightningModule
# --------------------------------------------------------------------------- #


def _head(dim: int, cfg: dict) -> DINOProjectionHead:
    with warnings.catch_warnings():
        # lightly builds the weight-normed last layer with torch's deprecated helper
        warnings.filterwarnings("ignore", ".*weight_norm.*", FutureWarning)
        return DINOProjectionHead(input_dim=dim, hidden_dim=int(cfg["hidden_dim"]),
                                  bottleneck_dim=int(cfg["bottleneck_dim"]), output_dim=int(cfg["output_dim"]))


def _total_steps(trainer) -> int:
    """Optimizer steps of the whole run (schedules need it); 1 when unbounded."""
    total = trainer.estimated_stepping_batches
    return max(1, int(total)) if total != float("inf") else 1


def _embedding_std(x: torch.Tensor) -> float:
    """Mean over dimensions of the std across the batch of L2-normalised embeddings ``(B, D)``.

    About ``1 / sqrt(D)`` for well-spread embeddings, 0 when every sample maps to one point."""
    if x.shape[0] < 2:
        return float("nan")
    return float(F.normalize(x.detach().float(), dim=-1).std(0).mean())


def collapse_warnings(stats: dict) -> list[str]:
    """The monitors of ``stats`` outside :data:`COLLAPSE_BOUNDS` (target <= 0.95, batch >= 0.3)."""
    out = []
    for key, value in stats.items():
        for suffix, (op, bound) in COLLAPSE_BOUNDS.items():
            if key.endswith(suffix) and value is not None and value == value:
                if (op == "<=" and value > bound) or (op == ">=" and value < bound):
                    out.append(f"{key} = {value:.3f} (healthy {op} {bound})")
    return out


def _frozen_copy(module: nn.Module, fresh: nn.Module | None = None) -> nn.Module:
    """A gradient-free copy of ``module`` (``fresh``: an equally built module to copy into,
    needed for DINO heads, whose weight-norm cannot be deep-copied)."""
    teacher = copy.deepcopy(module) if fresh is None else fresh
    teacher.load_state_dict(module.state_dict())
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


class DiscoverModule(L.LightningModule):
    """Self-supervised pre-training of a video ViT: ``discover``, ``videomae`` or ``video-dino``.

    Batches are EchoNetDynamic dicts; only ``video (B, C, T, H, W)`` is used.

    Args:
        variant: ``discover`` (L_vid + L_img + L_SCD), ``video-dino`` (L_vid) or
            ``videomae`` (masked pixel reconstruction).
        video, image: ViT settings (see :func:`echossl.models.vit.build_vit`).
        decoder: ``{dim, depth, heads}`` of the token decoder.
        head: DINO head ``{hidden_dim, bottleneck_dim, output_dim}``.
        mask_ratio: share of tokens hidden from each student view (paper 0.9).
        image_mask_ratio: the same for the image student's views; ``None`` uses
            ``mask_ratio``. The paper gives one masking ratio (0.9, for the video
            tubes) and none for the image branch, so by default both use it.
        views: masked student views per clip (M = N = 4 in the paper).
        image_frames: frames per clip the image student sees (None = all).
        temps: ``{teacher_start, teacher, warmup_epochs, student, center_momentum}``.
        scd: ``{prototypes, tau, epsilon, iterations, weight}``.
        ema: ``{start, end}`` momentum, cosine-scheduled over training (paper 0.996 -> 1).
        lr, weight_decay, warmup_fraction: AdamW with linear warm-up then cosine decay.
        base_lr, batch_size: when ``base_lr`` is set, the peak learning rate is
            ``base_lr x batch_size x world_size x accumulation / 256`` (VideoMAE) and ``lr``
            is ignored; ``None`` keeps ``lr`` as given (old checkpoints).
        grad_clip: gradient-norm clipping (DINO: 3.0; ``None``/0 disables).
        freeze_last_layer: epochs during which the DINO heads' last layers and the SCD
            prototypes get no update (DINO: 1).
        norm, length, period: recorded for evaluation (normalisation, clip sampling).
    """

    def __init__(self, variant: str = "discover", video: dict | None = None, image: dict | None = None,
                 decoder: dict | None = None, head: dict | None = None, mask_ratio: float = 0.9, views: int = 4,
                 image_mask_ratio: float | None = None,
                 image_frames: int | None = None, temps: dict | None = None, scd: dict | None = None,
                 ema: dict | None = None, lr: float = 1.5e-4, weight_decay: float = 0.05,
                 warmup_fraction: float = 0.1, norm: dict | None = None, length: int = 64, period: int = 3,
                 base_lr: float | None = None, batch_size: int = 8, grad_clip: float | None = 3.0,
                 freeze_last_layer: int = 1, task: str = "discover"):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
        self.save_hyperparameters()
        self.collapse: dict[str, float | None] = {}   # last finished epoch's collapse monitors
        self._collapse_batches: list[dict] = []
        self._collapse_warned = False
        self._batch_collapse: dict = {}
        video = video or {"patch": 16, "tubelet": 2, "dim": 768, "depth": 12, "heads": 12}
        decoder = decoder or {"dim": 384, "depth": 4, "heads": 6}
        head = head or {"hidden_dim": 2048, "bottleneck_dim": 256, "output_dim": 65536}
        temps = temps or {}
        loss_kw = dict(teacher_temp_start=temps.get("teacher_start", 0.04), teacher_temp=temps.get("teacher", 0.07),
                       warmup_epochs=int(temps.get("warmup_epochs", 30)), student_temp=temps.get("student", 0.1),
                       center_momentum=temps.get("center_momentum", 0.9))
        dec_kw = {k: decoder[k] for k in ("dim", "depth", "heads")}
        if variant == "videomae":
            self.net = build_vit(video)
            out = self.net.tubelet * self.net.patch ** 2 * 3
            self.decoder = TokenDecoder(self.net.dim, out_dim=out, **dec_kw)
            return
        self.student = build_vit(video)
        self.student_head = _head(self.student.dim, head)
        self.net = _frozen_copy(self.student)
        self.teacher_head = _frozen_copy(self.student_head, _head(self.student.dim, head))
        self.video_loss = MaskedViewDistillation(int(head["output_dim"]), **loss_kw)
        if variant == "discover":
            image = image or dict(video)
            self.image_student = build_vit(image, image=True)
            if self.image_student.patch != self.student.patch:
                raise ValueError("the image and video ViTs need the same patch size for L_SCD")
            self.image_student_head = _head(self.image_student.dim, head)
            self.image_teacher = _frozen_copy(self.image_student)
            self.image_teacher_head = _frozen_copy(self.image_student_head, _head(self.image_student.dim, head))
            self.image_loss = MaskedViewDistillation(int(head["output_dim"]), **loss_kw)
            self.decoder = TokenDecoder(self.student.dim, out_dim=self.image_student.dim, **dec_kw)
            scd = scd or {}
            self.prototypes = nn.Parameter(F.normalize(torch.randn(int(scd.get("prototypes", 3000)),
                                                                   self.image_student.dim), dim=1))

    # ------------------------------------------------------------------ losses

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """Clip embeddings of the inference encoder: ``(B, C, T, H, W) -> (B, 2D)``."""
        return self.net.embed(video)

    def losses(self, video: torch.Tensor, *, generator: torch.Generator | None = None,
               update_center: bool = True) -> dict[str, torch.Tensor]:
        """All loss terms of one batch ``(B, C, T, H, W)``; ``loss`` is their weighted sum."""
        if self.hparams.variant == "videomae":
            return self._videomae_losses(video, generator)
        hp = self.hparams
        m, b = int(hp.views), video.shape[0]
        epoch = int(self.current_epoch)  # 0 outside a Trainer

        with torch.no_grad():
            teacher_cls = self.net(video)[:, 0]
            teacher_out = self.teacher_head(teacher_cls)  # (B, K)
        tokens = self.student.tokenize(video)  # (B, N, D)
        grid = self.student.grid(video)
        keep, masked = tube_token_mask(m * b, grid, hp.mask_ratio, video.device, generator)
        student_x = self.student.encode(tokens.repeat(m, 1, 1), keep)  # (M*B, 1+n_keep, D), view-major
        student_out = self.student_head(student_x[:, 0]).reshape(m, b, -1)
        self._batch_collapse = {**{f"video_{k}": v for k, v in self.video_loss.statistics(teacher_out, epoch).items()},
                                "embedding_std": _embedding_std(teacher_cls)}
        out = {"loss_vid": self.video_loss(teacher_out, student_out, epoch, update_center)}  # eq. 4
        loss = out["loss_vid"]
        if hp.variant == "discover":
            out.update(self._image_and_scd_losses(video, student_x[:, 1:], keep, masked, grid, generator,
                                                  update_center, epoch))
            loss = loss + out["loss_img"] + float((hp.scd or {}).get("weight", 1.0)) * out["loss_scd"]
        out["loss"] = loss
        return out

    def _image_and_scd_losses(self, video, visible, keep, masked, grid, generator, update_center, epoch):
        hp = self.hparams
        b, c, t, h, w = video.shape
        views = int(hp.views)
        frames = video.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)  # every frame, one batch
        with torch.no_grad():
            teacher_x = self.image_teacher(frames)  # (B*T, 1+P, Di)
        # --- eqs. 5-6 on (a subset of) the frames
        n_img = t if hp.image_frames is None else min(int(hp.image_frames), t)
        pick = torch.rand(b, t, generator=generator).argsort(1)[:, :n_img].to(video.device)  # (B, F)
        flat = (pick + torch.arange(b, device=video.device)[:, None] * t).reshape(-1)  # rows of `frames`
        img_tokens = self.image_student.tokenize(frames[flat])  # (B*F, P, Di)
        ratio = hp.mask_ratio if hp.get("image_mask_ratio") is None else hp.image_mask_ratio
        img_keep, _ = random_token_mask(views * flat.numel(), img_tokens.shape[1], ratio, video.device,
                                        generator)
        img_student = self.image_student.encode(img_tokens.repeat(views, 1, 1), img_keep)[:, 0]
        img_student_out = self.image_student_head(img_student).reshape(views, flat.numel(), -1)
        with torch.no_grad():
            img_teacher_out = self.image_teacher_head(teacher_x[flat, 0])
        self._batch_collapse.update({f"image_{k}": v for k, v in
                                     self.image_loss.statistics(img_teacher_out, epoch).items()})
        loss_img = self.image_loss(img_teacher_out, img_student_out, epoch, update_center)
        # --- eqs. 7-9: decoder-reconstructed masked tokens vs image-teacher patch features
        patch_feats = teacher_x[:, 1:].reshape(b, t, -1, teacher_x.shape[-1])  # (B, T, P, Di)
        self._batch_collapse["target_position_share"] = position_variance_share(patch_feats)
        scd = hp.scd or {}
        if scd.get("centre_positions", True):
            patch_feats = remove_position_mean(patch_feats)
        self._batch_collapse["target_position_share_used"] = position_variance_share(patch_feats)
        targets = tube_targets(patch_feats, self.student.tubelet)
        recon = self.decoder(visible, keep, masked, grid)  # (M*B, n_mask, Di)
        targets = torch.gather(targets.repeat(views, 1, 1), 1, masked.unsqueeze(-1).expand(-1, -1, targets.shape[-1]))
        loss_scd = semantic_cluster_distillation(
            recon.reshape(-1, recon.shape[-1]), targets.reshape(-1, targets.shape[-1]), self.prototypes,
            tau=float(scd.get("tau", 0.1)), epsilon=float(scd.get("epsilon", 0.05)),
            iterations=int(scd.get("iterations", 10)))
        return {"loss_img": loss_img, "loss_scd": loss_scd}

    def _videomae_losses(self, video, generator):
        tokens = self.net.tokenize(video)
        keep, masked = tube_token_mask(video.shape[0], self.net.grid(video), self.hparams.mask_ratio, video.device,
                                       generator)
        x = self.net.encode(tokens, keep)
        self._batch_collapse = {"embedding_std": _embedding_std(x[:, 1:].mean(1))}
        pred = self.decoder(x[:, 1:], keep, masked, self.net.grid(video))
        target = pixel_targets(video, self.net.tubelet, self.net.patch)
        target = torch.gather(target, 1, masked.unsqueeze(-1).expand(-1, -1, target.shape[-1]))
        loss = F.mse_loss(pred, target)
        return {"loss_pix": loss, "loss": loss}

    # ---------------------------------------------------------------- lightning

    def training_step(self, batch, batch_idx):
        video = batch["video"]
        out = self.losses(video)
        for name, value in out.items():
            self.log(f"train_{name}", value, prog_bar=name == "loss", batch_size=video.shape[0])
        self._collapse_batches.append(dict(self._batch_collapse))
        return out["loss"]

    def on_train_epoch_start(self):
        self._collapse_batches = []

    def on_train_epoch_end(self):
        """Average the epoch's collapse monitors into ``self.collapse``, log them, warn once."""
        if not self._collapse_batches:
            return
        keys = sorted({k for b in self._collapse_batches for k in b})
        self.collapse = {k: float(sum(b[k] for b in self._collapse_batches if k in b)
                                  / sum(1 for b in self._collapse_batches if k in b)) for k in keys}
        for k, v in self.collapse.items():
            self.log(f"collapse_{k}", v, on_epoch=True)
        crossed = collapse_warnings(self.collapse)
        if crossed and not self._collapse_warned:
            self._collapse_warned = True
            warnings.warn(f"DISCOVER collapse monitor out of bounds at epoch {self.current_epoch}: "
                          + "; ".join(crossed), RuntimeWarning, stacklevel=1)

    def on_after_backward(self):
        """DINO's stabiliser: no update of the heads' last layers and the prototypes early on."""
        if self.hparams.variant == "videomae":
            return
        epoch = int(self.current_epoch)
        heads = [self.student_head] + ([self.image_student_head] if self.hparams.variant == "discover" else [])
        for h in heads:
            h.freeze_last_layer = int(self.hparams.get("freeze_last_layer", 0) or 0)
            h.cancel_last_layer_gradients(epoch)
        if self.hparams.variant == "discover" and epoch < int(self.hparams.get("freeze_last_layer", 0) or 0):
            self.prototypes.grad = None

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None):
        clip = self.hparams.get("grad_clip") or gradient_clip_val
        if clip:
            self.clip_gradients(optimizer, gradient_clip_val=float(clip), gradient_clip_algorithm="norm")

    def peak_lr(self) -> float:
        """``base_lr x total_batch / 256`` (VideoMAE) when ``base_lr`` is set, else ``lr``."""
        hp = self.hparams
        if hp.get("base_lr") is None:
            return float(hp.lr)
        world, accumulate = 1, 1
        if self._trainer is not None:
            world = int(self.trainer.world_size)
            accumulate = int(self.trainer.accumulate_grad_batches)
        return float(hp.base_lr) * int(hp.batch_size) * world * accumulate / 256.0

    def parameter_groups(self) -> list[dict]:
        """AdamW groups: decay on weights; none on norms, biases, the heads' last layers, prototypes."""
        exempt = set()
        for name in ("student_head", "image_student_head"):
            head = getattr(self, name, None)
            if head is not None:
                exempt.update(id(p) for p in head.last_layer.parameters())
        if getattr(self, "prototypes", None) is not None:
            exempt.add(id(self.prototypes))
        decay, no_decay = get_weight_decay_parameters([self])
        # lightly does not know cls tokens / mask tokens: 1-D parameters get no decay either (DINO, MAE)
        decay_ok = [p for p in decay if p.requires_grad and id(p) not in exempt and p.ndim > 1]
        ids = {id(p) for p in decay_ok}
        rest = [p for p in self.parameters() if p.requires_grad and id(p) not in ids]
        return [{"params": decay_ok, "weight_decay": float(self.hparams.weight_decay)},
                {"params": rest, "weight_decay": 0.0}]

    def on_train_batch_end(self, outputs, batch, batch_idx):
        if self.hparams.variant == "videomae":
            return
        ema = self.hparams.ema or {}
        total = _total_steps(self.trainer)
        momentum = cosine_schedule(min(self.global_step, total), total, float(ema.get("start", 0.996)),
                                   float(ema.get("end", 1.0)))
        ema_update(self.student, self.net, momentum)
        ema_update(self.student_head, self.teacher_head, momentum)
        if self.hparams.variant == "discover":
            ema_update(self.image_student, self.image_teacher, momentum)
            ema_update(self.image_student_head, self.image_teacher_head, momentum)
        self.log("ema_momentum", momentum, batch_size=batch["video"].shape[0])

    def validation_step(self, batch, batch_idx):
        video = batch["video"]
        if video.dim() == 6:
            video = video.flatten(0, 1)
        # fixed masks per batch index: the validation loss is comparable across epochs
        gen = torch.Generator().manual_seed(1000 + batch_idx)
        out = self.losses(video, generator=gen, update_center=False)
        for name, value in out.items():
            self.log(f"val_{name}", value, prog_bar=name == "loss", batch_size=video.shape[0], sync_dist=True)

    def configure_optimizers(self):
        hp = self.hparams
        opt = torch.optim.AdamW(self.parameter_groups(), lr=self.peak_lr())
        total = _total_steps(self.trainer)
        warm = int(round(hp.warmup_fraction * total))

        def factor(step: int) -> float:
            if step < warm:
                return (step + 1) / warm
            return cosine_schedule(step - warm, max(1, total - warm), 1.0, 0.0) if total > warm else 1.0

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
