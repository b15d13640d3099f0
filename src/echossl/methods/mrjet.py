"""Jigsaw + colour-transform self-supervision and MR-jet recognition/segmentation
(mrjet-jigsaw-color-ssl.md, supplementary eqs. 1-11).

Pre-training (``task="jigsaw"``):

- a frame is randomly cropped, then transformed twice, ``z_k = T(x)``, with
  random colour distortion and Gaussian blur (eq. 1, :class:`JigsawViews`);
- each view is cut into 3x3 tiles with a fixed gap between neighbours
  (:func:`extract_tiles`; paper: about 6 px);
- a shared backbone ``phi`` embeds every tile (eq. 2); the 9 features, put in
  the order of a permutation drawn from a pool of ``H`` maximally distant
  permutations (:func:`hamming_permutation_pool`, Noroozi & Favaro), are
  concatenated and one FC ``g`` predicts the permutation index (eq. 3);
- ``L_sr`` (eq. 4) is the cross-entropy summed over both views and
  ``L_c`` (eq. 5) the colour-transform tolerance: :func:`color_tolerance_loss`;
  ``L = L_sr + L_c`` (eq. 6), with ``L_c`` optional (jigsaw only).

Readings chosen where the paper is ambiguous:

- Tiles are embedded in their original order and the *features* are permuted
  before ``g``. ``phi`` sees each tile on its own, so this equals permuting the
  tiles and lets ``L_c`` pair tile ``j`` of view 1 with tile ``j`` of view 2
  (the same image content) whatever permutations the two views drew.
- ``l = -g(f')`` in eq. 3 is read as logits ``g(f')`` (the minus sign would only
  flip the classes' order); eq. 4 is then the usual cross-entropy.
- Eq. 5: for anchor ``f_{ikj}`` the positive is ``f_{i(3-k)j}`` and the negatives
  are the same tile position ``j`` of the *other* frames ``p != i`` under both
  transforms; the positive is not in the denominator. That is decoupled
  contrastive learning (lightly's ``DCLLoss``) per tile position; the ``-log``
  is taken per anchor and averaged over anchors (the printed ``-log sum`` would
  not be a contrastive loss). ``c`` is the exponentiated cosine over ``tau``.

Downstream (``task="mrjet"``): ``f_i = phi(centre crop of x_i)`` (eq. 7);
``D_r`` on the per-frame maps gives ``E'`` and ``L_r = sum_i (e'_i - e_i)^2``
(eq. 8, summed over frames, averaged over clips, padded frames excluded); for
each max frame ``k`` (``e_k = 1``) ``f'_k = LSTM(f_1..f_k)`` (eq. 9) is decoded
by ``D_s`` with skips from frame ``k``'s encoder maps, and ``L_s`` is the Dice
loss on those frames only (eq. 10, averaged over max frames); ``L = L_r + L_s`` (eq. 11).
"""

from __future__ import annotations

import itertools
from functools import lru_cache
from pathlib import Path

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F

from echossl.methods.optim import build_optimizer
from echossl.models.mrjet import JigsawNet, MRJetNet

# --------------------------------------------------------------------------- #
# Permutation pool (Noroozi & Favaro's maximal-Hamming selection)
# --------------------------------------------------------------------------- #


@lru_cache(maxsize=2)
def all_permutations(n: int = 9) -> np.ndarray:
    """Every permutation of ``range(n)`` in lexicographic order: ``(n!, n)`` uint8 (362880 x 9 for n=9)."""
    return np.array(list(itertools.permutations(range(n))), dtype=np.uint8)


def hamming_permutation_pool(size: int = 100, seed: int = 0, criterion: str = "max_min", n: int = 9) -> np.ndarray:
    """Select ``size`` permutations of ``n`` tiles with the largest Hamming distances.

    Greedy (Noroozi & Favaro 2016): start from a seeded random permutation; at
    each step add the candidate whose distance to the chosen set is largest —
    its *minimum* distance to the chosen ones (``max_min``, which maximises the
    pool's minimum pairwise distance) or its *average* distance (``max_avg``, as
    in their original code). Ties go to the lowest lexicographic index. The
    distances of all ``n!`` candidates to a newly chosen permutation are one
    vectorised numpy comparison; the running min/sum is updated in place.

    Returns:
        ``(size, n)`` int64 permutations; row 0 is the seeded start.
    """
    perms = all_permutations(n)
    if not 1 <= size <= len(perms):
        raise ValueError(f"the permutation pool size must be in [1, {len(perms)}], got {size}")
    if criterion not in ("max_min", "max_avg"):
        raise ValueError(f"criterion must be 'max_min' or 'max_avg', got {criterion!r}")
    rng = np.random.default_rng(seed)
    chosen = [int(rng.integers(len(perms)))]
    score = (perms != perms[chosen[0]]).sum(axis=1).astype(np.int32)
    taken = np.zeros(len(perms), dtype=bool)
    taken[chosen[0]] = True
    for _ in range(size - 1):
        masked = np.where(taken, -1, score)
        nxt = int(np.argmax(masked))
        chosen.append(nxt)
        taken[nxt] = True
        d = (perms != perms[nxt]).sum(axis=1).astype(np.int32)
        if criterion == "max_min":
            np.minimum(score, d, out=score)
        else:
            score += d
    return perms[chosen].astype(np.int64)


def min_pairwise_hamming(pool: np.ndarray) -> int:
    """Smallest Hamming distance between two different rows of ``(H, n)`` permutations."""
    d = (pool[:, None, :] != pool[None, :, :]).sum(-1)
    np.fill_diagonal(d, pool.shape[1] + 1)
    return int(d.min())


def load_permutation_pool(size: int = 100, seed: int = 0, criterion: str = "max_min",
                          cache_dir: str | Path | None = None) -> np.ndarray:
    """:func:`hamming_permutation_pool`, computed once and cached as ``.npy``.

    The cache lives next to the frame cache (``$ECHOSSL_CACHE`` or
    ``~/.cache/echossl/frames``) under ``jigsaw-permutations/``; the pool is also
    stored in every jigsaw checkpoint, so a run never depends on the cache.
    """
    if cache_dir is None:
        from echossl.data.cache import default_cache_root

        cache_dir = default_cache_root() / "jigsaw-permutations"
    path = Path(cache_dir) / f"perm9_H{size}_seed{seed}_{criterion}.npy"
    if path.is_file():
        try:
            pool = np.load(path)
            if pool.shape == (size, 9):
                return pool.astype(np.int64)
        except (OSError, ValueError):
            pass  # a damaged cache entry is recomputed
    pool = hamming_permutation_pool(size, seed, criterion)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.stem + ".tmp.npy")
        np.save(tmp, pool)
        tmp.replace(path)
    except OSError:
        pass  # a read-only cache only costs recomputation
    return pool


# --------------------------------------------------------------------------- #
# Views and tiles
# --------------------------------------------------------------------------- #


def tile_size(crop: int, grid: int = 3, gap: int = 6) -> int:
    """Side of one tile when a ``crop``-px square is cut into ``grid x grid`` tiles ``gap`` px apart."""
    t = (crop - (grid - 1) * gap) // grid
    if t < 4:
        raise ValueError(f"a {crop}-px crop is too small for {grid}x{grid} tiles with a {gap}-px gap")
    return t


def extract_tiles(img: torch.Tensor, grid: int = 3, gap: int = 6) -> torch.Tensor:
    """Cut ``(..., C, S, S)`` images into ``(..., grid*grid, C, t, t)`` tiles in row-major order.

    Tile ``(r, c)`` starts at ``(r * (t + gap), c * (t + gap))`` with
    ``t = (S - (grid - 1) * gap) // grid``: neighbours are exactly ``gap`` px apart,
    so the network cannot solve the puzzle by matching edges. Extra pixels at the
    bottom/right (when ``S`` does not divide evenly) are dropped.
    """
    s = img.shape[-1]
    t = tile_size(s, grid, gap)
    step = t + gap
    # unfold with size t and step t + gap yields exactly the grid positions
    tiles = img.unfold(-2, t, step)[..., :grid, :, :].unfold(-2, t, step)[..., :grid, :, :]
    # (..., C, grid, grid, t, t) -> (..., grid*grid, C, t, t)
    tiles = tiles.movedim(-5, -3)
    return tiles.reshape(*img.shape[:-3], grid * grid, img.shape[-3], t, t)


def jittered_tiles(img: torch.Tensor, grid: int = 3, gap: int = 6, generator: torch.Generator | None = None
                   ) -> torch.Tensor:
    """Tiles at a random position inside their cell: ``(..., C, S, S) -> (..., grid*grid, C, t, t)``.

    Anti-shortcut measure of the jigsaw literature (Noroozi & Favaro 2016): the image is cut
    into ``grid x grid`` cells of side ``c = S // grid`` and each tile (side ``t``, as
    :func:`extract_tiles`) starts at an independent random offset in ``[0, c - t]`` of its
    cell, so edge continuity and absolute pixel position no longer reveal a tile's place.
    Every image of the leading dimensions gets the same offsets (both views of a crop).
    """
    s = img.shape[-1]
    t = tile_size(s, grid, gap)
    cell = s // grid
    slack = max(0, cell - t)
    n = grid * grid
    off = torch.randint(0, slack + 1, (2, n), generator=generator)  # per-tile row / column offset
    cells = torch.arange(n)
    r0 = (cells // grid) * cell + off[0]
    c0 = (cells % grid) * cell + off[1]
    ar = torch.arange(t)
    rows = (r0[:, None] + ar[None, :]).to(img.device)   # (n, t)
    cols = (c0[:, None] + ar[None, :]).to(img.device)   # (n, t)
    tiles = img[..., rows[:, :, None], cols[:, None, :]]  # (..., C, n, t, t)
    return tiles.movedim(-3, -4)


def normalise_tiles(tiles: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Per-tile, per-channel standardisation ``(..., C, t, t)``: mean 0, std 1 inside each tile.

    Removes each tile's brightness and contrast (low-level statistics that, with the sector
    fan of an echo, predict the grid position without any anatomy)."""
    mean = tiles.mean(dim=(-2, -1), keepdim=True)
    std = tiles.std(dim=(-2, -1), keepdim=True, unbiased=False)
    return (tiles - mean) / (std + eps)


def colour_from_strength(strength: float) -> tuple[float, float]:
    """SimCLR's colour-distortion strength ``s`` -> (brightness/contrast/saturation jitter, hue).

    ``ColorJitter(0.8 s, 0.8 s, 0.8 s, 0.2 s)`` (Chen et al. 2020, App. A); hue capped at 0.5."""
    s = float(strength)
    return 0.8 * s, min(0.5, 0.2 * s)


class JigsawViews:
    """Eq. 1: a random crop of a frame, then two colour/blur transforms ``z_1, z_2``, each tiled.

    ``frame (3, H, W) uint8 -> (2, 9, 3, t, t)`` float, normalised with ``mean``/``std``.
    Colour distortion is SimCLR's (colour jitter with probability 0.8, grey-scale ``grayscale``);
    Gaussian blur with probability ``blur``. ``color_strength`` (SimCLR's ``s``), when given,
    sets the jitter to 0.8 s and the hue range to 0.2 s, overriding ``jitter`` and ``hue``.

    Anti-shortcut measures (issue 15): ``tile_jitter`` places each tile at a random offset
    inside its cell (:func:`jittered_tiles`; otherwise the fixed grid of
    :func:`extract_tiles`), and ``tile_norm`` standardises every tile on its own
    (:func:`normalise_tiles`) after the global ``mean``/``std``.
    """

    def __init__(self, crop_size: int = 72, scale=(0.3, 0.8), grid: int = 3, gap: int = 6, jitter: float = 0.4,
                 hue: float = 0.1, grayscale: float = 0.2, blur: float = 0.5, mean=(0.5, 0.5, 0.5),
                 std=(0.25, 0.25, 0.25), color_strength: float | None = None, tile_jitter: bool = True,
                 tile_norm: bool = True):
        from torchvision.transforms import v2

        tile_size(crop_size, grid, gap)
        if color_strength is not None:
            jitter, hue = colour_from_strength(color_strength)
        self.jitter, self.hue, self.grayscale = float(jitter), float(hue), float(grayscale)
        self.tile_jitter, self.tile_norm = bool(tile_jitter), bool(tile_norm)
        self.grid, self.gap = grid, gap
        self.crop = v2.RandomResizedCrop(crop_size, scale=tuple(scale), ratio=(0.8, 1.25), antialias=True)
        kernel = max(3, int(0.1 * crop_size) // 2 * 2 + 1)
        self.colour = v2.Compose([
            v2.RandomApply([v2.ColorJitter(jitter, jitter, jitter, hue)], p=0.8),
            v2.RandomGrayscale(p=grayscale),
            v2.RandomApply([v2.GaussianBlur(kernel, sigma=(0.1, 2.0))], p=blur),
        ])
        self.mean = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)

    def __call__(self, frame: torch.Tensor) -> torch.Tensor:
        x = self.crop(frame)
        views = torch.stack([self.colour(x), self.colour(x)]).float().div_(255.0)
        views = (views - self.mean) / self.std
        tiles = (jittered_tiles(views, self.grid, self.gap) if self.tile_jitter
                 else extract_tiles(views, self.grid, self.gap))
        return normalise_tiles(tiles) if self.tile_norm else tiles


# --------------------------------------------------------------------------- #
# Losses
# --------------------------------------------------------------------------- #


def shuffle_features(features: torch.Tensor, pool: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Put tile features in the order of permutations ``pool[index]``.

    Args:
        features: ``(N, K, 9, D)`` features of tiles in row-major order (K views).
        pool: ``(H, 9)`` permutations. index: ``(N, K)`` drawn permutation indices.

    Returns:
        ``(N, K, 9, D)`` with slot ``s`` holding tile ``pool[index][s]``.
    """
    order = pool[index]  # (N, K, 9)
    return torch.gather(features, 2, order.unsqueeze(-1).expand(*order.shape, features.shape[-1]))


def structure_recovery_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``L_sr`` (eq. 4): cross-entropy of the permutation index, summed over the views, mean over frames.

    Args:
        logits: ``(N, K, H)`` (K = 2 transforms). target: ``(N, K)`` permutation indices.
    """
    ce = F.cross_entropy(logits.flatten(0, 1), target.flatten(), reduction="none").view(target.shape)
    return ce.sum(dim=1).mean()


def color_tolerance_loss(features: torch.Tensor, tau: float = 0.1) -> torch.Tensor:
    """``L_c`` (eq. 5): colour-transform tolerance over tile features, decoupled contrastive form.

    Args:
        features: ``(N, 2, T, D)``: N frames, 2 transforms, T tile positions (9), D channels.
        tau: temperature of ``c(x, y) = exp(cos(x, y) / tau)``.

    Returns:
        Mean over anchors ``(i, k, j)`` of
        ``-log c(f_ikj, f_i(3-k)j) + log sum_{p != i, k'} c(f_ikj, f_pk'j)``;
        equals the mean over ``j`` of lightly's ``DCLLoss(tau)(f[:, 0, j], f[:, 1, j])``.
    """
    n, k, t, d = features.shape
    if k != 2:
        raise ValueError(f"color_tolerance_loss needs exactly 2 transforms, got {k}")
    if n < 2:
        raise ValueError("color_tolerance_loss needs at least 2 frames in the batch (negatives)")
    z = F.normalize(features, dim=-1).permute(2, 1, 0, 3).reshape(t, 2 * n, d)  # (T, 2N): view-major
    sim = torch.einsum("tad,tbd->tab", z, z) / tau  # (T, 2N, 2N)
    idx = torch.arange(2 * n, device=features.device)
    partner = (idx + n) % (2 * n)
    positive = sim[:, idx, partner]  # (T, 2N)
    same_frame = (idx[:, None] % n) == (idx[None, :] % n)  # self and positive are not negatives
    negatives = torch.logsumexp(sim.masked_fill(same_frame, float("-inf")), dim=-1)
    return (negatives - positive).mean()


def recognition_loss(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """``L_r`` (eq. 8): ``sum_i (e'_i - e_i)^2`` over a clip's frames, mean over clips.

    Args:
        pred, target: ``(B, T)``. valid: ``(B, T)`` bool, False on zero-padded frames.
    """
    sq = (pred - target) ** 2
    if valid is not None:
        sq = sq * valid.to(sq.dtype)
    return sq.sum(dim=1).mean()


def max_frame_dice_loss(logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """``L_s`` (eq. 10): soft Dice loss (MONAI ``DiceLoss``, sigmoid) per max frame, averaged.

    Args:
        logits: ``(K, 1, H, W)`` jet logits at the K max frames (``e_k != 0`` only).
        masks: ``(K, 1, H, W)`` true jet masks of those frames.
    """
    from monai.losses import DiceLoss

    return DiceLoss(sigmoid=True, smooth_nr=1e-5, smooth_dr=1e-5)(logits, masks)


def predict_peaks(e_pred: np.ndarray, height: float = 0.3, distance: int = 8) -> np.ndarray:
    """Max frames from ``E'`` ``(T,)``: local maxima at least ``height`` high, ``distance`` frames apart."""
    from scipy.signal import find_peaks

    e = np.asarray(e_pred, dtype=np.float64)
    # pad so that a maximum on the first or last frame can count as a peak
    peaks, _ = find_peaks(np.concatenate([[-np.inf], e, [-np.inf]]), height=height, distance=max(1, distance))
    return peaks - 1


# --------------------------------------------------------------------------- #
# Lightning modules
# --------------------------------------------------------------------------- #


class JigsawModule(L.LightningModule):
    """Jigsaw (+ colour tolerance) pre-training of ``phi``; ``self.net`` is a :class:`JigsawNet`.

    Batches are ``(N, 2, 9, 3, t, t)`` tiles of two views (:class:`JigsawViews`).
    The permutation pool is a buffer, so a checkpoint carries it.
    """

    def __init__(self, backbone: str = "small", n_permutations: int = 100, perm_seed: int = 0,
                 perm_criterion: str = "max_min", color: bool = True, color_weight: float = 1.0, tau: float = 0.1,
                 grid: int = 3, optimizer: str = "adam", lr: float = 1e-3, momentum: float = 0.9,
                 weight_decay: float = 0.0, task: str = "jigsaw"):
        super().__init__()
        self.save_hyperparameters()
        self.net = JigsawNet(backbone, n_permutations, grid)
        pool = load_permutation_pool(n_permutations, perm_seed, perm_criterion)
        self.register_buffer("permutations", torch.as_tensor(pool, dtype=torch.long))

    def losses(self, tiles: torch.Tensor) -> dict:
        n = tiles.shape[0]
        features = self.net(tiles.flatten(0, 1)).view(n, 2, tiles.shape[2], -1)  # (N, 2, 9, D)
        target = torch.randint(0, self.permutations.shape[0], (n, 2), device=tiles.device)
        logits = self.net.head(shuffle_features(features, self.permutations, target).flatten(2))
        out = {"sr": structure_recovery_loss(logits, target),
               "acc": (logits.argmax(-1) == target).float().mean()}
        out["loss"] = out["sr"]
        if self.hparams.color:
            out["c"] = color_tolerance_loss(features, self.hparams.tau)
            out["loss"] = out["sr"] + self.hparams.color_weight * out["c"]
        return out

    def training_step(self, batch, batch_idx):
        out = self.losses(batch)
        n = batch.shape[0]
        self.log("train_loss", out["loss"], prog_bar=True, batch_size=n)
        self.log("train_acc", out["acc"], prog_bar=True, batch_size=n)
        if "c" in out:
            self.log("train_c", out["c"], batch_size=n)
        return out["loss"]

    def validation_step(self, batch, batch_idx):
        out = self.losses(batch)
        n = batch.shape[0]
        self.log("val_loss", out["loss"], batch_size=n, sync_dist=True)
        self.log("val_acc", out["acc"], prog_bar=True, batch_size=n, sync_dist=True)

    def configure_optimizers(self):
        hp = self.hparams
        return build_optimizer(self.parameters(), hp.optimizer, hp.lr, hp.momentum, hp.weight_decay)


class MRJetModule(L.LightningModule):
    """Max-frame recognition + max-frame jet segmentation, ``L = L_r + L_s`` (eq. 11).

    Batches are :class:`echossl.data.mrjet.MRJetClips` items: ``video (B, T, 3, S, S)``,
    ``e (B, T)``, ``jet (B, T, 1, S, S)``, ``valid (B, T)``.
    ``norm`` = ``{"mean", "std", "crop", "size"}`` is recorded for inference.
    ``window``: the training clip length; inference runs the network on consecutive windows
    of this many frames (the LSTM and the recognition decoder then see the same temporal
    context at test as in training). ``None``: whole videos (old checkpoints).
    ``peak_height``: the E' peak threshold, chosen on VAL by the training pipeline.
    """

    def __init__(self, backbone: str = "small", lstm_hidden: int | None = None, recog_hidden: int = 64,
                 seg_weight: float = 1.0, optimizer: str = "adam", lr: float = 1e-3, momentum: float = 0.9,
                 weight_decay: float = 0.0, peak_height: float = 0.3, peak_distance: int = 8,
                 norm: dict | None = None, window: int | None = None, task: str = "mrjet"):
        super().__init__()
        self.save_hyperparameters()
        self.net = MRJetNet(backbone, lstm_hidden, recog_hidden)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        return self.net(video)

    def losses(self, batch) -> dict:
        video, e, valid = batch["video"], batch["e"], batch["valid"]
        pyramid = self.net.encode(video)
        e_pred = self.net.recognise(pyramid)
        l_r = recognition_loss(e_pred, e, valid)
        b, t = torch.nonzero((e > 0.5) & valid, as_tuple=True)
        out = {"r": l_r, "e_pred": e_pred}
        if b.numel():
            logits = self.net.segment(pyramid, b, t, video.shape[-2:])
            out["s"] = max_frame_dice_loss(logits, batch["jet"][b, t])
            out["dice"] = self._hard_dice(logits, batch["jet"][b, t])
        else:
            out["s"] = e_pred.sum() * 0.0  # keeps every parameter in the graph (DDP)
        out["loss"] = l_r + self.hparams.seg_weight * out["s"]
        return out

    @staticmethod
    def _hard_dice(logits, masks) -> torch.Tensor:
        from echossl.evaluation.metrics import dice

        return torch.as_tensor(dice((logits > 0).squeeze(1), masks.squeeze(1) > 0.5)).float().mean()

    def training_step(self, batch, batch_idx):
        out = self.losses(batch)
        n = batch["video"].shape[0]
        self.log("train_loss", out["loss"], prog_bar=True, batch_size=n)
        self.log("train_r", out["r"], batch_size=n)
        self.log("train_s", out["s"], prog_bar=True, batch_size=n)
        return out["loss"]

    def validation_step(self, batch, batch_idx):
        out = self.losses(batch)
        n = batch["video"].shape[0]
        self.log("val_loss", out["loss"], prog_bar=True, batch_size=n, sync_dist=True)
        self.log("val_r", out["r"], batch_size=n, sync_dist=True)
        self.log("val_s", out["s"], batch_size=n, sync_dist=True)
        if "dice" in out:
            self.log("val_dice", out["dice"], batch_size=n, sync_dist=True)

    def configure_optimizers(self):
        hp = self.hparams
        return build_optimizer(self.parameters(), hp.optimizer, hp.lr, hp.momentum, hp.weight_decay)
