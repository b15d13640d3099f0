"""The MR-jet workflow of mrjet-jigsaw-color-ssl.md.

1. :func:`pretrain_jigsaw` — jigsaw (+ colour tolerance) pre-training of ``phi``
   on frames of all TRAIN videos (no labels used).
2. :func:`train_mrjet` — max-frame recognition + jet segmentation on the labeled
   share of TRAIN (``labeled_fraction``), optionally initialised from step 1.
3. :func:`reproduce_mrjet` — random init vs jigsaw-only vs jigsaw+colour at
   several label fractions on one data set; a table on the TEST split.

Every training step writes a run folder (CONTRACT.md) and ``metrics.json``.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from echossl.engine import load_checkpoint, load_init_weights
from echossl.data.cache import FrameCache
from echossl.data.mrjet import MRJetClips, MRJetFrames, centre_box, load_truth, prepare_frames, split_names
from echossl.engine import TrainerOptions, best_checkpoint, fit, prepare_run
from echossl.errors import EchosslError
from echossl.evaluation.metrics import dice, mean_ci, write_metrics_json
from echossl.io import atomic_write_text
from echossl.methods.mrjet import JigsawModule, JigsawViews, MRJetModule, predict_peaks
from echossl.progress import progress_bar
from echossl.simulate.mrjet import SEVERITIES, severity_grade
from echossl.engine.devices import config_loader as _loader
from echossl.engine.devices import training_device as _device

TASKS = ("jigsaw", "mrjet")


def _views(cfg: dict) -> JigsawViews:
    j, norm = cfg["mrjet"]["jigsaw"], cfg["mrjet"]["norm"]
    return JigsawViews(crop_size=j["crop_size"], scale=j["scale"], grid=j["grid"], gap=j["gap"], jitter=j["jitter"],
                       hue=j["hue"], grayscale=j["grayscale"], blur=j["blur"], mean=norm["mean"], std=norm["std"],
                       color_strength=j.get("color_strength"), tile_jitter=bool(j.get("tile_jitter", True)),
                       tile_norm=bool(j.get("tile_norm", True)))


def _threads(cfg: dict) -> None:
    """Intra-op threads (``mrjet.threads``): on a small shared CPU one thread runs these
    small convolutions several times faster than two contending ones."""
    n = cfg["mrjet"].get("threads")
    if n:
        torch.set_num_threads(int(n))


# --------------------------------------------------------------------------- #
# Step 1: jigsaw pre-training
# --------------------------------------------------------------------------- #

def pretrain_jigsaw(data, out, cfg: dict, opts: TrainerOptions, *, color: bool = True, init=None,
                    strict: bool = False) -> Path:
    """Pre-train ``phi`` with ``L_sr`` (+ ``L_c`` when ``color``) on TRAIN frames; VAL frames for selection.

    ``init``: a jigsaw run or checkpoint to start from (matching tensors only).
    """
    _threads(cfg)
    names = split_names(data, strict=strict)
    if not names["TRAIN"] or not names["VAL"]:
        raise EchosslError(f"{Path(data) / 'MRJetList.csv'} needs usable TRAIN and VAL videos for pre-training")
    run = prepare_run(out, cfg, opts.resume)
    j = cfg["mrjet"]["jigsaw"]
    module = JigsawModule(backbone=j["backbone"], n_permutations=j["n_permutations"], perm_seed=j["perm_seed"],
                          perm_criterion=j["perm_criterion"], color=color, color_weight=j["color_weight"],
                          tau=j["tau"], grid=j["grid"], optimizer=j["optimizer"], lr=j["lr"],
                          momentum=j["momentum"], weight_decay=j["weight_decay"])
    if init and not opts.resume:
        path = Path(init)
        load_init_weights(module.net, path, prefix="net.", allow_partial=bool(cfg.get("init_partial", False)),
                          record=run / "init.json")
    views = _views(cfg)
    train = MRJetFrames(data, names["TRAIN"], frames_per_video=j["frames_per_video"], transform=views)
    val = MRJetFrames(data, names["VAL"], frames_per_video=max(2, j["frames_per_video"] // 4), transform=views)
    # L_c needs negatives: never a last batch of a single frame
    trainer = fit(module, _loader(train, j["batch_size"], cfg, True, drop_last=len(train) > j["batch_size"]),
                  _loader(val, j["batch_size"], cfg, False), run, opts, monitor="val_loss", mode="min")
    if not trainer.is_global_zero:
        return run  # under DDP, evaluate once
    evaluate_jigsaw(best_checkpoint(run), data, "TEST", run / "metrics.json", cfg=cfg, names=names["TEST"])
    return run


@torch.inference_mode()
def evaluate_jigsaw(checkpoint, data, split: str, out_json, *, cfg: dict, names=None) -> dict:
    """Permutation accuracy (``accuracy``) and losses of a jigsaw checkpoint on a split's frames."""
    ckpt = load_checkpoint(checkpoint, expect_task="jigsaw")
    module = JigsawModule(**ckpt["hyper_parameters"])
    module.load_state_dict(ckpt["state_dict"])
    module.eval()
    names = names if names is not None else split_names(data)[split]
    if not names:
        raise EchosslError(f"{data} has no usable {split} videos to evaluate")
    torch.manual_seed(0)
    np.random.seed(0)
    dataset = MRJetFrames(data, names, frames_per_video=8, transform=_views(cfg))
    accs, losses, n = [], [], 0
    for tiles in DataLoader(dataset, batch_size=32):
        if tiles.shape[0] < 2:
            continue
        out = module.losses(tiles)
        accs.append(float(out["acc"]) * len(tiles))
        losses.append(float(out["loss"]) * len(tiles))
        n += len(tiles)
    return write_metrics_json(out_json, task="jigsaw", split=split, n=n, accuracy=sum(accs) / max(n, 1),
                              loss=sum(losses) / max(n, 1))


# --------------------------------------------------------------------------- #
# Step 2: recognition + segmentation
# --------------------------------------------------------------------------- #

def labeled_videos(train: list[str], fraction: float, seed: int) -> list[str]:
    """The labeled TRAIN videos: :func:`echossl.data.splits.labeled_subset` with the *split* seed."""
    from echossl.data.splits import labeled_subset

    return labeled_subset(train, fraction, seed)[0]


def train_mrjet(data, out, cfg: dict, opts: TrainerOptions, *, init: str | Path | None = None,
                strict: bool = False) -> Path:
    """Train ``L_r + L_s`` on the labeled TRAIN videos, select on VAL, evaluate TEST into ``metrics.json``.

    ``init``: a jigsaw (or mrjet) run folder or checkpoint whose backbone ``phi`` initialises ours.
    """
    _threads(cfg)
    names = split_names(data, strict=strict)
    if not names["TRAIN"] or not names["VAL"]:
        raise EchosslError(f"{Path(data) / 'MRJetList.csv'} needs usable TRAIN and VAL videos")
    t, norm = cfg["mrjet"]["train"], cfg["mrjet"]["norm"]
    labeled = labeled_videos(names["TRAIN"], cfg["labeled_fraction"], cfg.get("split_seed", 0))
    run = prepare_run(out, cfg, opts.resume)
    norm = {"mean": list(norm["mean"]), "std": list(norm["std"]), "crop": float(t["crop"]), "size": int(t["size"])}
    module = MRJetModule(backbone=t["backbone"], lstm_hidden=t["lstm_hidden"], recog_hidden=t["recog_hidden"],
                         seg_weight=t["seg_weight"], optimizer=t["optimizer"], lr=t["lr"], momentum=t["momentum"],
                         weight_decay=t["weight_decay"], peak_height=_fixed_height(t["peak_height"]),
                         peak_distance=t["peak_distance"], norm=norm,
                         window=int(t["length"]) if t.get("test_windows", True) else None)
    if init and not opts.resume:
        path = Path(init)
        path = best_checkpoint(path) if path.is_dir() else path
        load_init_weights(module.net.backbone, path, prefix="net.backbone.",
                          allow_partial=bool(cfg.get("init_partial", False)), record=run / "init.json")
    common = {"crop": norm["crop"], "size": norm["size"], "mean": norm["mean"], "std": norm["std"]}
    train = MRJetClips(data, labeled, length=t["length"], train=True, samples=t["samples_per_epoch"], **common)
    val = MRJetClips(data, names["VAL"], length=None, **common)
    trainer = fit(module, _loader(train, t["batch_size"], cfg, True), _loader(val, 1, cfg, False), run, opts,
                  monitor="val_loss", mode="min")
    if not trainer.is_global_zero:
        return run  # under DDP, evaluate once
    extra = {"labeled_videos": len(labeled)}
    height = None
    if str(t["peak_height"]).lower() == "val":
        module = load_mrjet(best_checkpoint(run)).to(_device(opts))
        height, val_f1 = choose_peak_height(module, data, names["VAL"])
        atomic_write_text(run / "peak_height.json", json.dumps({"peak_height": height, "val_f1_within2": val_f1}))
        extra["peak_height_val_f1"] = val_f1
    evaluate_mrjet(best_checkpoint(run), data, "TEST", run / "metrics.json", names=names["TEST"],
                   device=_device(opts), extra=extra, peak_height=height)
    return run


PEAK_HEIGHTS = tuple(round(0.05 * i, 2) for i in range(1, 20))  # 0.05 ... 0.95


def _fixed_height(value) -> float:
    """The checkpoint's fallback threshold: a number as given; ``val`` -> 0.3 until VAL picks one."""
    return 0.3 if str(value).lower() == "val" else float(value)


def peak_counts(e_pred: np.ndarray, true_k: np.ndarray, height: float, distance: int) -> tuple[int, int, int, int]:
    """``(hits_exact, hits_within2, n_pred, good_pred_within2)`` of one video's E' at ``height``."""
    peaks = predict_peaks(e_pred, height, distance)
    h0 = h2 = good = 0
    if true_k.size and peaks.size:
        gap = np.abs(true_k[:, None] - peaks[None, :])
        h0, h2, good = int((gap.min(1) == 0).sum()), int((gap.min(1) <= 2).sum()), int((gap.min(0) <= 2).sum())
    return h0, h2, int(peaks.size), good


def choose_peak_height(module: MRJetModule, data, names: list[str], heights=PEAK_HEIGHTS) -> tuple[float, float]:
    """The E' peak threshold with the best within-2-frames F1 of max-frame detection on ``names`` (VAL).

    A fixed 0.3 counted nothing when a weak model's E' never reached it (the 100 %-label
    random-init arm scored 0 hits); the threshold is a decision rule, so it is fitted on VAL
    like any other. Ties go to the lower threshold. Returns ``(height, F1)``.
    """
    cache = FrameCache()
    videos = []
    for name in names:
        frames = cache.get(Path(data) / "Videos" / f"{name}.avi")
        truth = load_truth(data, name)
        n = min(len(frames), len(truth["e"]))
        e_pred, _ = infer_video(module, np.asarray(frames[:n]), segment=False)
        videos.append((e_pred, np.flatnonzero(truth["e"][:n])))
    n_true = sum(k.size for _, k in videos)
    best = (float(module.hparams.peak_height), float("nan"))
    if not n_true:
        return best
    for h in heights:
        c = np.array([peak_counts(e, k, h, module.hparams.peak_distance) for e, k in videos]).sum(0)
        recall = c[1] / n_true
        precision = c[3] / c[2] if c[2] else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
        if not best[1] == best[1] or f1 > best[1] + 1e-12:
            best = (float(h), float(f1))
    return best


def load_mrjet(checkpoint) -> MRJetModule:
    ckpt = load_checkpoint(checkpoint, expect_task="mrjet")
    module = MRJetModule(**ckpt["hyper_parameters"])
    module.load_state_dict(ckpt["state_dict"])
    return module.eval()


def window_starts(n: int, window: int | None) -> list[tuple[int, int]]:
    """Consecutive ``(start, stop)`` windows of ``window`` frames covering ``n`` frames.

    The last window is shifted back to end at ``n`` (full length, as training clips) when the
    video is longer than one window; it overlaps the previous one, whose frames keep their
    first prediction. ``None`` or ``n <= window``: one window, the whole video."""
    if not window or n <= window:
        return [(0, n)]
    starts = list(range(0, n - window + 1, window))
    if starts[-1] + window < n:
        starts.append(n - window)
    return [(s, s + window) for s in starts]


@torch.inference_mode()
def infer_video(module: MRJetModule, frames: np.ndarray, segment: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """``E'`` ``(F,)`` and jet probability ``(F, H, W)`` at native size (zero outside the centre crop).

    The jet of every frame ``t`` is decoded from ``LSTM(f_s..f_t)``, i.e. as if ``t`` were a max
    frame, where ``s`` starts ``t``'s window: with ``hparams.window`` (the training clip length)
    the video is processed in windows of that many frames, so that the LSTM and the
    recognition decoder see the same temporal context as in training (:func:`window_starts`).
    ``segment=False`` skips the jet decoder (the probability map is then all zero).
    """
    norm = module.hparams.norm
    device = next(module.parameters()).device
    video = prepare_frames(np.asarray(frames), norm["crop"], norm["size"], norm["mean"], norm["std"])
    video = video.unsqueeze(0).to(device)
    n = video.shape[1]
    e_pred = torch.zeros(n, device=device)
    logits = torch.zeros(n, 1, *video.shape[-2:], device=device)
    done = 0
    for start, stop in window_starts(n, module.hparams.get("window")):
        pyramid = module.net.encode(video[:, start:stop])
        e_pred[done:stop] = module.net.recognise(pyramid)[0][done - start:]
        if segment:
            t = torch.arange(done - start, stop - start, device=device)
            logits[done:stop] = module.net.segment(pyramid, torch.zeros_like(t), t, video.shape[-2:])
        done = stop
    h, w = frames.shape[1:3]
    top, left, side = centre_box(h, w, norm["crop"])
    prob = torch.sigmoid(F.interpolate(logits, size=(side, side), mode="bilinear", align_corners=False))[:, 0]
    full = np.zeros((n, h, w), dtype=np.float32)
    full[:, top:top + side, left:left + side] = prob.float().cpu().numpy()
    return e_pred.float().cpu().numpy(), full


def _balanced_accuracy(y_true, y_pred) -> float:
    from sklearn.metrics import balanced_accuracy_score

    return float(balanced_accuracy_score(y_true, y_pred)) if len(set(y_true)) > 1 else float("nan")


def evaluate_mrjet(checkpoint, data, split: str, out_json, *, names=None, device=None, extra=None,
                   peak_height: float | None = None) -> dict:
    """Metrics of an mrjet checkpoint on a split; writes ``metrics.json``.

    - ``hit_rate_exact`` / ``hit_rate_within2``: share of true max frames with a
      predicted max frame (a peak of ``E'``, :func:`predict_peaks`) at the same
      frame / within 2 frames; ``peak_precision_within2``: share of predicted max
      frames within 2 frames of a true one (no-jet videos count their false peaks).
    - ``dice``: Dice of the jet mask at the true max frames (from ``LSTM(f_1..f_k)``).
    - ``ratio_mae``: mean absolute error of jet-area / LA-area at the true max frames
      (LA area from the ground truth: the model does not segment the atrium).
    - ``accuracy`` / ``balanced_accuracy``: severity grade (none/mild/moderate/severe)
      per video, predicted as the grade of the largest predicted ratio over the
      predicted max frames (``none`` without any).
    """
    module = load_mrjet(checkpoint).to(device or "cpu")
    hp = module.hparams
    if peak_height is None:  # the threshold the training run chose on VAL, when it did
        chosen = Path(checkpoint).resolve().parent.parent / "peak_height.json"
        peak_height = json.loads(chosen.read_text())["peak_height"] if chosen.is_file() else hp.peak_height
    names = names if names is not None else split_names(data)[split]
    if not names:
        raise EchosslError(f"{data} has no usable {split} videos to evaluate")
    cache = FrameCache()
    hits0 = hits2 = n_true = n_pred = good_pred = 0
    dices, ratio_err, grade_true, grade_pred = [], [], [], []
    per_video = []  # per TEST video: the parts that paired claims resample by video
    for name in progress_bar(names, f"evaluating {split}"):
        frames = cache.get(Path(data) / "Videos" / f"{name}.avi")
        truth = load_truth(data, name)
        n = min(len(frames), len(truth["e"]))
        e_pred, prob = infer_video(module, np.asarray(frames[:n]))
        true_k = np.flatnonzero(truth["e"][:n])
        peaks = predict_peaks(e_pred, peak_height, hp.peak_distance)
        v0, v2, vp, vg = peak_counts(e_pred, true_k, peak_height, hp.peak_distance)
        hits0, hits2, good_pred = hits0 + v0, hits2 + v2, good_pred + vg
        n_true += true_k.size
        n_pred += peaks.size
        pred_mask = prob >= 0.5
        la_area = np.maximum(truth["la"][:n].sum(axis=(1, 2)), 1)
        pred_ratio = pred_mask.sum(axis=(1, 2)) / la_area
        video_dice = np.atleast_1d(dice(pred_mask[true_k], truth["jet"][true_k])).tolist() if true_k.size else []
        per_video.append({"name": name, "n_true": int(true_k.size), "hits_exact": v0, "hits_within2": v2,
                          "n_pred": vp, "good_pred_within2": vg, "dice": [float(x) for x in video_dice]})
        if true_k.size:
            dices.extend(video_dice)
            true_ratio = truth["jet"][true_k].sum(axis=(1, 2)) / la_area[true_k]
            ratio_err.extend(np.abs(pred_ratio[true_k] - true_ratio).tolist())
        grade_true.append(int(truth["severity"]) if "severity" in truth else
                          severity_grade(float(truth["ratio"][true_k].max()) if true_k.size else 0.0))
        grade_pred.append(severity_grade(float(pred_ratio[peaks].max())) if peaks.size else 0)
    grade_true, grade_pred = np.array(grade_true), np.array(grade_pred)
    metrics = {
        "hit_rate_exact": hits0 / n_true if n_true else float("nan"),
        "hit_rate_within2": hits2 / n_true if n_true else float("nan"),
        "peak_precision_within2": good_pred / n_pred if n_pred else float("nan"),
        "dice": float(np.mean(dices)) if dices else float("nan"),
        "dice_ci95": mean_ci(dices),
        "ratio_mae": float(np.mean(ratio_err)) if ratio_err else float("nan"),
        "accuracy": float(np.mean(grade_true == grade_pred)),
        "balanced_accuracy": _balanced_accuracy(grade_true, grade_pred),
        "max_frames": int(n_true),
        "predicted_max_frames": int(n_pred),
        "peak_height": float(peak_height),
        **(extra or {}),
    }
    atomic_write_text(Path(out_json).parent / "per_item.json", json.dumps({"videos": per_video}) + "\n")
    return write_metrics_json(out_json, task="mrjet", split=split, n=len(names), **metrics)


def evaluate_checkpoint(checkpoint, data, split: str, out_json, *, cfg: dict) -> dict:
    """``echossl evaluate`` plug-in: jigsaw or mrjet checkpoints on an MR-jet folder."""
    _threads(cfg)
    task = load_checkpoint(checkpoint)["hyper_parameters"]["task"]
    if task == "jigsaw":
        return evaluate_jigsaw(checkpoint, data, split, out_json, cfg=cfg)
    return evaluate_mrjet(checkpoint, data, split, out_json)


# --------------------------------------------------------------------------- #
# Step 3: the comparison
# --------------------------------------------------------------------------- #

INITS = ("random", "jigsaw", "jigsaw+color")
TABLE_METRICS = ("hit_rate_exact", "hit_rate_within2", "dice", "ratio_mae", "accuracy")


def _strength_tag(strength) -> str:
    return "jigsaw+color" if strength is None else f"jigsaw+color s={float(strength):g}"


def reproduce_mrjet(out, cfg: dict, opts: TrainerOptions, *, data=None, videos: int | None = None,
                    strict: bool = False) -> dict:
    """Random init vs jigsaw-only vs jigsaw+colour pre-training, with an oracle and paired verdicts.

    Settings ``mrjet.reproduce``: ``fractions`` (label shares; the smallest is the claim's,
    10 %), ``seeds`` (downstream training seeds; the labeled videos are fixed by
    ``split_seed``), ``color_strengths`` (``mrjet.jigsaw.color_strength`` of each
    jigsaw+colour pre-training; the first is the table's "jigsaw+color" row, ``null`` the
    preset's jitter/hue) and ``full_label_inits`` (the inits also trained on every
    fraction above the smallest). Every seed trains the target rows (random, jigsaw,
    jigsaw+color at the smallest fraction); the oracle, the extra colour strengths and the
    larger fractions train with the first seed only (compute). The oracle is a backbone trained with supervision on *all*
    the TRAIN labels (the 100 %-label random-init run), fine-tuned at the smallest fraction
    like every other row; random init at that fraction is the floor. Pre-training runs once
    (``cfg.seed``); seeds vary the downstream training.

    Simulates ``cfg.mrjet.simulate.videos`` videos into ``OUT/data`` unless ``data`` is given.
    Runs whose ``metrics.json`` exists are reused, so an interrupted comparison continues where it
    stopped. Writes ``OUT/results.json`` (``rows``, ``claims``, ``n_test`` videos) and ``OUT/results.md``.
    """
    start = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if data is None:
        data = out / "data"
        if not (data / "MRJetList.csv").is_file():
            from echossl.simulate.mrjet import simulate_mrjet

            sim = cfg["mrjet"]["simulate"]
            simulate_mrjet(data, videos or sim["videos"], seed=cfg["seed"], size=sim["size"])
    data = Path(data)
    stage = dataclasses.replace(opts, resume=False)
    rp = cfg["mrjet"]["reproduce"]
    seeds = [int(x) for x in rp.get("seeds", [cfg["seed"]])]
    strengths = list(rp.get("color_strengths") or [None])
    fractions = sorted(float(f) for f in rp["fractions"])
    low = fractions[0]
    full_inits = list(rp.get("full_label_inits", INITS))

    def once(run: Path, fn):
        if not (run / "metrics.json").is_file():
            if (run / "checkpoints" / "last.ckpt").exists():
                fn(dataclasses.replace(stage, resume=True))
            else:
                fn(stage)
        return json.loads((run / "metrics.json").read_text())

    pre_epochs = cfg["mrjet"]["jigsaw"]["max_epochs"]
    pretrained = {}
    plan = [("jigsaw", False, None)] + [(_strength_tag(s) if k else "jigsaw+color", True, s)
                                        for k, s in enumerate(strengths)]
    for name, color, strength in plan:
        run = out / f"pretrain-{name.replace('+', '-').replace(' ', '-').replace('=', '')}"
        pcfg = cfg if strength is None else {**cfg, "mrjet": {**cfg["mrjet"], "jigsaw": {
            **cfg["mrjet"]["jigsaw"], "color_strength": float(strength)}}}
        once(run, lambda o, run=run, color=color, pcfg=pcfg: pretrain_jigsaw(
            data, run, pcfg, dataclasses.replace(o, max_epochs=pre_epochs, max_steps=None), color=color,
            strict=strict))
        pretrained[name] = run
    train_epochs = opts.max_epochs if opts.max_epochs is not None else cfg["mrjet"]["train"]["max_epochs"]

    def fine_tune(fraction: float, init: str, init_path, seed: int) -> tuple[Path, dict]:
        sub = {**cfg, "labeled_fraction": float(fraction), "seed": seed}
        tag = "oracle" if init == ORACLE else init.replace("+", "-").replace(" ", "-").replace("=", "")
        run = out / (f"labels{int(round(100 * fraction))}-{tag}" + ("" if seed == seeds[0] else f"-seed{seed}"))
        metrics = once(run, lambda o, run=run, sub=sub: train_mrjet(
            data, run, sub, dataclasses.replace(o, max_epochs=train_epochs, seed=seed), init=init_path,
            strict=strict))
        return run, metrics

    rows, per_item = [], {}
    for fraction in reversed(fractions):  # the all-label run first: it is the oracle's backbone
        inits = [*INITS[:1], *INITS[1:], *[_strength_tag(s) for s in strengths[1:]]] if fraction == low else \
            [i for i in INITS if i in full_inits]
        if fraction == low and fractions[-1] > low and "random" in full_inits:
            inits.append(ORACLE)
        for init in inits:
            # the target rows (random, jigsaw, jigsaw+color) get every seed; the oracle, the extra
            # colour strengths and the larger fractions the first (compute)
            for seed in (seeds if fraction == low and init in INITS else seeds[:1]):
                if init == ORACLE:
                    init_path = out / f"labels{int(round(100 * fractions[-1]))}-random"
                else:
                    init_path = None if init == "random" else pretrained[init]
                run, metrics = fine_tune(fraction, init, init_path, seed)
                if fraction == low:
                    per_item.setdefault(init, []).append(json.loads((run / "per_item.json").read_text())["videos"])
                rows.append({"labeled_fraction": float(fraction), "init": init, "seed": seed, "run": str(run),
                             **{k: metrics.get(k) for k in (*TABLE_METRICS, "balanced_accuracy",
                                                            "peak_precision_within2", "labeled_videos", "n")}})
    claims, n_test = mrjet_claims(per_item, strengths)
    result = {"preset": cfg.get("preset"), "data": str(data), "split": "TEST", "unit": "video", "n_test": n_test,
              "seeds": seeds, "claim_fraction": low, "color_strengths": strengths, "rows": rows,
              "summary": summary_rows(rows), "claims": claims,
              "pretrain": {k: json.loads((v / "metrics.json").read_text()) for k, v in pretrained.items()},
              "seconds": round(time.perf_counter() - start, 1)}
    atomic_write_text(out / "results.json", json.dumps(result, indent=2) + "\n")
    atomic_write_text(out / "results.md", results_markdown(result["summary"]) + "\n" + claims_markdown(claims))
    return result


ORACLE = "oracle (supervised, all labels)"


def summary_rows(rows: list[dict]) -> list[dict]:
    """One row per (fraction, init): metrics averaged over seeds, with the seed count."""
    out: dict[tuple, dict] = {}
    for r in rows:
        key = (r["labeled_fraction"], r["init"])
        out.setdefault(key, {"labeled_fraction": key[0], "init": key[1], "labeled_videos": r.get("labeled_videos"),
                             "seeds": 0, **{k: [] for k in TABLE_METRICS}})
        out[key]["seeds"] += 1
        for k in TABLE_METRICS:
            if r.get(k) is not None:
                out[key][k].append(r[k])
    for v in out.values():
        for k in TABLE_METRICS:
            v[k] = float(np.mean(v[k])) if v[k] else None
    return list(out.values())


def video_parts(per_seed: list[list[dict]], order: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per-seed per-video parts ``(S, U, 2)``: (hits within 2 frames, true max frames) and (Dice sum, max frames)."""
    hits, dices = [], []
    for videos in per_seed:
        by = {v["name"]: v for v in videos}
        hits.append([[by[n]["hits_within2"], by[n]["n_true"]] for n in order])
        dices.append([[float(np.sum(by[n]["dice"])), len(by[n]["dice"])] for n in order])
    return np.asarray(hits, dtype=np.float64), np.asarray(dices, dtype=np.float64)


def _ratio(x: np.ndarray) -> np.ndarray:
    return x[..., 0] / np.where(x[..., 1] > 0, x[..., 1], np.nan)


def mrjet_claims(per_item: dict, strengths, n_boot: int = 10000) -> tuple[list[dict], int]:
    """Paired claims over TEST videos (unit = video, seeds averaged per replicate).

    Hits: the share of true max frames with a predicted max frame within ±2 frames (pooled
    over videos: a ratio of per-video sums); Dice: the mean jet Dice over the true max frames
    (likewise). Paper target: pre-training (jigsaw, jigsaw+colour) beats random init at
    10 % labels on both; then colour strength, and the protocol line (oracle beats the floor).
    Returns ``(claims, number of TEST videos)``.
    """
    from echossl.evaluation import stats

    order = sorted({v["name"] for v in per_item["random"][0]})
    parts = {k: video_parts(v, order) for k, v in per_item.items()}

    def diff(a, b, which):
        k = 0 if which == "hits" else 1
        return stats.paired_bootstrap_sums(parts[a][k], parts[b][k], _ratio, n_boot=n_boot)

    claims = []
    for a in ("jigsaw", "jigsaw+color"):
        for which, label in (("hits", "hits (within ±2 frames)"), ("dice", "jet Dice")):
            d, ci = diff(a, "random", which)
            claims.append(stats.claim(f"{a} beats random init at 10% labels on {label}", d, ci, "higher"))
    tags = ["jigsaw+color"] + [_strength_tag(s) for s in strengths[1:]]
    names = [_strength_tag(strengths[0]) if strengths[0] is not None else "jigsaw+color (preset)"] + tags[1:]
    for tag, name in zip(tags[1:], names[1:]):
        d, ci = diff(tag, "random", "dice")
        claims.append(stats.claim(f"{name} beats random init at 10% labels on jet Dice", d, ci, "higher"))
        d, ci = diff(tag, "jigsaw+color", "dice")
        claims.append(stats.claim(f"colour strength: {name} beats {names[0]} on jet Dice", d, ci, "higher"))
    for tag, name in zip(tags, names):
        d, ci = diff(tag, "jigsaw", "dice")
        claims.append(stats.claim(f"colour tolerance L_c ({name}) beats jigsaw alone on jet Dice", d, ci, "higher"))
    for which, label in (("hits", "hits"), ("dice", "jet Dice")) if ORACLE in parts else ():
        d, ci = diff(ORACLE, "random", which)
        c = stats.claim(f"protocol informative ({label}): oracle beats the random-init floor", d, ci, "higher")
        c["informative"] = c["verdict"] == "holds"
        claims.append(c)
    return claims, len(order)


def claims_markdown(claims: list[dict]) -> str:
    from echossl.evaluation import stats

    lines = ["| claim | difference [95% CI] | verdict |", "|---|---|---|"]
    lines += [f"| {r['claim']} | {r['difference [95% CI]']} | {r['verdict']} |" for r in stats.format_claims(claims)]
    return "\n".join(lines) + "\n"


def print_claims(result: dict) -> None:
    """The verdict table ``reproduce mrjet`` ends with."""
    from rich.console import Console
    from rich.table import Table

    from echossl.evaluation import stats

    table = Table(title=f"Claims: paired over {result['n_test']} TEST videos ({len(result['seeds'])} seed(s))")
    for col in ("claim", "difference [95% CI]", "verdict"):
        table.add_column(col)
    for r in stats.format_claims(result["claims"]):
        table.add_row(r["claim"], r["difference [95% CI]"], r["verdict"])
    Console().print(table)


def results_markdown(rows: list[dict]) -> str:
    head = ["labels", "init", "seeds", *TABLE_METRICS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        vals = [f"{100 * r['labeled_fraction']:.0f}% ({r.get('labeled_videos')} videos)", r["init"],
                str(r.get("seeds", 1))]
        vals += ["-" if r.get(k) is None else f"{r[k]:.3f}" for k in TABLE_METRICS]
        lines.append("| " + " | ".join(vals) + " |")
    return "\n".join(lines) + "\n"


__all__ = ["TASKS", "SEVERITIES", "pretrain_jigsaw", "train_mrjet", "evaluate_checkpoint", "evaluate_mrjet",
           "evaluate_jigsaw", "reproduce_mrjet", "infer_video"]
