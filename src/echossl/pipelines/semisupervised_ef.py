"""The CSS + teacher-student workflow of css-semisupervised-ef.md, step by step.

1. :func:`train_seg` — LV segmentation on the labeled ED/ES frames, with CSS on
   40-frame clips of all training videos when ``css=True``; then
   :func:`infer_masks` writes every frame's predicted mask to ``RUN/masks/``.
2. :func:`train_ef` — EF regression; with ``masks_run`` it is the 4-channel
   teacher f_m reading that run's masks, without it the video-only baseline.
3. :func:`train_distill` — the video-only student f_e from the frozen teacher.

Every step writes a run folder (CONTRACT.md) and ``metrics.json`` on the TEST
split; the CLI commands and ``echossl demo`` call these functions.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.utilities import CombinedLoader

from echossl.engine import load_checkpoint
from echossl.data.cache import FrameCache
from echossl.data.echonet import (
    EchoNetDynamic,
    EchoNetFrames,
    compute_mean_std,
    load_truth,
    read_filelist,
    read_tracings,
    ed_es_frames,
    trace_mask,
    validate,
    warn_problems,
)
from echossl.data.splits import labeled_subset
from echossl.engine import TrainerOptions, best_checkpoint, fit, prepare_run
from echossl.errors import EchosslError
from echossl.evaluation.metrics import dice_parts, dice_summary, regression_metrics, write_metrics_json
from echossl.methods.css import SegmentationModule
from echossl.methods.distill import TeacherStudent
from echossl.methods.ef import EFRegression
from echossl.progress import progress_bar
from echossl.engine.devices import config_loader as _loader
from echossl.engine.devices import training_device as _device


@dataclass
class EchoNetSplit:
    """Which videos play which part, and how frames are normalised."""

    root: Path
    labeled: list[str]
    unlabeled: list[str]
    val: list[str]
    test: list[str]
    norm: dict  # {"mean": [3], "std": [3], "size": int | None}

    @property
    def train(self) -> list[str]:
        return sorted(self.labeled + self.unlabeled)


def split_data(root: str | Path, cfg: dict, *, strict: bool = False) -> EchoNetSplit:
    """Labeled/unlabeled split of TRAIN by ``cfg['labeled_fraction']`` and ``cfg.get('split_seed', 0)``.

    ``cfg['seed']`` is not used here: it is the training seed, and the papers'
    protocol keeps one labeled subset while the training seed varies.

    Bad videos are left out with one warning that names them (or, with
    ``strict``, the first problem stops the run).
    """
    root = Path(root)
    table = read_filelist(root)
    usable, problems = validate(root, strict=strict)
    warn_problems(root, problems, stacklevel=2)  # once per process, shared with every dataset
    usable = set(usable)

    def names(split: str) -> list[str]:
        return sorted(f for f in table.loc[table["Split"] == split, "FileName"] if f in usable)

    train, val, test = names("TRAIN"), names("VAL"), names("TEST")
    if not train:
        raise EchosslError(f"{root / 'FileList.csv'} has no usable TRAIN videos")
    if not val:
        raise EchosslError(f"{root / 'FileList.csv'} has no usable VAL videos, which model selection needs")
    # the labeled subset and the normalisation sample follow the split seed only, so runs
    # that differ in --seed (training randomness) share one subset and one set of stats
    split_seed = int(cfg.get("split_seed", 0))
    labeled, unlabeled = labeled_subset(train, cfg["labeled_fraction"], split_seed)
    mean, std = compute_mean_std(root, train, samples=cfg["data"]["stats_videos"], seed=split_seed)
    norm = {"mean": [float(v) for v in np.ravel(mean)], "std": [float(v) for v in np.ravel(std)],
            "size": cfg["data"]["size"]}
    return EchoNetSplit(root, labeled, unlabeled, val, test, norm)


def _norm(split: EchoNetSplit, section: dict) -> dict:
    """The split's normalisation with the frame size a model section asks for (``size``)."""
    return {**split.norm, "size": section.get("size", split.norm["size"])}


def _clips(split: EchoNetSplit, split_name: str, names, *, norm, length, period, clips=1, pad=None, masks_dir=None):
    n = norm
    return EchoNetDynamic(split.root, split_name, filenames=names, length=length, period=period, clips=clips,
                          pad=pad, mean=n["mean"], std=n["std"], size=n["size"], masks_dir=masks_dir,
                          warn=False)  # split_data already warned once about skipped videos


def _frames(split: EchoNetSplit, split_name: str, names, *, norm, pad=None):
    n = norm
    return EchoNetFrames(split.root, split_name, filenames=names, mean=n["mean"], std=n["std"],
                         size=n["size"], pad=pad, warn=False)


# --------------------------------------------------------------------------- #
# Step 1: segmentation (+ CSS) and mask inference
# --------------------------------------------------------------------------- #

def train_seg(root, out, cfg: dict, opts: TrainerOptions, *, css: bool, init: str | None = None,
              split: EchoNetSplit | None = None) -> Path:
    """Train LV segmentation (``css=True`` adds ``w_css * L_css``), infer all masks, evaluate TEST."""
    split = split or split_data(root, cfg)
    run = prepare_run(out, cfg, opts.resume)
    seg = cfg["seg"]
    module = SegmentationModule(model=seg["model"], optimizer=seg["optimizer"], lr=seg["lr"],
                                momentum=seg["momentum"], weight_decay=seg["weight_decay"],
                                css=dict(seg["css"]) if css else None, norm=_norm(split, seg),
                                loss_reduction=seg.get("loss_reduction", "mean"))
    if init:
        from echossl.engine import load_init_weights

        load_init_weights(module.net, init, prefix="net.", allow_partial=bool(cfg.get("init_partial", False)),
                          record=run / "init.json")
    # "we sample 20 sequences from the labeled dataset and use only their ED and ES frames"
    norm = module.hparams.norm
    frames = _loader(_frames(split, "TRAIN", split.labeled, norm=norm, pad=seg.get("pad")), 2 * seg["batch_size"],
                     cfg, True)
    train = {"frames": frames}
    if css:
        c = seg["css"]
        clip_ds = _clips(split, "TRAIN", split.train, norm=norm, length=c["length"], period=c["period"])
        train["clip"] = _loader(clip_ds, c.get("clips_per_step", 1), cfg, True)
    # an epoch = every labeled video used once for supervised segmentation (Sec. IV-A)
    loaders = CombinedLoader(train, mode="min_size")
    val = _loader(_frames(split, "VAL", split.val, norm=norm), 2 * seg["batch_size"], cfg, False)
    if not fit(module, loaders, val, run, opts, monitor="val_dice", mode="max").is_global_zero:
        return run  # other DDP ranks: inference and evaluation happen once, on rank 0
    infer_masks(best_checkpoint(run), split.root, split.train + split.val + split.test, run / "masks",
                batch_size=seg.get("infer_batch", 64), device=_device(opts))
    evaluate_seg(run / "masks", split.root, split.test, run / "metrics.json")
    return run


def load_segmenter(checkpoint) -> tuple[SegmentationModule, dict]:
    ckpt = load_checkpoint(checkpoint, expect_task="seg")
    hp = dict(ckpt["hyper_parameters"])
    module = SegmentationModule(**hp)
    try:
        module.load_state_dict(ckpt["state_dict"])
    except RuntimeError:
        from echossl.errors import CheckpointError

        raise CheckpointError(f"checkpoint {ckpt['path']} does not fit the current {hp.get('model')} network "
                              "(it was made by another version of echossl)") from None
    return module.eval(), hp


def _normalise(frames: np.ndarray, norm: dict, device) -> torch.Tensor:
    """``(F, H, W, 3)`` uint8 -> ``(F, 3, h, w)`` normalised float, resized to ``norm['size']``."""
    x = torch.from_numpy(np.array(frames)).to(device).permute(0, 3, 1, 2).float()
    mean = torch.tensor(norm["mean"], device=device).view(1, 3, 1, 1)
    std = torch.tensor(norm["std"], device=device).view(1, 3, 1, 1)
    x = (x - mean) / std
    if norm.get("size") and tuple(x.shape[-2:]) != (norm["size"],) * 2:
        x = F.interpolate(x, size=(norm["size"],) * 2, mode="bilinear", align_corners=False)
    return x


@torch.inference_mode()
def segment_video(module: SegmentationModule, frames: np.ndarray, norm: dict, batch_size: int = 64) -> np.ndarray:
    """LV probability of every frame, ``(F, H, W, 3)`` uint8 -> ``(F, H, W)`` float32 at native size."""
    device = next(module.parameters()).device
    out = []
    for start in range(0, len(frames), batch_size):
        x = _normalise(frames[start:start + batch_size], norm, device)
        logits = module(x)
        if logits.shape[-2:] != frames.shape[1:3]:
            logits = F.interpolate(logits, size=frames.shape[1:3], mode="bilinear", align_corners=False)
        out.append(torch.sigmoid(logits[:, 0]).float().cpu())
    return torch.cat(out).numpy()


def infer_masks(checkpoint, root, filenames, out_dir, *, batch_size: int = 64, device=None) -> Path:
    """Write ``out_dir/<FileName>.npy``: uint8 ``(F, H, W)`` LV probability x 255, every frame.

    This is the per-run mask cache that the multi-input teacher reads (``RUN/masks``).
    """
    module, hp = load_segmenter(checkpoint)
    module.to(device or "cpu")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cache = FrameCache()
    for name in progress_bar(filenames, "segmenting every frame"):
        probs = segment_video(module, cache.get(Path(root) / "Videos" / f"{name}.avi"), hp["norm"], batch_size)
        tmp = out_dir / f".{name}.tmp.npy"
        np.save(tmp, np.rint(probs * 255).astype(np.uint8))
        tmp.replace(out_dir / f"{name}.npy")
    return out_dir


def evaluate_seg(masks_dir, root, names, out_json, split_name: str = "TEST", bootstrap: int = 1000) -> dict:
    """Dice of predicted masks on the traced ED and ES frames and, where the
    simulator's per-frame truth exists, on every other (unlabeled) frame.

    ``dice`` pools the traced frames (``2·ΣI / (Σ|A| + Σ|B|)``, as the reference);
    ``dice_frame_mean`` averages their per-frame Dice; ``dice_ed``, ``dice_es`` and
    ``dice_unlabeled`` are pooled too (with ``dice_unlabeled_frame_mean``). Every
    ``*_ci95`` resamples videos (:func:`echossl.evaluation.metrics.dice_summary`).
    """
    traces = read_tracings(root)
    masks_dir = Path(masks_dir)

    parts = {"ed": ([], [], []), "es": ([], [], []), "unl": ([], [], [])}  # inter, total, video

    def add(key, name, inter, total):
        inter, total = np.atleast_1d(inter), np.atleast_1d(total)
        parts[key][0].append(inter)
        parts[key][1].append(total)
        parts[key][2].append(np.full(inter.shape, name, dtype=object))

    for name in names:
        pred = np.load(masks_dir / f"{name}.npy") >= 128
        ed, es = ed_es_frames(traces[name])
        h, w = pred.shape[1:]
        add("ed", name, *dice_parts(pred[ed], trace_mask(traces[name][ed], h, w)))
        add("es", name, *dice_parts(pred[es], trace_mask(traces[name][es], h, w)))
        truth = load_truth(root, name)
        if truth is not None:
            other = np.setdiff1d(np.arange(min(len(pred), len(truth["masks"]))), [ed, es])
            add("unl", name, *dice_parts(pred[other], truth["masks"][other]))

    def cat(key):
        return [np.concatenate(p) if p else np.zeros(0) for p in parts[key]]

    ed_i, ed_t, ed_g = cat("ed")
    es_i, es_t, es_g = cat("es")
    metrics = dice_summary(np.concatenate([ed_i, es_i]), np.concatenate([ed_t, es_t]),
                           np.concatenate([ed_g, es_g]), bootstrap=bootstrap)
    metrics.update(dice_summary(ed_i, ed_t, ed_g, prefix="dice_ed", frame_mean=False, bootstrap=bootstrap))
    metrics.update(dice_summary(es_i, es_t, es_g, prefix="dice_es", frame_mean=False, bootstrap=bootstrap))
    if parts["unl"][0]:
        metrics.update(dice_summary(*cat("unl"), prefix="dice_unlabeled", bootstrap=bootstrap))
    write_metrics_json(out_json, task="seg", split=split_name, n=len(names), **metrics)
    return metrics


# --------------------------------------------------------------------------- #
# Step 2: EF regression (video-only baseline, or the multi-input teacher)
# --------------------------------------------------------------------------- #

def train_ef(root, out, cfg: dict, opts: TrainerOptions, *, masks_run=None, init: str | None = None,
             split: EchoNetSplit | None = None) -> Path:
    """Video-only EF regression, or the 4-channel teacher f_m when ``masks_run`` is given."""
    split = split or split_data(root, cfg)
    run = prepare_run(out, cfg, opts.resume)
    ef = cfg["ef"]
    masks_dir = str(Path(masks_run) / "masks") if masks_run else None
    if masks_dir and not Path(masks_dir).is_dir():
        raise EchosslError(f"{masks_run} has no masks/ folder; train it with `echossl train seg` first")
    labeled_ef = [float(v) for v in _ef_of(split.root, split.labeled)]
    module = EFRegression(model=ef["model"], in_channels=4 if masks_dir else 3,
                          mean_target=float(np.mean(labeled_ef)), optimizer=ef["optimizer"], lr=ef["lr"],
                          momentum=ef["momentum"], weight_decay=ef["weight_decay"], step_size=ef["step_size"],
                          norm=_norm(split, ef), masks_dir=masks_dir, model_kwargs=ef.get("model_kwargs"))
    if masks_dir:
        init_mask_channel(module.net, ef.get("mask_init", "mean"), seed=opts.seed)
    if init:
        from echossl.engine import load_init_weights

        # the teacher's mask channel: ef.init_extra_channels (keep its random init, as the authors)
        load_init_weights(module.net, init, prefix="net.", allow_partial=bool(cfg.get("init_partial", False)),
                          extra_channels=ef.get("init_extra_channels", "keep"), record=run / "init.json")
    norm = module.hparams.norm
    train = _clips(split, "TRAIN", split.labeled, norm=norm, length=ef["length"], period=ef["period"],
                   pad=ef.get("pad"), masks_dir=masks_dir)
    val = _clips(split, "VAL", split.val, norm=norm, length=ef["length"], period=ef["period"],
                 clips=ef["val_clips"], masks_dir=masks_dir)
    trainer = fit(module, _loader(train, ef["batch_size"], cfg, True, drop_last=len(train) > ef["batch_size"]),
                  _loader(val, ef["batch_size"], cfg, False), run, opts, monitor="val_mae", mode="min")
    if not trainer.is_global_zero:
        return run
    evaluate_ef(best_checkpoint(run), split.root, "TEST", run / "metrics.json", cfg=cfg, device=_device(opts))
    return run


MASK_INITS = ("mean", "negated", "random")


def init_mask_channel(net: torch.nn.Module, how: str, seed: int | None = 0) -> None:
    """Initialise the teacher's 4th (mask) input channel of its first convolution (``ef.mask_init``).

    The video's three channels carry the same grey image (the conv sees it through
    the *sum* of its three RGB filters), and the mask is ``2p - 1``: +1 in the
    LV cavity, which is *dark* in the image.

    - ``mean``: the mean of the RGB filters (:func:`echossl.models.video.widen_input`).
      The mask then enters every filter as a third of a grey image of opposite
      sign: the cavity's +1 cancels part of its own dark image, so at the start
      the mask lowers the LV's contrast instead of adding a cue.
    - ``negated``: minus the *sum* of the RGB filters, i.e. the filters see
      ``image - mask`` at the same scale as the image: the mask reinforces the
      cavity's dark-on-bright edge from the first step.
    - ``random``: a fresh Kaiming-uniform filter (the layer's default) scaled by
      √3 like the sum of three RGB filters: the mask drives features of its own,
      independent of the image (the authors' random channel).
    """
    conv = net.stem[0]
    if conv.in_channels != 4:
        return
    if how not in MASK_INITS:
        raise EchosslError(f"ef.mask_init must be one of {', '.join(MASK_INITS)}, got {how!r}")
    with torch.no_grad():
        rgb = conv.weight[:, :3]
        if how == "mean":
            conv.weight[:, 3:] = rgb.mean(dim=1, keepdim=True)
        elif how == "negated":
            conv.weight[:, 3:] = -rgb.sum(dim=1, keepdim=True)
        else:
            gen = torch.Generator().manual_seed(int(seed or 0) + 4)
            fan_in = conv.weight[0].numel()
            bound = 1.0 / fan_in**0.5 * 3.0**0.5  # the layer default, kaiming_uniform(a=sqrt(5)), x sqrt(3)
            conv.weight[:, 3:] = (torch.rand(conv.weight[:, 3:].shape, generator=gen) * 2 - 1) * bound


def write_truth_masks(root, filenames, out_dir) -> Path:
    """The oracle's mask cache: the simulator's true LV of every frame as ``out_dir/<FileName>.npy``.

    Same format as :func:`infer_masks` (uint8 ``(F, H, W)``, 255 = LV), so the
    4-channel teacher trained on ``out_dir.parent`` as ``masks_run`` is the
    positive control "teacher with true masks" (issue 14). Raises when the data
    has no ``echossl_truth/`` files (real data has no oracle).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in filenames:
        target = out_dir / f"{name}.npy"
        if target.exists():
            continue
        truth = load_truth(root, name)
        if truth is None:
            raise EchosslError(f"{Path(root) / 'echossl_truth'} has no truth file for {name}; "
                               "the true-mask oracle needs simulated data")
        tmp = out_dir / f".{name}.{os.getpid()}.tmp.npy"  # per process: two runs may fill one cache
        np.save(tmp, truth["masks"].astype(np.uint8) * 255)
        tmp.replace(target)
    return out_dir


def _ef_of(root, names) -> np.ndarray:
    table = read_filelist(root).set_index("FileName")
    return table.loc[list(names), "EF"].to_numpy(dtype=np.float64)


def train_distill(root, out, cfg: dict, opts: TrainerOptions, *, teacher_run, split: EchoNetSplit | None = None) -> Path:
    """Teacher-student distillation (eqs. 11-13) from a trained 4-channel teacher run."""
    split = split or split_data(root, cfg)
    teacher_ckpt = best_checkpoint(teacher_run) if Path(teacher_run).is_dir() else Path(teacher_run)
    teacher = load_checkpoint(teacher_ckpt, expect_task="ef")
    thp = teacher["hyper_parameters"]
    if thp.get("in_channels") != 4 or not thp.get("masks_dir"):
        raise EchosslError(f"{teacher_ckpt} is a video-only EF model; the teacher must be trained with --masks")
    run = prepare_run(out, cfg, opts.resume)
    ef, dst = cfg["ef"], cfg["distill"]
    module = TeacherStudent(model=thp["model"], teacher_checkpoint=str(teacher_ckpt), w_ulb=dst["w_ulb"],
                            optimizer=ef["optimizer"], lr=ef["lr"], momentum=ef["momentum"],
                            weight_decay=ef["weight_decay"], step_size=ef["step_size"], norm=thp["norm"],
                            student_first_conv=dst["student_first_conv"], mean_target=thp["mean_target"],
                            masks_dir=thp["masks_dir"], model_kwargs=thp.get("model_kwargs"))
    masks_dir = thp["masks_dir"]
    norm = thp["norm"]  # the student sees frames exactly as its teacher did
    lb = _clips(split, "TRAIN", split.labeled, norm=norm, length=ef["length"], period=ef["period"],
                pad=ef.get("pad"), masks_dir=masks_dir)
    ulb_names = split.unlabeled or split.labeled
    ulb = _clips(split, "TRAIN", ulb_names, norm=norm, length=ef["length"], period=ef["period"],
                 pad=ef.get("pad"), masks_dir=masks_dir)
    # each step draws labeled and unlabeled clips in the ratio 20:10 (Sec. IV-A)
    loaders = CombinedLoader({"labeled": _loader(lb, dst["labeled_batch"], cfg, True),
                              "unlabeled": _loader(ulb, dst["unlabeled_batch"], cfg, True)},
                             mode=dst.get("epoch_mode", "min_size"))
    val = _clips(split, "VAL", split.val, norm=norm, length=ef["length"], period=ef["period"], clips=ef["val_clips"])
    if opts.max_epochs is None:
        opts.max_epochs = dst["max_epochs"]
    trainer = fit(module, loaders, _loader(val, ef["batch_size"], cfg, False), run, opts, monitor="val_mae", mode="min")
    if not trainer.is_global_zero:
        return run
    evaluate_ef(best_checkpoint(run), split.root, "TEST", run / "metrics.json", cfg=cfg, device=_device(opts))
    return run


# --------------------------------------------------------------------------- #
# Evaluation of EF models
# --------------------------------------------------------------------------- #

def load_ef_model(checkpoint):
    """An EF regressor (EFRegression or the distilled student) from a checkpoint, in eval mode."""
    ckpt = load_checkpoint(checkpoint, expect_task=("ef", "distill"))
    hp = dict(ckpt["hyper_parameters"])
    if hp["task"] == "distill":
        hp["teacher_checkpoint"] = None  # the student alone is needed for inference
        module = TeacherStudent(**hp)
    else:
        module = EFRegression(**hp)
    module.load_state_dict(ckpt["state_dict"])
    return module.eval(), hp


@torch.inference_mode()
def predict_ef_dataset(module, dataset: EchoNetDynamic, batch_size: int = 16, device=None,
                       description: str = "predicting EF") -> np.ndarray:
    """Average EF over every clip of each video (test-time augmentation), batching clips."""
    device = device or torch.device("cpu")
    module.to(device)
    preds = []
    for i in progress_bar(range(len(dataset)), description):
        clips = dataset[i]["video"]
        clips = clips.unsqueeze(0) if clips.dim() == 4 else clips
        out = [forward_clips(module.net, clips[s:s + batch_size][:, : _in_channels(module)], device)
               for s in range(0, len(clips), batch_size)]
        preds.append(float(torch.cat(out).mean()))
    return np.asarray(preds)


def _in_channels(module) -> int:
    return module.net.stem[0].in_channels


def evaluate_ef(checkpoint, root, split_name: str, out_json, *, cfg: dict, device=None, bootstrap: int = 1000,
                masks_dir: str | None = None) -> dict:
    """MAE, RMSE, R^2 with bootstrap 95% CIs on one split; writes metrics.json."""
    module, hp = load_ef_model(checkpoint)
    ef = cfg["ef"]
    masks_dir = masks_dir or (hp.get("masks_dir") if _in_channels(module) == 4 else None)
    ds = EchoNetDynamic(root, split_name, length=ef["length"], period=ef["period"], clips=ef["test_clips"],
                        mean=hp["norm"]["mean"], std=hp["norm"]["std"], size=hp["norm"]["size"], masks_dir=masks_dir)
    if len(ds) == 0:
        raise EchosslError(f"{root} has no usable {split_name} videos to evaluate")
    pred = predict_ef_dataset(module, ds, ef.get("infer_batch", 16), device, f"EF on {split_name}")
    true = np.asarray(ds.ef, dtype=np.float64)
    metrics = regression_metrics(true, pred, bootstrap=bootstrap, seed=0)
    write_metrics_json(out_json, task=hp["task"], split=split_name, n=len(true), **metrics)
    _save_npz(Path(out_json).with_name("predictions.npz"), filenames=np.asarray(ds.filenames), ef_true=true,
              ef_pred=pred)
    return {**metrics, "filenames": list(ds.filenames), "ef_true": true, "ef_pred": pred}


def _save_npz(path: Path, **arrays) -> None:
    """``np.savez``, written atomically like every other output file."""
    import io

    from echossl.io import atomic_write_bytes

    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    atomic_write_bytes(path, buffer.getvalue())


def clips_from_frames(x: torch.Tensor, length: int, period: int, clips="all") -> torch.Tensor:
    """``(F, C, H, W)`` normalised frames -> ``(K, C, T, H, W)`` clips, zero-padded past the end."""
    from echossl.data import sampling

    n = x.shape[0]
    starts = (sampling.all_starts(n, length, period) if clips == "all"
              else sampling.spaced_starts(n, length, period, int(clips)))
    idx = torch.from_numpy(starts[:, None] + period * np.arange(length)[None, :])  # (K, T)
    padded = torch.cat([x, torch.zeros_like(x[:1])])  # index n = a zero frame
    return padded[idx.clamp(max=n)].permute(0, 2, 1, 3, 4)


def forward_clips(net: torch.nn.Module, clips: torch.Tensor, device: torch.device) -> torch.Tensor:
    """EF of a batch of clips ``(B, C, T, H, W)`` -> ``(B,)`` float32, on ``device``.

    On CUDA the clips go channels-last-3d under bf16 autocast (cuDNN's fast 3D
    convolutions). On CPU, ``echossl bench`` measured channels-last within noise
    of contiguous inputs (10.2 vs 10.5 videos/s), and bf16 is emulated on most
    CPUs, so CPU inputs stay contiguous float32.
    """
    clips = clips.to(device, non_blocking=True)
    if device.type != "cuda":
        return net(clips).reshape(-1)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        return net(clips.contiguous(memory_format=torch.channels_last_3d)).float().reshape(-1)


@torch.inference_mode()
def predict_ef_frames(module, x: torch.Tensor, length: int, period: int, clips="all", batch_size: int = 16) -> float:
    """Average EF over the clips of one video given as normalised frames ``(F, C, H, W)``.

    All clips are cut in one indexing operation and run ``batch_size`` at a time.
    """
    device = next(module.parameters()).device
    all_clips = clips_from_frames(x, length, period, clips)
    preds = [forward_clips(module.net, all_clips[s:s + batch_size], device)
             for s in range(0, len(all_clips), batch_size)]
    return float(torch.cat(preds).mean())
