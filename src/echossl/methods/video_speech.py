"""Self-supervised contrastive video-speech learning (video-speech-contrastive.md) and its downstream tasks.

Pieces, each small and tested:

* :func:`log_spectrogram` — eta(s): log STFT magnitude, 256 frequency bands,
  10 ms windows, 5 ms hops, resized to S x S (Sec. 3.1).
* :func:`energy_vad` — the energy-based voice activity detector that splits
  fragments into high and low affinity (Sec. 2.3, after Sakhnov et al. [14]).
* :func:`order_label` / :data:`ORDER_CLASSES` — 4-frame order prediction where a
  permutation and its reverse are the same class: 24 / 2 = 12 classes (Sec. 2.3).
* :func:`correlation_loss` — L_cls, eq. (1); :func:`cross_modal_contrast` — L_cont,
  eq. (2) in a numerically safe form (see its docstring); total eq. (3).
* :class:`VideoSpeechPretraining` — the pre-training LightningModule with the
  ablation variants of Table 3; :class:`PlaneModule`, :class:`SaliencyModule` —
  fine-tuning for standard-plane detection (Sec. 3.2) and gaze saliency (Sec. 3.3).
"""

from __future__ import annotations

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F

from echossl.data.signal import ORDER_CLASSES, energy_vad, order_label  # noqa: F401  (public here too)
from echossl.methods.optim import build_optimizer, with_step_lr
from echossl.models.video_speech import PlaneClassifier, SaliencyNet, VideoSpeechNet

VARIANTS = ("full", "contrast", "baseline", "video-only")

# --------------------------------------------------------------------------- #
# eta: speech pre-processing
# --------------------------------------------------------------------------- #


def log_spectrogram(wave: torch.Tensor, sample_rate: int = 24_000, *, window_seconds: float = 0.010,
                    hop_seconds: float = 0.005, bands: int = 256, size: int | None = 256) -> torch.Tensor:
    """eta(s): ``(B, L)`` waveforms -> ``(B, 1, size, size)`` log-magnitude STFT (Sec. 3.1).

    A Hann window of ``window_seconds`` (240 samples at 24 kHz) hops by
    ``hop_seconds`` (120 samples); the FFT length is ``2 * bands`` so that,
    without the Nyquist bin, exactly ``bands`` frequency bands remain. The
    ``(bands, frames)`` image (0.6 s -> 256 x 121) is resized bilinearly to
    ``size x size``; ``size=None`` keeps it.
    """
    win = int(round(window_seconds * sample_rate))
    hop = int(round(hop_seconds * sample_rate))
    n_fft = max(2 * bands, win)
    spec = torch.stft(wave.float(), n_fft=n_fft, hop_length=hop, win_length=win,
                      window=torch.hann_window(win, device=wave.device), center=True, return_complex=True)
    logmag = torch.log(spec.abs()[:, :bands] + 1e-5).unsqueeze(1)  # (B, 1, bands, frames)
    if size:
        logmag = F.interpolate(logmag, size=(size, size), mode="bilinear", align_corners=False)
    return logmag


# --------------------------------------------------------------------------- #
# Frame order (Sec. 2.3)
# --------------------------------------------------------------------------- #

# energy_vad, order_label and ORDER_CLASSES live in echossl.data.signal (the data layer needs them)


# --------------------------------------------------------------------------- #
# Losses
# --------------------------------------------------------------------------- #

def correlation_loss(logits: torch.Tensor, correlated: torch.Tensor) -> torch.Tensor:
    """L_cls, eq. (1): cross-entropy of the C = 2-way correlation decision f(v_t, s_t).

    Args:
        logits: ``(N, 2)`` from the classifier on ``g_v(v) ⊕ g_s(eta(s))``.
        correlated: ``(N,)`` 1 for a (hard-)positive pair, 0 for a (hard-)negative.
    Returns: scalar mean over the N pairs.
    """
    return F.cross_entropy(logits, correlated.long())


def cross_modal_contrast(y_v: torch.Tensor, y_s: torch.Tensor, y_neg: torch.Tensor,
                         temperature: float = 0.1) -> torch.Tensor:
    """L_cont, eq. (2), in a numerically safe form.

    Args:
        y_v: ``(M, D)`` projected video embeddings h(g_v(v_t)).
        y_s: ``(M, D)`` projections of their positive speech h(g_s(eta(s_t))).
        y_neg: ``(M, D)`` projections of their hard-negative speech s_t'.
        temperature: sim(a, b) = a^T b / temperature on L2-normalised
            embeddings (the paper's "anatomical sphere", Fig. 1); the paper's
            plain a^T b is temperature 1.

    The paper's loss is ``-log[(e^{a} - e^{b}) / sum_{k != v} e^{s_k}]`` with
    ``a = sim(y_v, y_s)``, ``b = sim(y_v, y_s')``: its numerator is zero or
    negative whenever the hard negative is at least as similar as the positive
    (e.g. at initialisation), so the log is undefined. We write the numerator
    as ``e^{a} (1 - e^{-(a-b)})`` and replace the factor ``1 - e^{-(a-b)}`` by
    ``sigmoid(a - b)``: both tend to 1 as the margin a - b grows, both grow
    with a and shrink with b, but the sigmoid is always in (0, 1). Hence::

        L_cont = -a + softplus(b - a) + logsumexp_{k != v} s_k

    i.e. an InfoNCE term plus a logistic margin between the positive and its
    hard negative, computed with ``softplus`` and ``logsumexp`` (no overflow).
    The sum over k runs over all 3M embeddings of the batch (video, positive
    and negative speech) except y_v itself (the indicator 1[k != v]).

    Returns: scalar mean over the M anchors.
    """
    m = y_v.shape[0]
    y_v, y_s, y_neg = (F.normalize(y, dim=-1) for y in (y_v, y_s, y_neg))
    candidates = torch.cat([y_v, y_s, y_neg], 0)                     # (3M, D)
    sims = y_v @ candidates.t() / temperature                          # (M, 3M)
    idx = torch.arange(m, device=y_v.device)
    a = sims[idx, m + idx]
    b = sims[idx, 2 * m + idx]
    sims = sims.masked_fill(F.one_hot(idx, 3 * m).bool(), float("-inf"))  # k != v
    return (-a + F.softplus(b - a) + torch.logsumexp(sims, dim=1)).mean()


def voicing_control(pos_voiced: torch.Tensor, neg_voiced: torch.Tensor) -> torch.Tensor:
    """Speech-only control for the pair task: "is this speech voiced?" alone, without the video.

    The rule calls an excerpt correlated iff it is voiced. Per pair, its accuracy is the mean of
    the positive's decision (right when voiced) and the negative's (right when unvoiced), as
    :func:`echossl.pipelines.video_speech.evaluate_pretext` scores the model.

    Args: ``pos_voiced, neg_voiced``: ``(N,)`` bool VAD decisions of the two excerpts.
    Returns: ``(N,)`` float accuracy per pair, in {0, 0.5, 1}. On pairs where both excerpts
    are voiced it is 0.5 (chance) by construction: voicing carries no label there.
    """
    return (pos_voiced.float() + (1.0 - neg_voiced.float())) / 2


def saliency_kl_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """KL(target || softmax(logits)) over pixels: ``(B, H, W)`` logits and densities summing to 1 -> scalar."""
    logp = torch.log_softmax(logits.flatten(1), dim=1)
    q = target.flatten(1)
    return (q * (torch.log(q.clamp_min(1e-12)) - logp)).sum(1).mean()


# --------------------------------------------------------------------------- #
# Pre-training
# --------------------------------------------------------------------------- #

class _ClipGradients:
    """Gradient clipping by norm from a hyper-parameter (the paper clips; the engine does not)."""

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None):
        clip = self.hparams.get("grad_clip")
        if clip:
            self.clip_gradients(optimizer, gradient_clip_val=clip, gradient_clip_algorithm="norm")


class VideoSpeechPretraining(_ClipGradients, L.LightningModule):
    """Video-speech pre-training, L = alpha L_cls + beta L_cont + gamma L_ord (eq. 3).

    Variants (Table 1 and the Table 3 ablation):

    * ``baseline`` — hard-pair correlation classification L_cls on all pairs;
    * ``contrast`` — + cross-modal contrast L_cont, on all pairs;
    * ``full`` — + affinity-aware self-paced learning: L_cls and L_cont on
      high-affinity pairs only (both the positive and the negative speech are mostly
      voiced, so voicing alone cannot tell them apart), L_ord on
      the video of low-affinity intervals;
    * ``video-only`` — frame-order prediction L_ord on every interval, no speech.

    Batches are :class:`echossl.data.sweep.VideoSpeechIntervals` items stacked to
    ``frames (B, K, 1, S, S)``, ``speech_pos/neg (B, K, L)``, ``high_affinity (B, K)``,
    ``order_frames (B, 4, 1, s, s)``, ``order_label (B,)``, ``interval_high (B,)``.
    """

    def __init__(self, backbone: str = "small_se", width: int = 16, proj_hidden: int = 512, proj_dim: int = 128,
                 variant: str = "full", alpha: float = 1.0, beta: float = 1.0, gamma: float = 1.0,
                 temperature: float = 0.1, sample_rate: int = 24_000, spec_window: float = 0.010,
                 spec_hop: float = 0.005, spec_bands: int = 256, spec_size: int = 64, optimizer: str = "adam",
                 lr: float = 1e-3, momentum: float = 0.9, weight_decay: float = 5e-4, step_size: int | None = None,
                 grad_clip: float | None = 5.0, task: str = "video-speech"):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}")
        self.save_hyperparameters()
        self.net = VideoSpeechNet(backbone, width, proj_hidden, proj_dim)

    def spectrogram(self, wave: torch.Tensor) -> torch.Tensor:
        hp = self.hparams
        return log_spectrogram(wave, hp.sample_rate, window_seconds=hp.spec_window, hop_seconds=hp.spec_hop,
                               bands=hp.spec_bands, size=hp.spec_size)

    def _masks(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Which pairs feed the correlation losses ``(B*K,)`` and which intervals feed L_ord ``(B,)``."""
        high = batch["high_affinity"].flatten().bool()
        interval_high = batch["interval_high"].bool()
        v = self.hparams.variant
        if v == "video-only":
            return torch.zeros_like(high), torch.ones_like(interval_high)
        if v == "full":
            return high, ~interval_high
        return torch.ones_like(high), torch.zeros_like(interval_high)

    def losses(self, batch) -> dict:
        hp = self.hparams
        pair_mask, order_mask = self._masks(batch)
        zero = batch["frames"].new_zeros(())
        out = {"l_cls": zero, "l_cont": zero, "l_ord": zero, "pair_acc": None, "order_acc": None,
               "n_pairs": int(pair_mask.sum()), "n_order": int(order_mask.sum())}
        if out["n_pairs"] >= 2:
            frames = batch["frames"].flatten(0, 1)[pair_mask]
            pos = batch["speech_pos"].flatten(0, 1)[pair_mask]
            neg = batch["speech_neg"].flatten(0, 1)[pair_mask]
            m = frames.shape[0]
            f_v = self.net.video(frames)
            f_s = self.net.encode_audio(self.spectrogram(torch.cat([pos, neg], 0)))
            f_pos, f_neg = f_s[:m], f_s[m:]
            logits = self.net.pair_head(torch.cat([torch.cat([f_v, f_pos], 1), torch.cat([f_v, f_neg], 1)], 0))
            target = torch.cat([torch.ones(m), torch.zeros(m)]).to(logits.device)
            out["l_cls"] = correlation_loss(logits, target)
            out["pair_acc"] = (logits.argmax(1) == target).float().mean()
            if hp.variant in ("contrast", "full"):
                y = self.net.proj(torch.cat([f_v, f_pos, f_neg], 0))
                out["l_cont"] = cross_modal_contrast(y[:m], y[m:2 * m], y[2 * m:], hp.temperature)
        if out["n_order"] >= 2:
            clips = batch["order_frames"][order_mask]                           # (b, 4, 1, s, s)
            maps = self.net.video.features(clips.flatten(0, 1))
            logits = self.net.order_head(maps.reshape(clips.shape[0], 4, *maps.shape[1:]))
            out["l_ord"] = F.cross_entropy(logits, batch["order_label"][order_mask])
            out["order_acc"] = (logits.argmax(1) == batch["order_label"][order_mask]).float().mean()
        out["loss"] = hp.alpha * out["l_cls"] + hp.beta * out["l_cont"] + hp.gamma * out["l_ord"]
        return out

    def _log(self, prefix: str, out: dict, n: int) -> None:
        self.log(f"{prefix}_loss", out["loss"], prog_bar=True, batch_size=n, sync_dist=prefix == "val")
        for key in ("l_cls", "l_cont", "l_ord", "pair_acc", "order_acc"):
            if out[key] is not None:
                self.log(f"{prefix}_{key}", out[key], batch_size=n, sync_dist=prefix == "val")

    def training_step(self, batch, batch_idx):
        out = self.losses(batch)
        self._log("train", out, batch["frames"].shape[0])
        self.log("train_high_fraction", batch["high_affinity"].float().mean(), batch_size=batch["frames"].shape[0])
        return out["loss"]

    def validation_step(self, batch, batch_idx):
        self._log("val", self.losses(batch), batch["frames"].shape[0])

    def configure_optimizers(self):
        hp = self.hparams
        opt = build_optimizer(self.parameters(), hp.optimizer, hp.lr, hp.momentum, hp.weight_decay)
        return with_step_lr(opt, hp.step_size)


# --------------------------------------------------------------------------- #
# Downstream
# --------------------------------------------------------------------------- #

class PlaneModule(_ClipGradients, L.LightningModule):
    """Standard-plane classification (Sec. 3.2): cross-entropy on ``image (B, 1, S, S)``, ``label (B,)``.

    Validation logs ``val_f1`` (macro F1 over the classes present), used for model selection.
    """

    def __init__(self, backbone: str = "small_se", width: int = 16, n_classes: int = 14,
                 class_names: list | None = None, size: int = 64, optimizer: str = "adam", lr: float = 1e-3,
                 momentum: float = 0.9, weight_decay: float = 1e-4, step_size: int | None = None,
                 grad_clip: float | None = None, init: str | None = None, task: str = "plane"):
        super().__init__()
        self.save_hyperparameters()
        self.net = PlaneClassifier(backbone, width, n_classes)
        self._val: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        logits = self(batch["image"])
        loss = F.cross_entropy(logits, batch["label"])
        self.log("train_loss", loss, prog_bar=True, batch_size=len(logits))
        return loss

    def validation_step(self, batch, batch_idx):
        logits = self(batch["image"])
        self.log("val_loss", F.cross_entropy(logits, batch["label"]), batch_size=len(logits), sync_dist=True)
        self._val.append((logits.argmax(1).cpu(), batch["label"].cpu()))

    def on_validation_epoch_end(self):
        from sklearn.metrics import f1_score

        if not self._val:
            return
        pred = torch.cat([p for p, _ in self._val]).numpy()
        true = torch.cat([t for _, t in self._val]).numpy()
        self._val.clear()
        self.log("val_f1", float(f1_score(true, pred, average="macro", zero_division=0)), prog_bar=True)
        self.log("val_accuracy", float(np.mean(pred == true)))

    def configure_optimizers(self):
        hp = self.hparams
        opt = build_optimizer(self.parameters(), hp.optimizer, hp.lr, hp.momentum, hp.weight_decay)
        return with_step_lr(opt, hp.step_size)


class SaliencyModule(_ClipGradients, L.LightningModule):
    """Gaze saliency prediction (Sec. 3.3): KL(gaze density || softmax(prediction)) per frame.

    Batches: ``image (B, 1, S, S)``, ``saliency (B, O, O)`` densities. Validation logs ``val_kl``.
    """

    def __init__(self, backbone: str = "small_se", width: int = 16, size: int = 64, out_size: int = 32,
                 optimizer: str = "adam", lr: float = 1e-3, momentum: float = 0.9, weight_decay: float = 1e-4,
                 step_size: int | None = None, grad_clip: float | None = None, init: str | None = None,
                 task: str = "saliency"):
        super().__init__()
        self.save_hyperparameters()
        self.net = SaliencyNet(backbone, width, out_size)

    def forward(self, x):
        """``(B, 1, S, S) -> (B, O, O)`` predicted gaze density (sums to 1 per frame)."""
        logits = self.net(x)
        return torch.softmax(logits.flatten(1), 1).reshape(logits.shape)

    def training_step(self, batch, batch_idx):
        loss = saliency_kl_loss(self.net(batch["image"]), batch["saliency"])
        self.log("train_loss", loss, prog_bar=True, batch_size=len(batch["image"]))
        return loss

    def validation_step(self, batch, batch_idx):
        loss = saliency_kl_loss(self.net(batch["image"]), batch["saliency"])
        self.log("val_kl", loss, prog_bar=True, batch_size=len(batch["image"]), sync_dist=True)

    def configure_optimizers(self):
        hp = self.hparams
        opt = build_optimizer(self.parameters(), hp.optimizer, hp.lr, hp.momentum, hp.weight_decay)
        return with_step_lr(opt, hp.step_size)
