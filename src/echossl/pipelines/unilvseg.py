"""UniLVSeg workflows (unilvseg-temporal-masking.md): pre-train, fine-tune, evaluate, reproduce.

1. :func:`pretrain` — temporal masking (Sec. II-A) on random clips of every
   TRAIN video (labels unused): ``echossl pretrain temporal-masking``.
2. :func:`train` — video LV segmentation from the traced ED/ES frames only
   (Sec. II-B): each training item is a random clip placed so that it contains
   one traced frame, each validation item the clip centred on it;
   ``echossl train video-seg``.
3. :func:`evaluate_checkpoint` — TEST Dice under the paper's protocol (one clip
   centred on each traced frame: ``dice``), and whole-video inference with sliding
   clips whose overlapping probabilities are averaged, so every frame gets a mask;
   then Dice on the traced ED/ES frames (``dice_whole_video``) and, with the
   simulator's truth, on every other frame; the LV-area curve, its ED/ES frames and EF by the method of disks
   (:mod:`echossl.evaluation.beats`); temporal consistency as the share of the
   area curve's spectral power above a cutoff; parameters and FLOPs per frame.
4. :func:`reproduce_unilvseg` — the comparison on one simulated dataset: a
   frame-by-frame 2D baseline, ``unet3d`` from scratch, ``unet3d`` after
   temporal masking, ``superimage``; ``echossl reproduce unilvseg``.

Every training step writes a run folder (CONTRACT.md) and ``metrics.json`` on TEST.
"""

from __future__ import annotations

import copy
import csv
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from echossl.engine import load_checkpoint, load_init_weights
from echossl.data import sampling
from echossl.data.cache import FrameCache
from echossl.data.resize import resize_frames, resize_mask
from echossl.data.echonet import (
    ed_es_frames,
    load_truth,
    read_filelist,
    read_tracings,
    trace_mask,
    validate,
    validate_full,
)
from echossl.engine import TrainerOptions, best_checkpoint, fit, prepare_run
from echossl.errors import CheckpointError, DataError, EchosslError
from echossl.evaluation.beats import high_frequency_power, segmentation_ef
from echossl.evaluation.metrics import dice_parts, dice_summary, mean_ci, pooled_dice, write_metrics_json
from echossl.io import atomic_write_bytes, atomic_write_text
from echossl.methods.unilvseg import TemporalMaskingModule, VideoSegModule, mask_frames, masked_count
from echossl.progress import progress_bar
from echossl.engine.cost import count_parameters, flops_per_frame
from echossl.engine.devices import config_loader as _loader
from echossl.engine.devices import training_device as _device

TASKS = ("temporal-masking", "video-seg")
ARCHS = ("unet3d", "superimage")
LABELS_PER_CLIP = ("one", "all")


# --------------------------------------------------------------------------- #
# settings
# --------------------------------------------------------------------------- #

def settings(cfg: dict) -> dict:
    """The ``unilvseg:`` section of a resolved config."""
    if "unilvseg" not in cfg:
        raise EchosslError("the configuration has no 'unilvseg' section (configs/<preset>/unilvseg.yaml)")
    return cfg["unilvseg"]


def arch_settings(cfg: dict, arch: str) -> tuple[int, int, dict]:
    """``(frames F, period T, network options)`` of ``arch`` from the config."""
    if arch not in ARCHS:
        raise EchosslError(f"--arch must be one of {', '.join(ARCHS)}, got {arch!r}")
    section = dict(settings(cfg)[arch])
    frames, period = int(section.pop("frames")), int(section.pop("period"))
    if frames < 1 or period < 1:
        raise EchosslError(f"unilvseg.{arch}.frames and .period must be positive, got {frames} and {period}")
    return frames, period, section


# --------------------------------------------------------------------------- #
# clips
# --------------------------------------------------------------------------- #

def _clahe(frames: np.ndarray, clip_limit: float) -> np.ndarray:
    """CLAHE of ``(N, H, W, 3)`` uint8 frames, each channel on its own (grey videos stay grey)."""
    import cv2

    op = cv2.createCLAHE(clipLimit=float(clip_limit), tileGridSize=(8, 8))
    out = np.empty_like(frames)
    for i in range(frames.shape[0]):
        for c in range(frames.shape[3]):
            out[i, :, :, c] = op.apply(np.ascontiguousarray(frames[i, :, :, c]))
    return out


def _uniform(low: float, high: float) -> float:
    return float(low + (high - low) * torch.rand(()))


class UniLVSegClips(Dataset):
    """Clips of ``F`` frames at period ``T`` from EchoNet-Dynamic videos.

    Two modes:

    - ``anchored=False`` (pre-training): one item per video, a clip at a random start.
    - ``anchored=True`` (segmentation): two items per video, one per traced frame
      (ED then ES). With ``train=True`` the traced frame sits at a random position
      of the clip, chosen so the clip stays inside the video when it can
      ("randomly extracted around an annotated frame"); otherwise it sits at the
      centre (position ``F // 2``). Frames before the start or past the end of a
      video are zero frames, as in EchoNet-Dynamic's clip sampling.

    ``labels_per_clip`` (anchored only): ``"one"`` labels only the traced frame the
    clip is built around — the paper's "there is only a segmentation mask for one
    frame on every clip" (Sec. II-B) and its authors' code; ``"all"`` also labels
    the video's other traced frame when the clip happens to contain it.

    Augmentations (``train=True`` with an ``augment`` dict, Sec. III-B): CLAHE with
    probability ``clahe`` (clip limit ``clahe_clip``), colour jitter
    (``brightness``, ``contrast``: factors in ``1 +- value``), a rotation of up to
    ``rotation`` degrees, then zero-padding by ``pad`` and a random crop back
    (paper: 112 -> 124 -> 112). One draw per clip: every frame and its mask move together.

    Items:
        ``video``: float32 ``(3, F, S, S)``, ``(x - mean) / std``;
        ``mask``: float32 ``(1, F, S, S)`` (anchored only), the traced masks, 0 elsewhere;
        ``labeled``: bool ``(F,)`` (anchored only), True at the labeled frames of the clip
        (the anchor only, with ``labels_per_clip="one"``);
        ``filename``: str; ``frame``: the traced frame the clip is built around (-1 if none).
    """

    def __init__(self, root, names, *, frames: int, period: int, norm: dict, anchored: bool, train: bool,
                 augment: dict | None = None, cache: FrameCache | None = None, labels_per_clip: str = "all"):
        self.root = Path(root)
        if labels_per_clip not in LABELS_PER_CLIP:
            raise EchosslError(f"unilvseg.labels_per_clip must be one of {', '.join(LABELS_PER_CLIP)}, "
                               f"got {labels_per_clip!r}")
        self.labels_per_clip = labels_per_clip
        res = validate_full(self.root)
        usable = set(res["usable"])
        self.names = [n for n in names if n in usable]
        if not self.names:
            raise DataError(self.root / "FileList.csv", "no usable videos for UniLVSeg clips")
        if anchored and not res["have_tracings"]:
            raise DataError(self.root / "VolumeTracings.csv", "is needed for segmentation clips")
        self.traces = {n: res["traces"].get(n, {}) for n in self.names}
        self.ed_es = {n: res["ed_es"].get(n) for n in self.names}
        self.frames, self.period = int(frames), int(period)
        self.norm, self.anchored, self.train = norm, anchored, train
        self.augment = augment if train else None
        self.cache = cache or FrameCache()
        self.items = ([(n, p) for n in self.names for p in (0, 1)] if anchored else [(n, -1) for n in self.names])
        self._masks: dict[tuple[str, int, int, int], np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.items)

    def _start(self, n: int, anchor: int) -> int:
        f, t = self.frames, self.period
        if anchor < 0:
            starts = sampling.all_starts(n, f, t)
            return int(starts[int(torch.randint(len(starts), ()))])
        if not self.train:
            return anchor - (f // 2) * t
        lo = max(0, f - 1 - (n - 1 - anchor) // t)  # the clip's end stays inside the video
        hi = min(f - 1, anchor // t)  # the clip's start stays inside the video
        if lo > hi:  # video shorter than the clip: keep the start inside, pad the end
            lo = 0
        return anchor - int(torch.randint(lo, hi + 1, ())) * t

    def _trace_mask(self, name: str, frame: int, h: int, w: int) -> np.ndarray:
        key = (name, frame, h, w)
        if key not in self._masks:
            self._masks[key] = trace_mask(self.traces[name][frame], h, w)
        return self._masks[key]

    def __getitem__(self, i: int) -> dict:
        name, phase = self.items[i]
        video = self.cache.get(self.root / "Videos" / f"{name}.avi")  # (N, H, W, 3) uint8
        n, h, w = video.shape[:3]
        anchor = self.ed_es[name][phase] if phase >= 0 else -1
        idx = self._start(n, anchor) + self.period * np.arange(self.frames)
        valid = (idx >= 0) & (idx < n)
        raw = np.zeros((self.frames, h, w, 3), dtype=np.uint8)
        raw[valid] = video[idx[valid]]
        aug = self.augment or {}
        if aug.get("clahe", 0) and valid.any() and float(torch.rand(())) < float(aug["clahe"]):
            raw[valid] = _clahe(raw[valid], aug.get("clahe_clip", 2.0))
        x = torch.from_numpy(raw).permute(0, 3, 1, 2).float()  # (F, 3, H, W), 0..255
        mask = torch.zeros(self.frames, 1, h, w)
        labeled = torch.zeros(self.frames, dtype=torch.bool)
        if self.anchored:
            traced = [anchor] if self.labels_per_clip == "one" else list(self.traces[name])
            for frame in traced:
                for pos in np.flatnonzero(idx == frame):
                    mask[pos, 0] = torch.from_numpy(self._trace_mask(name, frame, h, w))
                    labeled[pos] = True
        size = self.norm.get("size")
        if size and (h, w) != (size, size):
            x = resize_frames(x, size)
            mask = resize_mask(mask, size)  # resampled like the frames: no half-pixel shift
        if aug:
            x, mask = self._augment(x, mask, torch.from_numpy(valid), aug)
        mean = torch.tensor(self.norm["mean"], dtype=torch.float32).view(1, 3, 1, 1)
        std = torch.tensor(self.norm["std"], dtype=torch.float32).view(1, 3, 1, 1)
        item = {"video": ((x - mean) / std).permute(1, 0, 2, 3).contiguous(), "filename": name,
                "frame": int(anchor)}
        if self.anchored:
            item["mask"] = mask.permute(1, 0, 2, 3).contiguous()
            item["labeled"] = labeled
        return item

    @staticmethod
    def _augment(x: torch.Tensor, mask: torch.Tensor, valid: torch.Tensor, aug: dict):
        """Jitter, rotation and pad-crop of ``(F, 3, S, S)`` frames (0..255) and ``(F, 1, S, S)`` masks."""
        from torchvision.transforms import InterpolationMode
        from torchvision.transforms.v2 import functional as TF

        b, c = aug.get("brightness", 0.0), aug.get("contrast", 0.0)
        if b or c:
            bf = _uniform(1 - b, 1 + b)
            cf = _uniform(1 - c, 1 + c)
            centre = x[valid].mean() if valid.any() else x.mean()
            # zero (padding) frames stay zero: they stand for "no video here"
            x = torch.where(valid.view(-1, 1, 1, 1), ((x * bf - centre) * cf + centre).clamp(0, 255), x)
        if aug.get("rotation", 0):
            angle = _uniform(-aug["rotation"], aug["rotation"])
            x = TF.rotate(x, angle, interpolation=InterpolationMode.BILINEAR)
            mask = TF.rotate(mask, angle, interpolation=InterpolationMode.NEAREST)
        if aug.get("pad", 0):
            pad = int(aug["pad"])
            oi, oj = sampling.pad_crop_offsets(pad)
            x = sampling.pad_crop(x, pad, oi, oj, 0.0)
            mask = sampling.pad_crop(mask, pad, oi, oj, 0.0)
        return x, mask


# --------------------------------------------------------------------------- #
# step 1: temporal-masking pre-training
# --------------------------------------------------------------------------- #

def _split(root, cfg: dict, split):
    from echossl.pipelines.semisupervised_ef import split_data

    return split or split_data(root, cfg)


def _trainer_options(opts: TrainerOptions, max_epochs: int) -> TrainerOptions:
    opts = copy.copy(opts)
    if opts.max_epochs is None and not opts.max_steps:
        opts.max_epochs = int(max_epochs)
    return opts


def pretrain(root, out, cfg: dict, opts: TrainerOptions, *, arch: str = "unet3d", mask_ratio: float | None = None,
             init: str | None = None, split=None) -> Path:
    """Temporal-masking pre-training (eq. 1) on every TRAIN video; metrics.json holds TEST reconstruction MSE."""
    s = settings(cfg)
    frames, period, net = arch_settings(cfg, arch)
    ratio = float(s["mask_ratio"] if mask_ratio is None else mask_ratio)
    try:
        masked_count(frames, ratio)
    except ValueError as err:
        raise EchosslError(f"--mask-ratio: {err}") from None
    split = _split(root, cfg, split)
    run = prepare_run(out, cfg, opts.resume)
    module = TemporalMaskingModule(arch=arch, net=net, mask_ratio=ratio, optimizer=s["optimizer"], lr=s["lr"],
                                   weight_decay=s["weight_decay"], norm=split.norm, frames=frames, period=period)
    if init:
        _init_weights(module, init, arch, allow_partial=bool(cfg.get("init_partial", False)),
                      record=run / "init.json")
    pre = s["pretrain"]
    clip = dict(frames=frames, period=period, norm=split.norm, anchored=False)
    train_ds = UniLVSegClips(split.root, split.train, train=True, augment=s.get("augment"), **clip)
    val_ds = UniLVSegClips(split.root, split.val, train=False, **clip)
    return _fit_and_evaluate(module, train_ds, val_ds, pre, run, cfg, opts, split.root, monitor="val_loss",
                             mode="min")


def _fit_and_evaluate(module, train_ds, val_ds, stage: dict, run: Path, cfg: dict, opts: TrainerOptions, root,
                      *, monitor: str, mode: str, **evaluate_kw) -> Path:
    """Fit one stage (its ``batch_size`` and ``max_epochs``), then evaluate its best checkpoint on TEST once."""
    trainer = fit(module, _loader(train_ds, stage["batch_size"], cfg, True),
                  _loader(val_ds, stage["batch_size"], cfg, False), run,
                  _trainer_options(opts, stage["max_epochs"]), monitor=monitor, mode=mode)
    if trainer.is_global_zero:  # under DDP, evaluate once
        evaluate_checkpoint(best_checkpoint(run), root, "TEST", run / "metrics.json", cfg=cfg,
                            device=_device(opts), **evaluate_kw)
    return run


def _init_weights(module, init, arch: str, *, allow_partial: bool = False, record=None) -> None:
    """``--init``: a UniLVSeg run or checkpoint (its body; a head of another size is skipped), an export,
    or a plain torchvision ``state_dict()`` of the super-image encoder (resnet18, mobilenet_v3_large)."""
    path = Path(init)
    if path.is_dir() and (path / "checkpoints").is_dir():
        path = best_checkpoint(path)
    if path.suffix == ".ckpt":
        ckpt = load_checkpoint(path)
        hp = ckpt["hyper_parameters"]
        if hp.get("task") in TASKS and hp.get("arch") != arch:
            raise CheckpointError(f"--init {path} holds a {hp.get('arch')} network, not {arch}")
    load_init_weights(module.net, path, prefix="net.", allow_partial=allow_partial, record=record)


# --------------------------------------------------------------------------- #
# step 2: sparse-label video segmentation
# --------------------------------------------------------------------------- #

def train(root, out, cfg: dict, opts: TrainerOptions, *, arch: str = "unet3d", init: str | None = None,
          split=None) -> Path:
    """Video LV segmentation with the labeled-frames-only Dice loss; evaluates TEST into metrics.json."""
    s = settings(cfg)
    frames, period, net = arch_settings(cfg, arch)
    split = _split(root, cfg, split)
    run = prepare_run(out, cfg, opts.resume)
    module = VideoSegModule(arch=arch, net=net, optimizer=s["optimizer"], lr=s["lr"],
                            weight_decay=s["weight_decay"], norm=split.norm, frames=frames, period=period)
    if init:
        _init_weights(module, init, arch, allow_partial=bool(cfg.get("init_partial", False)),
                      record=run / "init.json")
    seg = s["train"]
    clip = dict(frames=frames, period=period, norm=split.norm, anchored=True,
                labels_per_clip=s.get("labels_per_clip", "all"))
    train_ds = UniLVSegClips(split.root, split.labeled, train=True, augment=s.get("augment"), **clip)
    val_ds = UniLVSegClips(split.root, split.val, train=False, **clip)
    return _fit_and_evaluate(module, train_ds, val_ds, seg, run, cfg, opts, split.root, monitor="val_dice",
                             mode="max", masks_dir=run / "masks")


# --------------------------------------------------------------------------- #
# whole-video inference
# --------------------------------------------------------------------------- #

def window_indices(n: int, frames: int, period: int, stride: int | None = None) -> np.ndarray:
    """Sliding clips that cover every frame of an ``n``-frame video.

    The video is split into its ``period`` interleaved sequences (frames ``r,
    r + T, r + 2T, ...``); on each, clips of ``frames`` consecutive entries slide
    by ``stride`` (default ``frames // 2``), the last one aligned with the end.

    Returns:
        ``(K, frames)`` int64 frame indices; ``n`` marks a padding (zero) frame
        where a sequence is shorter than a clip.
    """
    stride = max(1, int(stride or frames // 2 or 1))
    rows = []
    for r in range(min(period, n)):
        seq = np.arange(r, n, period)
        last = max(len(seq) - frames, 0)
        starts = np.unique(np.append(np.arange(0, last + 1, stride), last))
        pos = starts[:, None] + np.arange(frames)[None, :]
        rows.append(np.where(pos < len(seq), seq[np.minimum(pos, len(seq) - 1)], n))
    return np.concatenate(rows).astype(np.int64)


def _normalised(frames: np.ndarray, norm: dict, device) -> torch.Tensor:
    """``(N, H, W, 3)`` uint8 -> ``(N, 3, S, S)`` normalised float at the model's size."""
    x = torch.from_numpy(np.array(frames)).to(device).permute(0, 3, 1, 2).float()
    size = norm.get("size")
    if size and tuple(x.shape[-2:]) != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    mean = torch.tensor(norm["mean"], device=device, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(norm["std"], device=device, dtype=torch.float32).view(1, 3, 1, 1)
    return (x - mean) / std


@torch.inference_mode()
def segment_video(net, frames: np.ndarray, norm: dict, *, clip_frames: int, period: int,
                  stride: int | None = None, batch_size: int = 8) -> np.ndarray:
    """LV probability of every frame: ``(N, H, W, 3)`` uint8 -> ``(N, H, W)`` float32 at native size.

    Clips from :func:`window_indices` run through ``net`` (``(B, 3, F, S, S) ->
    (B, 1, F, S, S)`` logits) in batches; the sigmoid probabilities of a frame
    seen by several clips are averaged.
    """
    device = next(net.parameters()).device
    n, h, w = frames.shape[:3]
    x = _normalised(frames, norm, device)
    # index n is a zero frame before normalisation, as in training's padding
    x = torch.cat([x, _normalised(np.zeros((1, h, w, 3), np.uint8), norm, device)])
    windows = torch.from_numpy(window_indices(n, clip_frames, period, stride)).to(device)
    total = torch.zeros((n + 1,) + tuple(x.shape[-2:]), device=device)
    count = torch.zeros(n + 1, device=device)
    for start in range(0, len(windows), batch_size):
        idx = windows[start:start + batch_size]  # (B, F)
        clips = x[idx].permute(0, 2, 1, 3, 4)  # (B, 3, F, S, S)
        probs = torch.sigmoid(net(clips)[:, 0].float())  # (B, F, S, S)
        total.index_add_(0, idx.reshape(-1), probs.reshape(-1, *probs.shape[-2:]))
        count.index_add_(0, idx.reshape(-1), torch.ones(idx.numel(), device=device))
    probs = (total[:n] / count[:n].clamp(min=1).view(-1, 1, 1))[:, None]
    if tuple(probs.shape[-2:]) != (h, w):
        probs = F.interpolate(probs, size=(h, w), mode="bilinear", align_corners=False)
    return probs[:, 0].cpu().numpy()


def infer_masks(module: VideoSegModule, root, names, out_dir, *, stride=None, batch_size: int = 8) -> Path:
    """Write ``out_dir/<FileName>.npy``: uint8 ``(N, H, W)`` LV probability x 255 for every frame.

    The same format as the 2D pipeline's ``RUN/masks``, so both are scored alike.
    """
    hp = module.hparams
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cache = FrameCache()
    for name in progress_bar(names, "segmenting whole videos"):
        probs = segment_video(module.net, cache.get(Path(root) / "Videos" / f"{name}.avi"), hp.norm,
                              clip_frames=hp.frames, period=hp.period, stride=stride, batch_size=batch_size)
        tmp = out_dir / f".{name}.tmp.npy"
        np.save(tmp, np.rint(probs * 255).astype(np.uint8))
        tmp.replace(out_dir / f"{name}.npy")
    return out_dir


# --------------------------------------------------------------------------- #
# measurements
# --------------------------------------------------------------------------- #

def video_net_cost(module) -> dict:
    """``params_m`` and ``gflops_per_frame`` of a UniLVSeg network on one clip of its size."""
    hp = module.hparams
    size = hp.norm.get("size") or 112
    device = next(module.parameters()).device
    example = torch.zeros(1, 3, hp.frames, size, size, device=device)
    return {"params_m": count_parameters(module.net) / 1e6,
            "gflops_per_frame": flops_per_frame(module.net, example, hp.frames) / 1e9}


def score_masks(masks_dir, root, names, *, cutoff: float = 0.5, bootstrap: int = 1000) -> tuple[dict, list[dict]]:
    """Score per-frame LV probabilities ``masks_dir/<FileName>.npy`` (uint8, x255) of ``names``.

    Returns ``(metrics, rows)``. Metrics: ``dice`` (traced ED and ES frames,
    pooled: ``2·ΣI / (Σ|A| + Σ|B|)``), ``dice_frame_mean`` (mean of their per-frame
    Dice), ``dice_ed``, ``dice_es`` (pooled), ``dice_unlabeled`` (every other frame
    against the simulator's per-frame truth, pooled, with ``dice_unlabeled_frame_mean``);
    every ``*_ci95`` resamples videos (:func:`~echossl.evaluation.metrics.dice_summary`);
    ``hf_power`` (share of the predicted LV-area curve's
    spectral power above ``cutoff`` x Nyquist, mean over videos, with CI) and
    ``hf_power_truth`` (the same for the true area curve); ``ef_mae`` (EF by the
    method of disks over the beats found on the predicted area curve, against
    FileList.csv's EF) and ``ef_mae_truth`` (the same procedure on the true
    masks, the floor this measurement allows). Rows: one per video with
    ``FileName, EF, EF_Seg, ED_Frame, ES_Frame, Dice_ED, Dice_ES, Dice_Unlabeled, HF_Power``.
    """
    root, masks_dir = Path(root), Path(masks_dir)
    traces = read_tracings(root)
    table = read_filelist(root).set_index("FileName")
    hf, hf_true, ef_err, ef_err_true, rows = [], [], [], [], []
    parts = {k: ([], [], []) for k in ("ed", "es", "unl")}  # inter, total, video

    def add(key, name, inter, total):
        inter, total = np.atleast_1d(inter), np.atleast_1d(total)
        for store, value in zip(parts[key], (inter, total, np.full(inter.shape, name, dtype=object))):
            store.append(value)
        return float(pooled_dice(inter, total))

    for name in names:
        path = masks_dir / f"{name}.npy"
        if not path.is_file():
            raise DataError(path, "predicted masks are missing")
        pred = np.load(path) >= 128  # (N, H, W)
        h, w = pred.shape[1:]
        ed, es = ed_es_frames(traces[name], (h, w))
        row = {"FileName": name, "EF": float(table.loc[name, "EF"])}
        row["Dice_ED"] = add("ed", name, *dice_parts(pred[ed], trace_mask(traces[name][ed], h, w)))
        row["Dice_ES"] = add("es", name, *dice_parts(pred[es], trace_mask(traces[name][es], h, w)))
        fps = float(table.loc[name, "FPS"]) if np.isfinite(table.loc[name, "FPS"]) else None
        area = pred.reshape(len(pred), -1).sum(axis=1).astype(np.float64)
        row["HF_Power"] = high_frequency_power(area, cutoff)
        hf.append(row["HF_Power"])
        beats = segmentation_ef(pred, fps=fps)
        row.update(EF_Seg=beats["ef"], ED_Frame=beats["ed_frame"], ES_Frame=beats["es_frame"])
        if np.isfinite(beats["ef"]):
            ef_err.append(abs(beats["ef"] - row["EF"]))
        truth = load_truth(root, name)
        if truth is not None:
            true_masks = truth["masks"][: len(pred)].astype(bool)
            other = np.setdiff1d(np.arange(len(true_masks)), [ed, es])
            row["Dice_Unlabeled"] = add("unl", name, *dice_parts(pred[other], true_masks[other]))
            hf_true.append(high_frequency_power(true_masks.reshape(len(true_masks), -1).sum(axis=1), cutoff))
            true_ef = segmentation_ef(true_masks, fps=fps)["ef"]
            if np.isfinite(true_ef):
                ef_err_true.append(abs(true_ef - row["EF"]))
        rows.append(row)

    def cat(key):
        return [np.concatenate(p) if p else np.zeros(0) for p in parts[key]]

    (ed_i, ed_t, ed_g), (es_i, es_t, es_g) = cat("ed"), cat("es")
    metrics = dice_summary(np.concatenate([ed_i, es_i]), np.concatenate([ed_t, es_t]),
                           np.concatenate([ed_g, es_g]), bootstrap=bootstrap)
    metrics.update(dice_summary(ed_i, ed_t, ed_g, prefix="dice_ed", frame_mean=False, bootstrap=bootstrap))
    metrics.update(dice_summary(es_i, es_t, es_g, prefix="dice_es", frame_mean=False, bootstrap=bootstrap))
    if parts["unl"][0]:
        metrics.update(dice_summary(*cat("unl"), prefix="dice_unlabeled", bootstrap=bootstrap))
    metrics.update(hf_power=float(np.mean(hf)), hf_power_ci95=mean_ci(hf, bootstrap), hf_cutoff=float(cutoff))
    if hf_true:
        metrics["hf_power_truth"] = float(np.mean(hf_true))
    metrics["ef_mae"] = float(np.mean(ef_err)) if ef_err else float("nan")
    if ef_err_true:
        metrics["ef_mae_truth"] = float(np.mean(ef_err_true))
    return metrics, rows


WHOLE_VIDEO_KEYS = ("dice", "dice_ci95", "dice_frame_mean", "dice_frame_mean_ci95", "dice_ed", "dice_ed_ci95",
                    "dice_es", "dice_es_ci95")


def as_whole_video(metrics: dict) -> dict:
    """Rename :func:`score_masks`' traced-frame Dice keys ``dice*`` to ``dice_whole_video*``.

    (``dice_unlabeled*`` keeps its name: only whole-video inference segments
    the untraced frames.)
    """
    return {(k.replace("dice", "dice_whole_video", 1) if k in WHOLE_VIDEO_KEYS else k): v
            for k, v in metrics.items()}


@torch.inference_mode()
def centred_clip_scores(module: VideoSegModule, root, names, *, batch_size: int = 8, bootstrap: int = 1000
                        ) -> tuple[dict, dict]:
    """TEST Dice under the paper's protocol (Sec. II-B): one clip per traced frame, that frame at its centre.

    Each video gives two clips of ``F`` frames at period ``T`` (ED, then ES) with
    the traced frame at position ``F // 2`` (zero frames where the clip leaves the
    video, as in training). The network's probability of that frame is resized
    to the video's size (bilinear), thresholded at 0.5 and compared with the
    tracing rasterised at that size, the same scoring as the whole-video figure.

    Returns:
        ``(metrics, per_video)``: ``dice`` (pooled), ``dice_frame_mean``,
        ``dice_ed``, ``dice_es`` with ``*_ci95`` resampling videos, and
        ``{FileName: {"Dice_ED_Clip": .., "Dice_ES_Clip": ..}}``.
    """
    hp = module.hparams
    ds = UniLVSegClips(root, names, frames=hp.frames, period=hp.period, norm=hp.norm, anchored=True, train=False,
                       labels_per_clip="one")
    device = next(module.parameters()).device
    centre = hp.frames // 2
    loader = DataLoader(ds, batch_size=max(1, batch_size), shuffle=False)
    inter, total, video, phase = [], [], [], []
    per_video: dict[str, dict] = {}
    for start, batch in zip(range(0, len(ds), max(1, batch_size)), loader):
        probs = torch.sigmoid(module.net(batch["video"].to(device))[:, 0, centre].float())  # (B, S, S)
        for b, name in enumerate(batch["filename"]):
            frame = int(batch["frame"][b])
            h, w = ds.cache.get(ds.root / "Videos" / f"{name}.avi").shape[1:3]
            p = F.interpolate(probs[b][None, None], size=(h, w), mode="bilinear", align_corners=False)[0, 0]
            i, t = dice_parts(p.cpu().numpy() > 0.5, trace_mask(ds.traces[name][frame], h, w))
            which = ds.items[start + b][1]  # 0 = ED, 1 = ES
            inter.append(float(i))
            total.append(float(t))
            video.append(name)
            phase.append(which)
            per_video.setdefault(name, {})["Dice_ES_Clip" if which else "Dice_ED_Clip"] = float(
                2 * i / t if t > 0 else 1.0)
    inter, total, video, phase = map(np.asarray, (inter, total, video, phase))
    metrics = dice_summary(inter, total, video, bootstrap=bootstrap)
    for key, which in (("dice_ed", 0), ("dice_es", 1)):
        sel = phase == which
        metrics.update(dice_summary(inter[sel], total[sel], video[sel], prefix=key, frame_mean=False,
                                    bootstrap=bootstrap))
    return metrics, per_video


def write_rows_csv(path, rows: list[dict]) -> None:
    """Per-video results as CSV (``predictions.csv``)."""
    import io

    cols = ["FileName", "EF", "EF_Seg", "ED_Frame", "ES_Frame", "Dice_ED", "Dice_ES", "Dice_ED_Clip", "Dice_ES_Clip",
            "Dice_Unlabeled", "HF_Power"]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in cols})
    atomic_write_text(path, buf.getvalue())


def area_curve_png(masks_dir, root, name: str, title: str = "") -> bytes:
    """PNG of one video's predicted LV-area curve with the ED/ES frames found on it."""
    from echossl.evaluation.plots import area_curve

    pred = np.load(Path(masks_dir) / f"{name}.npy") >= 128
    table = read_filelist(root).set_index("FileName")
    beats = segmentation_ef(pred, fps=float(table.loc[name, "FPS"]))
    return area_curve(beats["area"], beats["ed_frames"], beats["es_frames"], title=title or name)


# --------------------------------------------------------------------------- #
# evaluation of checkpoints (also `echossl evaluate`)
# --------------------------------------------------------------------------- #

def load_module(checkpoint):
    """A UniLVSeg LightningModule (either task) from a checkpoint, in eval mode."""
    ckpt = load_checkpoint(checkpoint, expect_task=TASKS)
    hp = dict(ckpt["hyper_parameters"])
    cls = TemporalMaskingModule if hp["task"] == "temporal-masking" else VideoSegModule
    module = cls(**hp)
    module.load_state_dict(ckpt["state_dict"])
    return module.eval(), hp


def _split_names(root, split: str) -> list[str]:
    table = read_filelist(root)
    usable, _ = validate(root)
    names = sorted(set(table.loc[table["Split"] == split.upper(), "FileName"]) & set(usable))
    if not names:
        raise EchosslError(f"{root} has no usable {split} videos to evaluate")
    return names


def evaluate_checkpoint(checkpoint, data, split: str, out_json, *, cfg: dict, device=None,
                        masks_dir=None) -> dict:
    """Evaluate a ``video-seg`` or ``temporal-masking`` checkpoint on a split; writes ``metrics.json``.

    ``video-seg``: ``dice``, ``dice_frame_mean``, ``dice_ed``, ``dice_es`` (and
    ``*_ci95``) follow the paper's protocol, one clip centred on each traced frame
    (:func:`centred_clip_scores`); every frame of every video is also segmented by
    sliding windows (into ``masks_dir``, default ``<out_json folder>/masks_<split>``)
    and scored by :func:`score_masks`, whose traced-frame figures are written as
    ``dice_whole_video*`` beside ``dice_unlabeled``, ``hf_power``, ``ef_mae``,
    with ``params_m`` and ``gflops_per_frame``; ``predictions.csv`` and
    ``area_curve.png`` (the first video's LV-area curve) are written next to
    ``out_json``. ``temporal-masking``: reconstruction MSE of clips with
    ``mask_ratio`` of frames hidden (``mse``, ``mse_masked``, ``mse_visible``).
    """
    device = device or _device()
    module, hp = load_module(checkpoint)
    module.to(device)
    s = cfg.get("unilvseg", {})
    split = split.upper()
    names = _split_names(data, split)
    out_json = Path(out_json)
    if hp["task"] == "temporal-masking":
        metrics = _reconstruction_metrics(module, data, names, batch_size=s.get("infer_batch", 8))
        write_metrics_json(out_json, task=hp["task"], split=split, n=len(names), **metrics)
        return metrics
    masks_dir = Path(masks_dir) if masks_dir else out_json.parent / f"masks_{split.lower()}"
    infer_masks(module, data, names, masks_dir, stride=s.get("infer_stride"), batch_size=s.get("infer_batch", 8))
    whole, rows = score_masks(masks_dir, data, names, cutoff=s.get("hf_cutoff", 0.5))
    # `dice*`: the paper's protocol (a clip centred on each traced frame);
    # `dice_whole_video*`: the same frames segmented by whole-video sliding windows
    metrics, per_video = centred_clip_scores(module, data, names, batch_size=s.get("infer_batch", 8))
    metrics.update(as_whole_video(whole))
    for row in rows:
        row.update(per_video.get(row["FileName"], {}))
    metrics.update(video_net_cost(module), arch=hp["arch"], frames=hp["frames"], period=hp["period"])
    write_metrics_json(out_json, task=hp["task"], split=split, n=len(names), **metrics)
    write_rows_csv(out_json.with_name("predictions.csv"), rows)
    atomic_write_bytes(out_json.with_name("area_curve.png"), area_curve_png(masks_dir, data, names[0]))
    return metrics


@torch.inference_mode()
def _reconstruction_metrics(module: TemporalMaskingModule, root, names, batch_size: int = 8) -> dict:
    """MSE of reconstructing centred clips with a fixed mask per clip (seeded by its index)."""
    hp = module.hparams
    ds = UniLVSegClips(root, names, frames=hp.frames, period=hp.period, norm=hp.norm, anchored=False, train=False)
    device = next(module.parameters()).device
    generator = torch.Generator().manual_seed(0)
    sq, sq_hidden, sq_visible = [], [], []
    cache = ds.cache
    for start in range(0, len(ds.names), batch_size):
        clips = []
        for name in ds.names[start:start + batch_size]:
            video = cache.get(Path(root) / "Videos" / f"{name}.avi")
            mid = max(0, (len(video) - hp.frames * hp.period) // 2)  # a deterministic clip per video
            idx = mid + hp.period * np.arange(hp.frames)
            x = _normalised(sampling.take_frames(video, idx), hp.norm, device)
            clips.append(x.permute(1, 0, 2, 3))
        video = torch.stack(clips)
        masked, hidden = mask_frames(video, hp.mask_ratio, module.fill, generator)
        err = ((module.net(masked) - video) ** 2).mean(dim=(1, 3, 4))  # (B, T)
        sq.append(err.mean(dim=1).cpu())
        sq_hidden.append(err[hidden].cpu())
        sq_visible.append(err[~hidden].cpu())
    per_clip = torch.cat(sq).numpy()
    return {"mse": float(per_clip.mean()), "mse_ci95": mean_ci(per_clip),
            "mse_masked": float(torch.cat(sq_hidden).mean()) if hp.mask_ratio > 0 else float("nan"),
            "mse_visible": float(torch.cat(sq_visible).mean()), "mask_ratio": float(hp.mask_ratio)}


# --------------------------------------------------------------------------- #
# step 4: the comparison on one dataset
# --------------------------------------------------------------------------- #

ROWS = ("2d-frame-by-frame", "unet3d-scratch", "unet3d-temporal-masking", "superimage")


def _opts(cfg_section: dict, seed: int, accelerator: str, devices) -> TrainerOptions:
    return TrainerOptions(max_epochs=int(cfg_section["max_epochs"]), accelerator=accelerator, seed=seed,
                          devices=int(devices) if str(devices).isdigit() else devices)


def _baseline_metrics(run: Path, root, names, cfg: dict) -> dict:
    """Score the 2D baseline's per-frame masks like the video models, and its cost per frame."""
    from echossl.pipelines.semisupervised_ef import load_segmenter

    metrics, rows = score_masks(run / "masks", root, names, cutoff=settings(cfg).get("hf_cutoff", 0.5))
    # a frame-by-frame model sees no clip: its centred-clip and whole-video Dice are the same figure
    metrics.update(as_whole_video({k: metrics[k] for k in WHOLE_VIDEO_KEYS if k in metrics}))
    try:
        module, hp = load_segmenter(best_checkpoint(run))
    except RuntimeError:  # a state dict of another version of the 2D segmenter
        raise EchosslError(f"{run} was trained with another version of the 2D segmenter; "
                           "delete that folder so that `reproduce unilvseg` trains it again") from None
    size = hp["norm"].get("size") or 112
    metrics.update(params_m=count_parameters(module.net) / 1e6,
                   gflops_per_frame=flops_per_frame(module.net, torch.zeros(1, 3, size, size)) / 1e9,
                   arch=hp["model"], frames=1, period=1)
    write_rows_csv(run / "predictions_unilvseg.csv", rows)
    return metrics


def reproduce_unilvseg(out, data=None, preset: str = "cpu", config=None, *, accelerator: str = "cpu",
                       devices: str = "1", videos: int | None = None, seed: int | None = None,
                       labeled_fraction: float | None = None) -> dict:
    """The four rows on one (simulated unless given) dataset; writes ``OUT/results.json`` and a figure.

    Finished rows (a ``metrics.json`` in their run folder) are reused, so an
    interrupted reproduction continues where it stopped.
    """
    from rich.console import Console

    from echossl.config import load_config
    from echossl.pipelines import semisupervised_ef as pipe

    console = Console(stderr=True)
    t0 = time.time()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = load_config(preset, config, {"seed": seed})
    s = settings(cfg)
    cfg["labeled_fraction"] = float(labeled_fraction if labeled_fraction is not None else s["labeled_fraction"])
    if data is None:
        from echossl.simulate.echonet import simulate_echonet

        data = out / "data"
        if not (data / "FileList.csv").exists():
            n = videos or s.get("simulate_videos") or cfg["simulate"]["videos"]
            console.rule(f"[bold]simulating {n} echo videos")
            simulate_echonet(data, n, seed=cfg["seed"], size=cfg["simulate"]["size"])
    data = Path(data)
    split = pipe.split_data(data, cfg)
    console.print(f"{len(split.labeled)} labeled TRAIN videos ({len(split.train)} for pre-training), "
                  f"{len(split.val)} VAL, {len(split.test)} TEST")
    runs = out / "runs"

    def step(title: str, run: Path, fn, **kw) -> Path:
        if (run / "metrics.json").exists():
            console.print(f"[dim]reusing {run}[/dim]")
            return run
        console.rule(f"[bold]{title}")
        return fn(data, run, cfg, split=split, **kw)

    seg_opts = _opts(s["train"], cfg["seed"], accelerator, devices)
    base_cfg = dict(cfg["seg"])
    if s.get("baseline_epochs"):
        base_cfg["max_epochs"] = int(s["baseline_epochs"])
    baseline = step("2D frame-by-frame baseline", runs / "2d", pipe.train_seg,
                    opts=_opts(base_cfg, cfg["seed"], accelerator, devices), css=False)
    scratch = step("3D U-Net from scratch", runs / "unet3d", train, opts=seg_opts, arch="unet3d")
    masking = step("temporal-masking pre-training (3D U-Net)", runs / "unet3d-pretrain", pretrain,
                   opts=_opts(s["pretrain"], cfg["seed"], accelerator, devices), arch="unet3d")
    finetuned = step("3D U-Net after temporal masking", runs / "unet3d-ssl", train, opts=seg_opts, arch="unet3d",
                     init=str(best_checkpoint(masking)))
    superimage = step("super image (2D U-Net on tiled frames)", runs / "superimage", train, opts=seg_opts,
                      arch="superimage")

    row_metrics = {
        ROWS[0]: _baseline_metrics(baseline, data, split.test, cfg),
        ROWS[1]: json.loads((scratch / "metrics.json").read_text()),
        ROWS[2]: json.loads((finetuned / "metrics.json").read_text()),
        ROWS[3]: json.loads((superimage / "metrics.json").read_text()),
    }
    mask_dirs = {ROWS[0]: baseline / "masks", ROWS[1]: scratch / "masks", ROWS[2]: finetuned / "masks",
                 ROWS[3]: superimage / "masks"}
    rows = [{"method": name, **{k: v for k, v in m.items() if k not in ("task", "split")}}
            for name, m in row_metrics.items()]
    base, ssl = row_metrics[ROWS[0]], row_metrics[ROWS[2]]
    targets = {
        "ssl_unet3d_dice_ge_2d": bool(ssl["dice"] >= base["dice"]),
        "ssl_unet3d_hf_power_lt_2d": bool(ssl["hf_power"] < base["hf_power"]),
        "ssl_unet3d_dice_unlabeled_gt_2d": (bool(ssl["dice_unlabeled"] > base["dice_unlabeled"])
                                            if ssl.get("dice_unlabeled") is not None
                                            and base.get("dice_unlabeled") is not None else None),
    }
    figure = out / "area_curves.png"
    atomic_write_bytes(figure, _area_curves_figure(mask_dirs, data, split.test[0]))
    results = {"preset": preset, "labeled_fraction": cfg["labeled_fraction"], "data": str(data), "split": "TEST",
               "n": len(split.test), "rows": rows, "targets": targets, "figure": str(figure),
               "seconds": round(time.time() - t0, 1)}
    atomic_write_text(out / "results.json", json.dumps(_plain(results), indent=2) + "\n")
    print_table(rows, targets)
    console.print(f"wrote {out / 'results.json'} and {figure}")
    return results


def _plain(value):
    """JSON-safe copy: NaN and infinities become None."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _area_curves_figure(mask_dirs: dict, root, name: str) -> bytes:
    """The LV-area curve of one TEST video by every method and the truth (cf. Fig. 6b)."""
    from echossl.evaluation.plots import line_plot

    series = {method: (np.load(Path(folder) / f"{name}.npy") >= 128).sum(axis=(1, 2))
              for method, folder in mask_dirs.items()}
    truth = load_truth(root, name)
    if truth is not None:
        series["truth"] = truth["masks"].sum(axis=(1, 2))
    length = min(len(v) for v in series.values())
    return line_plot(np.arange(length), {k: np.asarray(v[:length], dtype=float) for k, v in series.items()},
                     title=f"LV area, {name}", xlabel="frame", ylabel="LV area (pixels)")


def print_table(rows: list[dict], targets: dict | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="UniLVSeg on the simulator (TEST split)")
    for col in ("method", "Dice [95% CI]", "Dice ED", "Dice ES", "Dice whole video", "Dice unlab.", "HF power",
                "EF MAE", "params (M)", "GFLOPs/frame"):
        table.add_column(col)

    def pct(v):
        return "-" if v is None else f"{100 * v:.2f}"

    def num(v, digits=2):
        return "-" if v is None else f"{v:.{digits}f}"

    for r in rows:
        ci = r.get("dice_ci95") or [None, None]
        table.add_row(r["method"], f"{pct(r.get('dice'))} [{pct(ci[0])}, {pct(ci[1])}]", pct(r.get("dice_ed")),
                      pct(r.get("dice_es")), pct(r.get("dice_whole_video")), pct(r.get("dice_unlabeled")),
                      num(r.get("hf_power"), 4),
                      num(r.get("ef_mae")), num(r.get("params_m")), num(r.get("gflops_per_frame"), 3))
    Console().print(table)
    if targets:
        Console().print("targets: " + ", ".join(f"{k}={'met' if v else ('n/a' if v is None else 'MISSED')}"
                                                for k, v in targets.items()))
