"""Evaluation protocols for any pretrained video backbone (discover-cluster-distillation.md, Sec. 4).

- :func:`knn_anomaly` — zero-shot anomaly detection: a video is abnormal when
  EF < 45 or EF > 75; a weighted kNN on frozen clip features (TRAIN clips as the
  memory bank), ``k`` chosen by balanced accuracy on VAL; each video is cut
  into clips and is abnormal if any clip is. Balanced accuracy, F1, AUC.
- :func:`linear_probes` — linear classifier (anomaly) and linear regressor (EF)
  trained for 30 epochs on frozen features (scikit-learn SGD, one pass = one epoch).
- :func:`partial_finetune_ef` — EF regression fine-tuning the last ``k`` blocks
  and a linear head (Lightning, through :func:`echossl.engine.fit`).
- :func:`frozen_segmentation` — CAMUS segmentation with a frozen backbone: a
  linear layer on the dense token features, then Conv2D upsampling blocks;
  Dice per label: LV endocardium (1), LV epicardium (1 + 2), left atrium (3).

Every protocol takes a :class:`VideoBackbone`, a thin ``nn.Module`` adapter.
A ViT from this package is wrapped by :func:`vit_backbone`; another paper's
encoder plugs in by subclassing :class:`VideoBackbone` (override ``embed``,
``dense`` and ``tail``) and registering a checkpoint loader with
:func:`register_backbone`. Protocols never change the backbone's weights:
features are computed under ``torch.inference_mode`` and fine-tuning works on
a deep copy (tested bit for bit).

Choices where the paper is silent, written down here:
- weighted kNN weighs neighbours by ``exp(cos / 0.07)`` (Wu et al. 2018, DINO),
  the cited weighted-kNN classifiers; candidate ``k`` come from ``knn_ks``.
- F1, precision and recall are macro averages over the two classes (the
  paper's recall equals its balanced accuracy in Table 7, which only the macro
  average gives). AUC scores a video by its most abnormal clip.
- The linear probes weigh classes by inverse frequency (abnormal videos are a
  minority); the paper trains them on a labelled VAL set, ``fit_split`` picks
  that split (``TRAIN`` in the cpu preset, whose simulated VAL holds ~30 videos).
"""

from __future__ import annotations

import copy
import math
import tempfile
import warnings
from pathlib import Path

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from echossl.errors import EchosslError
from echossl.evaluation.metrics import dice, dice_parts, dice_summary, regression_metrics
from echossl.progress import progress_bar

EF_LOW, EF_HIGH = 45.0, 75.0


def abnormal(ef) -> np.ndarray:
    """Anomaly label of Sec. 4: 1 when EF < 45 or EF > 75, else 0."""
    ef = np.asarray(ef, dtype=np.float64)
    return ((ef < EF_LOW) | (ef > EF_HIGH)).astype(np.int64)


# --------------------------------------------------------------------------- #
# Backbone adapter
# --------------------------------------------------------------------------- #


class VideoBackbone(nn.Module):
    """What the protocols need from a pretrained video encoder.

    Args:
        encoder: the network (all its weights live here).
        length, period: clip sampling the encoder was trained with.
        size: frame size in pixels; mean, std: per-channel normalisation (0-255 scale).
        embed_dim: width of :meth:`embed`; dense_dim: channels of :meth:`dense`.
        dense_stride: frames per time step of :meth:`dense` (the tubelet).
        name: shown in tables.

    Subclass and override :meth:`embed`, :meth:`dense` and :meth:`tail` to adapt
    an encoder that is not a :class:`~echossl.models.vit.VideoViT`.
    """

    def __init__(self, encoder: nn.Module, *, length: int, period: int, size: int, mean, std, embed_dim: int,
                 dense_dim: int, dense_stride: int, name: str = "backbone"):
        super().__init__()
        self.encoder = encoder
        self.length, self.period, self.size = int(length), int(period), int(size)
        self.mean = [float(v) for v in np.broadcast_to(np.ravel(mean), 3)]
        self.std = [float(v) for v in np.broadcast_to(np.ravel(std), 3)]
        self.embed_dim, self.dense_dim, self.dense_stride = int(embed_dim), int(dense_dim), int(dense_stride)
        self.name = name

    def embed(self, video: torch.Tensor) -> torch.Tensor:
        """Clip features ``(B, C, T, H, W) -> (B, embed_dim)``."""
        return self.encoder.embed(video)

    def dense(self, video: torch.Tensor) -> torch.Tensor:
        """Dense features ``(B, C, T, H, W) -> (B, dense_dim, T / dense_stride, h, w)``."""
        return self.encoder.dense(video)

    def tail(self, k: int) -> list[nn.Module]:
        """The modules trained by partial fine-tuning: the last ``k`` blocks and the final norm."""
        blocks = list(self.encoder.blocks)
        if not 1 <= k <= len(blocks):
            raise EchosslError(f"cannot fine-tune the last {k} blocks of a backbone with {len(blocks)}")
        return blocks[-k:] + [self.encoder.norm]


def vit_backbone(vit: nn.Module, *, length: int, period: int, size: int, mean, std, name: str = "vit"
                 ) -> VideoBackbone:
    """Wrap a :class:`~echossl.models.vit.VideoViT` (embedding = CLS ++ mean token)."""
    return VideoBackbone(vit, length=length, period=period, size=size, mean=mean, std=std, embed_dim=2 * vit.dim,
                         dense_dim=vit.dim, dense_stride=vit.tubelet, name=name)


# task -> loader(checkpoint_path) -> VideoBackbone; other papers add theirs here
BACKBONE_LOADERS: dict = {}


def register_backbone(task: str, loader) -> None:
    """Make checkpoints of ``task`` usable by every protocol (``loader(path) -> VideoBackbone``)."""
    BACKBONE_LOADERS[task] = loader


def load_backbone(checkpoint) -> VideoBackbone:
    """The :class:`VideoBackbone` of a checkpoint, dispatched on its task."""
    from echossl.engine import load_checkpoint

    ckpt = load_checkpoint(checkpoint)
    task = ckpt["hyper_parameters"]["task"]
    if task not in BACKBONE_LOADERS:
        # adapters are registered by the pipeline that owns the task (pipelines/discover.py on import)
        raise EchosslError(f"{ckpt['path']} is a {task!r} checkpoint, which has no video backbone adapter")
    return BACKBONE_LOADERS[task](ckpt["path"])


def _device(device) -> torch.device:
    return torch.device(device) if device is not None else torch.device("cpu")


# --------------------------------------------------------------------------- #
# Frozen clip features
# --------------------------------------------------------------------------- #


def clip_dataset(backbone: VideoBackbone, root, split: str, clips, *, pad=None, filenames=None):
    """EchoNetDynamic clips sampled and normalised as the backbone expects."""
    from echossl.data.echonet import EchoNetDynamic

    return EchoNetDynamic(root, split, filenames=filenames, length=backbone.length, period=backbone.period,
                          clips=clips, pad=pad, mean=backbone.mean, std=backbone.std, size=backbone.size)


@torch.inference_mode()
def clip_features(backbone: VideoBackbone, root, split: str, *, clips: int = 3, batch_size: int = 16,
                  device=None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Frozen features of ``clips`` evenly spaced clips of every video in ``split``.

    Returns:
        ``(features (V, K, D) float32, EF (V,), filenames)``.
    """
    device = _device(device)
    ds = clip_dataset(backbone, root, split, clips)
    was_training = backbone.training
    backbone.eval().to(device)
    feats = []
    try:
        for i in progress_bar(range(len(ds)), f"features of {split} ({backbone.name})"):
            video = ds[i]["video"]
            video = video.unsqueeze(0) if video.dim() == 4 else video  # (K, C, T, H, W)
            out = [backbone.embed(video[s:s + batch_size].to(device)).float().cpu()
                   for s in range(0, len(video), batch_size)]
            feats.append(torch.cat(out).numpy())
    finally:
        backbone.train(was_training)
    return np.stack(feats), np.asarray(ds.ef, dtype=np.float64), list(ds.filenames)


# --------------------------------------------------------------------------- #
# Zero-shot kNN anomaly detection
# --------------------------------------------------------------------------- #

KNN_TEMPERATURE = 0.07


def _knn_weights(distances: np.ndarray) -> np.ndarray:
    """``exp(cos / T)`` from cosine distances ``1 - cos`` (shifted by 1/T, which cancels)."""
    return np.exp(-distances / KNN_TEMPERATURE)


def _clip_table(feats: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(V, K, D)`` video features and ``(V,)`` labels -> ``(V*K, D)``, ``(V*K,)``."""
    v, k, d = feats.shape
    return feats.reshape(v * k, d), np.repeat(labels, k)


def binary_metrics(y_true, y_pred, score) -> dict:
    """Accuracy, balanced accuracy, macro precision/recall/F1 and AUC of video-level predictions."""
    from sklearn import metrics as skm

    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    macro = {"average": "macro", "labels": [0, 1], "zero_division": 0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a tiny split may hold one class only
        out = {"accuracy": float(skm.accuracy_score(y_true, y_pred)),
               "balanced_accuracy": float(skm.balanced_accuracy_score(y_true, y_pred)),
               "precision": float(skm.precision_score(y_true, y_pred, **macro)),
               "recall": float(skm.recall_score(y_true, y_pred, **macro)),
               "f1": float(skm.f1_score(y_true, y_pred, **macro))}
    out["auc"] = float(skm.roc_auc_score(y_true, score)) if len(np.unique(y_true)) == 2 else float("nan")
    return out


def _video_decision(clip_prob: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Clip P(abnormal) ``(V*K,)`` -> video prediction (any clip abnormal) and score (max clip)."""
    p = clip_prob.reshape(-1, k)
    return (p > 0.5).any(1).astype(np.int64), p.max(1)


def knn_anomaly(train: tuple, val: tuple, test: tuple, ks=(1, 3, 5, 10, 20, 50), *, items: bool = False) -> dict:
    """Weighted kNN anomaly detection on frozen features.

    Args:
        train, val, test: ``(features (V, K, D), EF (V,))`` per split.
        ks: candidate neighbour counts; the one with the best VAL balanced
            accuracy is used on TEST (ties: the smaller k).

    Returns:
        TEST ``accuracy, balanced_accuracy, precision, recall, f1, auc`` plus
        ``k`` and ``val_balanced_accuracy``; with ``items`` also ``items``: per TEST
        video ``pred`` (0/1), ``label`` (0/1) and ``score`` (max clip P(abnormal)),
        for paired statistics over videos.
    """
    from sklearn.neighbors import KNeighborsClassifier

    x_tr, y_tr = _clip_table(train[0], abnormal(train[1]))
    if len(np.unique(y_tr)) < 2:
        raise EchosslError("the kNN memory bank (TRAIN) holds only one class; anomaly detection needs both")
    k_clips = val[0].shape[1]
    best = None
    for k in sorted({min(int(k), len(x_tr)) for k in ks}):
        knn = KNeighborsClassifier(n_neighbors=k, weights=_knn_weights, metric="cosine").fit(x_tr, y_tr)
        pred, _ = _video_decision(knn.predict_proba(val[0].reshape(-1, val[0].shape[-1]))[:, 1], k_clips)
        bacc = binary_metrics(abnormal(val[1]), pred, pred)["balanced_accuracy"]
        if best is None or bacc > best[1] + 1e-12:
            best = (k, bacc, knn)
    k, val_bacc, knn = best
    prob = knn.predict_proba(test[0].reshape(-1, test[0].shape[-1]))[:, 1]
    pred, score = _video_decision(prob, test[0].shape[1])
    out = {**binary_metrics(abnormal(test[1]), pred, score), "k": int(k), "val_balanced_accuracy": float(val_bacc)}
    if items:
        out["items"] = {"pred": pred.tolist(), "label": abnormal(test[1]).tolist(), "score": score.tolist()}
    return out


# --------------------------------------------------------------------------- #
# Linear probes (30 epochs, frozen features)
# --------------------------------------------------------------------------- #


def linear_probes(fit: tuple, test: tuple, select: tuple | None = None, *, epochs: int = 30, seed: int = 0,
                  alphas=(1e-4, 1e-3, 1e-2, 1e-1, 1.0), bootstrap: int = 1000, items: bool = False) -> dict:
    """Linear anomaly classifier and linear EF regressor on frozen clip features.

    Both are scikit-learn SGD models run for exactly ``epochs`` passes over the
    clips of ``fit`` (features standardised). Their L2 strength is picked from
    ``alphas`` on ``select`` (balanced accuracy, resp. MAE; never on ``test``);
    without ``select`` the first alpha is used. At test time a video is abnormal
    if any clip is, and its EF is the mean of its clips' predictions.

    Args:
        fit, test, select: ``(features (V, K, D), EF (V,))``.

    Returns:
        ``probe_{accuracy, balanced_accuracy, precision, recall, f1, auc}``,
        ``probe_{mae, rmse, r2}`` (with ``_ci95``) and the chosen ``probe_alpha_cls/_reg``;
        with ``items`` also ``items``: per test video ``ef_pred``, ``ef`` and (when the
        classifier was fitted) ``pred`` and ``label``.
    """
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import SGDClassifier, SGDRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x_fit, y_fit = _clip_table(fit[0], abnormal(fit[1]))
    _, ef_fit = _clip_table(fit[0], np.asarray(fit[1], dtype=np.float64))
    candidates = list(alphas) if select is not None else list(alphas)[:1]

    def classifier(alpha):
        return make_pipeline(StandardScaler(), SGDClassifier(loss="log_loss", alpha=alpha, max_iter=epochs, tol=None,
                                                             class_weight="balanced", random_state=seed))

    def regressor(alpha):
        return TransformedTargetRegressor(
            regressor=make_pipeline(StandardScaler(), SGDRegressor(alpha=alpha, max_iter=epochs, tol=None,
                                                                   random_state=seed)),
            transformer=StandardScaler())

    def classify(model, data):
        return _video_decision(model.predict_proba(data[0].reshape(-1, data[0].shape[-1]))[:, 1], data[0].shape[1])

    def regress(model, data):
        return model.predict(data[0].reshape(-1, data[0].shape[-1])).reshape(-1, data[0].shape[1]).mean(1)

    out = {}
    cls_items: dict = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # a fixed epoch budget, as in the paper
        if len(np.unique(y_fit)) == 2:
            best = None
            for alpha in candidates:
                model = classifier(alpha).fit(x_fit, y_fit)
                if select is not None:
                    pred, _ = classify(model, select)
                    score = binary_metrics(abnormal(select[1]), pred, pred)["balanced_accuracy"]
                else:
                    score = 0.0
                if best is None or score > best[0] + 1e-12:
                    best = (score, alpha, model)
            pred, score = classify(best[2], test)
            out.update({f"probe_{n}": v for n, v in binary_metrics(abnormal(test[1]), pred, score).items()})
            cls_items = {"pred": pred.tolist(), "label": abnormal(test[1]).tolist()}
            out["probe_alpha_cls"] = float(best[1])
        best = None
        for alpha in candidates:
            model = regressor(alpha).fit(x_fit, ef_fit)
            err = float(np.mean(np.abs(regress(model, select) - select[1]))) if select is not None else 0.0
            if best is None or err < best[0] - 1e-12:
                best = (err, alpha, model)
    ef_pred = regress(best[2], test)
    reg_metrics = regression_metrics(np.asarray(test[1], dtype=np.float64), ef_pred, bootstrap=bootstrap, seed=seed)
    out.update({f"probe_{n}": v for n, v in reg_metrics.items()})
    out["probe_alpha_reg"] = float(best[1])
    if items:
        out["items"] = {"ef_pred": ef_pred.tolist(), "ef": np.asarray(test[1], dtype=np.float64).tolist(), **cls_items}
    return out


# --------------------------------------------------------------------------- #
# Partial fine-tuning for EF (Lightning)
# --------------------------------------------------------------------------- #


class PartialFineTuneEF(L.LightningModule):
    """EF regression training the last ``blocks`` blocks of a copy of the backbone and a linear head.

    Batches are EchoNetDynamic dicts: ``video (B, C, T, H, W)`` or ``(B, K, C, T, H, W)`` and ``EF``.
    The copy means the caller's backbone is never modified. ``full=True`` trains every
    weight of the copy (patch embedding and position codes too): :func:`supervised_ef_backbone`.
    """

    def __init__(self, backbone: VideoBackbone, blocks: int = 3, lr: float = 1e-4, weight_decay: float = 0.05,
                 mean_ef: float = 55.0, head_lr: float = 1e-3, full: bool = False):
        super().__init__()
        self.backbone = copy.deepcopy(backbone)
        self.backbone.requires_grad_(bool(full))  # full: every weight (the supervised oracle)
        for module in self.backbone.tail(blocks):
            module.requires_grad_(True)
        self.head = nn.Linear(self.backbone.embed_dim, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.constant_(self.head.bias, float(mean_ef))
        self.lr, self.head_lr, self.weight_decay = lr, head_lr, weight_decay

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        k = 1
        if video.dim() == 6:
            k = video.shape[1]
            video = video.flatten(0, 1)
        return self.head(self.backbone.embed(video)).reshape(-1, k).mean(1)

    def training_step(self, batch, batch_idx):
        loss = F.mse_loss(self(batch["video"]), batch["EF"].float())
        self.log("train_loss", loss, prog_bar=True, batch_size=batch["EF"].shape[0])
        return loss

    def validation_step(self, batch, batch_idx):
        pred = self(batch["video"])
        self.log("val_mae", (pred - batch["EF"]).abs().mean(), prog_bar=True, batch_size=pred.shape[0])

    def configure_optimizers(self):
        tail = [p for p in self.backbone.parameters() if p.requires_grad]
        # the new head starts from zero and needs a larger step than the pretrained blocks
        return torch.optim.AdamW([{"params": tail, "lr": self.lr}, {"params": self.head.parameters(), "lr": self.head_lr}],
                                 weight_decay=self.weight_decay)


def _trainer_options(epochs: int, seed: int, accelerator: str = "cpu"):
    from echossl.engine import TrainerOptions

    return TrainerOptions(max_epochs=int(epochs), seed=int(seed), accelerator=accelerator, progress=False)


def partial_finetune_ef(backbone: VideoBackbone, root, *, blocks: int = 3, epochs: int = 5, batch_size: int = 8,
                        lr: float = 1e-4, head_lr: float = 1e-3, weight_decay: float = 0.05, val_clips: int = 1,
                        test_clips: int = 3,
                        test_split: str = "TEST", seed: int = 0, device=None, bootstrap: int = 1000,
                        run_dir=None) -> dict:
    """Fine-tune the last ``blocks`` blocks for EF on TRAIN, select on VAL MAE, report ``test_split``.

    Returns:
        ``finetune_{mae, rmse, r2}`` (with ``_ci95``) and ``finetune_blocks``.
    """
    test = clip_dataset(backbone, root, test_split, test_clips)
    module = _fit_ef(backbone, root, blocks=blocks, epochs=epochs, batch_size=batch_size, lr=lr, head_lr=head_lr,
                     weight_decay=weight_decay, val_clips=val_clips, seed=seed, device=device, run_dir=run_dir)
    module.eval().to(_device(device))
    preds = []
    with torch.inference_mode():
        for i in progress_bar(range(len(test)), "EF of fine-tuned backbone"):
            preds.append(float(module(test[i]["video"].unsqueeze(0).to(_device(device)))))
    metrics = regression_metrics(np.asarray(test.ef, np.float64), np.asarray(preds), bootstrap=bootstrap, seed=seed)
    return {**{f"finetune_{k}": v for k, v in metrics.items()}, "finetune_blocks": int(blocks)}


def _fit_ef(backbone: VideoBackbone, root, *, blocks: int, epochs: int, batch_size: int, lr: float, head_lr: float,
            weight_decay: float, val_clips: int, seed: int, device, run_dir=None, full: bool = False
            ) -> PartialFineTuneEF:
    """A :class:`PartialFineTuneEF` trained for EF on every TRAIN video, the best epoch by VAL MAE."""
    from echossl.engine import fit

    train = clip_dataset(backbone, root, "TRAIN", 1, pad=None)
    val = clip_dataset(backbone, root, "VAL", val_clips)
    torch.manual_seed(seed)
    module = PartialFineTuneEF(backbone, blocks, lr, weight_decay, float(np.mean(train.ef)), head_lr, full=full)
    accel = "gpu" if _device(device).type == "cuda" else "cpu"
    with tempfile.TemporaryDirectory(prefix="echossl-finetune-") as tmp:
        run = Path(run_dir) if run_dir is not None else Path(tmp)
        fit(module, DataLoader(train, batch_size=min(batch_size, len(train)), shuffle=True,
                               drop_last=len(train) > batch_size),
            DataLoader(val, batch_size=batch_size), run, _trainer_options(epochs, seed, accel),
            monitor="val_mae", mode="min")
        best = run / "checkpoints" / "best.ckpt"
        if best.exists():
            module.load_state_dict(torch.load(best, map_location="cpu", weights_only=True)["state_dict"])
    return module


def supervised_ef_backbone(backbone: VideoBackbone, root, *, epochs: int = 8, batch_size: int = 8,
                           lr: float = 1e-4, head_lr: float = 1e-3, weight_decay: float = 0.05, val_clips: int = 1,
                           seed: int = 0, device=None) -> VideoBackbone:
    """The positive control of the EchoNet protocols: a copy of ``backbone`` with *every*
    weight trained to regress EF on all TRAIN labels (the anomaly label is a function of EF),
    the epoch with the best VAL MAE kept. The kNN and probe protocols then run on it
    frozen like any pre-trained row; the caller's backbone is not modified."""
    module = _fit_ef(backbone, root, blocks=len(backbone.encoder.blocks), epochs=epochs, batch_size=batch_size, lr=lr, head_lr=head_lr,
                     weight_decay=weight_decay, val_clips=val_clips, seed=seed, device=device, full=True)
    trained = module.backbone.cpu().eval()
    trained.requires_grad_(False)
    trained.name = f"{backbone.name} + EF supervision"
    return trained


# --------------------------------------------------------------------------- #
# Frozen-backbone segmentation on CAMUS
# --------------------------------------------------------------------------- #

CAMUS_LABELS = {"lv_endo": (1,), "lv_epi": (1, 2), "la": (3,)}


class SegmentationHead(nn.Module):
    """A linear layer on token features, then Conv2D upsampling blocks (Sec. 4, "Evaluation").

    ``(B, D, h, w) -> (B, classes, h * 2**ups, w * 2**ups)``: a 1x1 convolution
    (the per-token linear layer), then ``ups`` blocks of x2 bilinear upsampling,
    3x3 convolution, batch norm and ReLU, and a 1x1 classifier.
    """

    def __init__(self, in_dim: int, classes: int = 4, width: int = 64, ups: int = 4):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_dim, width, 1)]
        for _ in range(ups):
            layers += [nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                       nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
        layers.append(nn.Conv2d(width, classes, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class FrozenSegmentation(L.LightningModule):
    """Trains :class:`SegmentationHead` on cached frozen features with MONAI's Dice + CE loss.

    Batches are ``(features (B, D, h, w), labels (B, H, W) long)``.
    """

    def __init__(self, in_dim: int, classes: int = 4, width: int = 64, ups: int = 4, lr: float = 1e-3,
                 size: int = 112):
        super().__init__()
        from monai.losses import DiceCELoss

        self.head = SegmentationHead(in_dim, classes, width, ups)
        self.loss = DiceCELoss(to_onehot_y=True, softmax=True)
        self.lr, self.size = lr, size

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        logits = self.head(feats)
        if logits.shape[-1] != self.size:
            logits = F.interpolate(logits, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return logits

    def training_step(self, batch, batch_idx):
        feats, labels = batch
        loss = self.loss(self(feats), labels.unsqueeze(1))
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=feats.shape[0])
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.head.parameters(), lr=self.lr)


def _camus_windows(backbone: VideoBackbone, item: dict) -> tuple[torch.Tensor, int]:
    """One CAMUS item's normalised mirrored sequence cut into ``(n_win, 3, length, S, S)`` windows
    at period 1 (the last window repeats the final frame); also the mirrored length."""
    mean = torch.tensor(backbone.mean).view(3, 1, 1, 1)
    std = torch.tensor(backbone.std).view(3, 1, 1, 1)
    length = backbone.length
    video = (item["video"] - mean) / std  # (3, T2, S, S)
    t2 = video.shape[1]
    n_win = math.ceil(t2 / length)
    idx = torch.arange(n_win * length).clamp(max=t2 - 1)
    windows = video[:, idx].reshape(3, n_win, length, *video.shape[-2:]).permute(1, 0, 2, 3, 4)
    return windows, t2


@torch.inference_mode()
def camus_frame_features(backbone: VideoBackbone, root, split: str, *, frames: str = "all", device=None,
                         batch_size: int = 4, patients: bool = False):
    """Frozen dense features of labelled CAMUS frames.

    Each (mirrored ED-ES-ED) half sequence is cut into consecutive windows of the
    backbone's clip length at period 1 (the last window repeats its final
    frame); a frame's feature map is the time step of its window that contains it.

    Args:
        frames: ``"all"`` every frame of the original half sequence, ``"ed_es"`` only ED and ES.

    Returns:
        ``(features (F, D, h, w) float32, labels (F, H, W) int64)``; with ``patients``
        also the patient name of each frame (a list of F strings), the resampling unit.
    """
    from echossl.data.camus import Camus

    device = _device(device)
    ds = Camus(root, size=backbone.size, mirror=True, split=split)
    length = backbone.length
    backbone.eval().to(device)
    feats, labels, names = [], [], []
    for i in progress_bar(range(len(ds)), f"CAMUS {split} features ({backbone.name})"):
        item = ds[i]
        if item["labels"] is None:
            continue
        windows, t2 = _camus_windows(backbone, item)
        half = (t2 + 1) // 2  # the original half sequence: frames 0 .. T-1 of the mirror
        wanted = np.arange(half) if frames == "all" else np.array(sorted({item["ed"], item["es"]}))
        dense = torch.cat([backbone.dense(windows[s:s + batch_size].to(device)).float().cpu()
                           for s in range(0, len(windows), batch_size)])  # (n_win, D, T', h, w)
        win, step = wanted // length, (wanted % length) // backbone.dense_stride
        feats.append(dense[torch.as_tensor(win), :, torch.as_tensor(step)])
        labels.append(torch.as_tensor(item["labels"][wanted].astype(np.int64)))
        names += [str(item["patient"])] * len(wanted)
    if not feats:
        raise EchosslError(f"{root} has no labelled {split} half sequences (patientNNNN_4CH_half_sequence_gt.nii.gz)")
    if patients:
        return torch.cat(feats), torch.cat(labels), names
    return torch.cat(feats), torch.cat(labels)


def label_dice(pred: np.ndarray, truth: np.ndarray) -> dict[str, np.ndarray]:
    """Per-image Dice of each CAMUS structure: ``(F, H, W)`` label maps -> {name: (F,)}."""
    return {name: np.atleast_1d(dice(np.isin(pred, ids), np.isin(truth, ids))) for name, ids in CAMUS_LABELS.items()}


def frozen_segmentation(backbone: VideoBackbone, camus_root, *, epochs: int = 30, batch_size: int = 32,
                        lr: float = 1e-3, width: int = 64, seed: int = 0, device=None, test_split: str = "TEST",
                        items: bool = False) -> dict:
    """Train a segmentation head on frozen features of TRAIN patients, Dice on ED/ES of ``test_split``.

    Returns:
        ``dice`` (mean of the three structures' pooled Dice), ``dice_frame_mean`` (mean of
        their per-image means), ``dice_lv_endo``, ``dice_lv_epi``,
        ``dice_la`` with ``_ci95`` intervals over test images, and ``seg_n``; with ``items``
        also ``items``: per test image ``dice`` (mean of the three structures) and
        ``patient`` (the resampling unit of a paired bootstrap).
    """
    from echossl.engine import fit

    x_tr, y_tr = camus_frame_features(backbone, camus_root, "TRAIN", device=device)
    x_te, y_te, te_patients = camus_frame_features(backbone, camus_root, test_split, frames="ed_es", device=device,
                                                   patients=True)
    ups = max(0, int(round(math.log2(backbone.size / x_tr.shape[-1]))))
    torch.manual_seed(seed)
    module = FrozenSegmentation(x_tr.shape[1], 4, width, ups, lr, backbone.size)
    loader = DataLoader(TensorDataset(x_tr, y_tr), batch_size=batch_size, shuffle=True)
    accel = "gpu" if _device(device).type == "cuda" else "cpu"
    with tempfile.TemporaryDirectory(prefix="echossl-seg-") as tmp:
        fit(module, loader, None, Path(tmp), _trainer_options(epochs, seed, accel), monitor="train_loss", mode="min")
    module.eval().to(_device(device))
    with torch.inference_mode():
        pred = torch.cat([module(x_te[s:s + 64].to(_device(device))).argmax(1).cpu()
                          for s in range(0, len(x_te), 64)]).numpy()
    # each structure's Dice pooled over the test images (2·ΣI / Σ(|A|+|B|), as the EchoNet
    # reference pools frames) beside its per-image mean; `dice` averages the structures
    truth = y_te.numpy()
    out = {}
    for name, ids in CAMUS_LABELS.items():
        out.update(dice_summary(*dice_parts(np.isin(pred, ids), np.isin(truth, ids)), prefix=f"dice_{name}"))
    out = {"dice": float(np.mean([out[f"dice_{n}"] for n in CAMUS_LABELS])),
           "dice_frame_mean": float(np.mean([out[f"dice_{n}_frame_mean"] for n in CAMUS_LABELS])), **out}
    out["seg_n"] = int(len(x_te))
    out["seg_patients"] = int(len(set(te_patients)))
    if items:
        per = label_dice(pred, truth)
        out["items"] = {"dice": np.mean([per[n] for n in CAMUS_LABELS], axis=0).tolist(), "patient": te_patients}
    return out


class _SupervisedSegmentation(L.LightningModule):
    """A backbone copy and a :class:`SegmentationHead`, all trained on CAMUS label windows."""

    def __init__(self, backbone: VideoBackbone, width: int, ups: int, lr: float):
        super().__init__()
        from monai.losses import DiceCELoss

        self.backbone = copy.deepcopy(backbone).train()
        self.backbone.requires_grad_(True)
        self.head = SegmentationHead(backbone.dense_dim, 4, width, ups)
        self.loss = DiceCELoss(to_onehot_y=True, softmax=True)
        self.lr = lr

    def training_step(self, batch, batch_idx):
        windows, labels = batch  # (B, 3, L, S, S), (B, L, S, S)
        dense = self.backbone.dense(windows)  # (B, D, T', h, w)
        b, d, t, h, w = dense.shape
        logits = self.head(dense.permute(0, 2, 1, 3, 4).reshape(b * t, d, h, w))
        size = labels.shape[-1]
        if logits.shape[-1] != size:
            logits = F.interpolate(logits, size=(size, size), mode="bilinear", align_corners=False)
        stride = labels.shape[1] // t  # each time step's map serves the frames of its tubelet
        logits = logits.reshape(b, t, 4, size, size).repeat_interleave(stride, dim=1).flatten(0, 1)
        loss = self.loss(logits, labels.flatten(0, 1).unsqueeze(1))
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=b)
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.lr)


def supervised_seg_backbone(backbone: VideoBackbone, camus_root, *, epochs: int = 10, batch_size: int = 4,
                            lr: float = 1e-4, width: int = 32, seed: int = 0, device=None) -> VideoBackbone:
    """The positive control of the frozen CAMUS protocol: a copy of ``backbone`` with every
    weight trained, with a :class:`SegmentationHead`, on the labels of the TRAIN patients.

    Inputs are the windows of :func:`camus_frame_features` (period 1, mirrored sequence), so
    the frozen protocol later sees the features the oracle was trained on; each time step's
    map is scored on the frames of its tubelet (MONAI Dice + CE). The head is discarded: the
    frozen protocol trains its own on the returned backbone."""
    from echossl.data.camus import Camus
    from echossl.engine import fit

    ds = Camus(camus_root, size=backbone.size, mirror=True, split="TRAIN")
    xs, ys = [], []
    for i in range(len(ds)):
        item = ds[i]
        if item["labels"] is None:
            continue
        windows, t2 = _camus_windows(backbone, item)
        idx = torch.arange(len(windows) * backbone.length).clamp(max=t2 - 1)
        xs.append(windows)
        ys.append(torch.as_tensor(item["labels"][idx.numpy()].astype(np.int64)).reshape(len(windows), backbone.length,
                                                                                        *item["labels"].shape[-2:]))
    if not xs:
        raise EchosslError(f"{camus_root} has no labelled TRAIN half sequences to train the segmentation oracle on")
    x, y = torch.cat(xs), torch.cat(ys)
    with torch.inference_mode():
        grid = backbone.dense(x[:1]).shape[-1]
    torch.manual_seed(seed)
    module = _SupervisedSegmentation(backbone, width, max(0, int(round(math.log2(backbone.size / grid)))), lr)
    accel = "gpu" if _device(device).type == "cuda" else "cpu"
    with tempfile.TemporaryDirectory(prefix="echossl-segoracle-") as tmp:
        fit(module, DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=True), None, Path(tmp),
            _trainer_options(epochs, seed, accel), monitor="train_loss", mode="min")
    trained = module.backbone.cpu().eval()
    trained.requires_grad_(False)
    trained.name = f"{backbone.name} + CAMUS supervision"
    return trained
