"""Workflows of video-speech-contrastive.md: pre-train, fine-tune, evaluate, compare.

1. :func:`pretrain` — video-speech pre-training on the TRAIN scans of a sweep
   folder (``variant`` = full | contrast | baseline | video-only), model
   selection on VAL, pretext scores on TEST.
2. :func:`train_plane` — standard-plane classification fine-tuned from a
   pre-trained video subnetwork (``init``) or from random weights; TEST
   precision, recall and F1 (macro over the planes present) and a confusion
   matrix (``RUN/confusion.png``).
3. :func:`train_saliency` — gaze saliency with the same backbone and a 2-D head;
   TEST KL, NSS, AUC (Judd), CC, SIM and example overlays (``RUN/overlays/``).
4. :func:`reproduce` — Tables 1-3 on one data set: random init, video-only
   (frame order), and the video-speech ablations baseline, + cross-modal
   contrast, full (+ affinity-aware), each transferred to both tasks.

Every training step writes a run folder (CONTRACT.md) with ``metrics.json``.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch

from echossl.engine import load_checkpoint, load_init_weights
from echossl.config import deep_merge
from echossl.data import sweep as sw
from echossl.engine import TrainerOptions, best_checkpoint, fit, prepare_run
from echossl.errors import EchosslError
from echossl.evaluation.metrics import bootstrap_ci, mean_ci, write_metrics_json
from echossl.io import atomic_write_bytes, atomic_write_text
from echossl.methods.video_speech import PlaneModule, SaliencyModule, VideoSpeechPretraining, voicing_control
from echossl.engine.devices import make_loader as _loader
from echossl.engine.devices import training_device as _device

TASKS = ("video-speech", "plane", "saliency")
ROWS = (  # (row name in the table, pre-training variant or None for random init)
    ("random init", None),
    ("video-only (frame order)", "video-only"),
    ("baseline", "baseline"),
    ("+ cm. contrast", "contrast"),
    ("full (+ affinity-aware)", "full"),
)


def _section(cfg: dict) -> dict:
    if "video_speech" not in cfg:
        raise EchosslError("the configuration has no 'video_speech' section (configs/<preset>/video_speech.yaml)")
    return cfg["video_speech"]


def _vad_kwargs(vs: dict) -> dict:
    return dict(vs["vad"])


def load_scans(root, cfg: dict, splits=("TRAIN", "VAL", "TEST")) -> dict[str, list[sw.Scan]]:
    """Every scan of each split in memory, with its VAD decisions; errors name the file."""
    vs = _section(cfg)
    out = {s: sw.load_split(root, s, with_vad=_vad_kwargs(vs)) for s in splits}
    if "TRAIN" in out and not out["TRAIN"]:
        raise EchosslError(f"{Path(root) / 'sweeps.csv'} has no TRAIN scans")
    if "VAL" in out and not out["VAL"]:
        raise EchosslError(f"{Path(root) / 'sweeps.csv'} has no VAL scans, which model selection needs")
    return out


def _intervals(scans, vs: dict, *, seed: int | None, variant: str = "full") -> sw.VideoSpeechIntervals:
    """The pre-training pairs. Speech is drawn among voiced excerpts (``data.voiced_sampling``) only
    for the affinity-aware ``full`` variant: self-paced learning by voice activity is what that row
    adds; ``baseline`` and ``contrast`` draw blindly, as the paper's pairs of Sec. 2.1."""
    d = vs["data"]
    return sw.VideoSpeechIntervals(
        scans, interval_seconds=d["interval_seconds"], excerpt_seconds=d["excerpt_seconds"], groups=d["groups"],
        shift_range=d["shift_range"], size=d["size"], order_step=d["order_step"], order_crop=d["order_crop"],
        min_voiced=d["min_voiced"], vad_hop_seconds=vs["vad"]["hop_seconds"], seed=seed,
        voiced_sampling=bool(d.get("voiced_sampling", True)) and variant == "full")


# --------------------------------------------------------------------------- #
# Pre-training
# --------------------------------------------------------------------------- #

def pretrain(root, out, cfg: dict, opts: TrainerOptions, *, variant: str | None = None, init: str | None = None,
             scans: dict | None = None) -> Path:
    """Video-speech pre-training; writes RUN/ with checkpoints and TEST pretext scores."""
    vs = _section(cfg)
    p = vs["pretrain"]
    variant = variant or p["variant"]
    cfg = deep_merge(cfg, {"video_speech": {"pretrain": {"variant": variant}}})  # RUN/config.yaml tells the truth
    scans = scans or load_scans(root, cfg)
    run = prepare_run(out, cfg, opts.resume)
    module = VideoSpeechPretraining(
        backbone=p["backbone"], width=p["width"], proj_hidden=p["proj_hidden"], proj_dim=p["proj_dim"],
        variant=variant, alpha=p["alpha"], beta=p["beta"], gamma=p["gamma"], temperature=p["temperature"],
        sample_rate=sw.SAMPLE_RATE, spec_window=p["spec_window"], spec_hop=p["spec_hop"], spec_bands=p["spec_bands"],
        spec_size=p["spec_size"], optimizer=p["optimizer"], lr=p["lr"], momentum=p["momentum"],
        weight_decay=p["weight_decay"], step_size=p["step_size"], grad_clip=p["grad_clip"])
    if init:
        load_init_weights(module.net, _checkpoint_file(init), prefix="net.",
                          allow_partial=bool(cfg.get("init_partial", False)), record=run / "init.json")
    workers = int(vs["data"].get("workers", 0))
    train = _loader(_intervals(scans["TRAIN"], vs, seed=None, variant=variant), p["batch_size"], True, workers,
                    drop_last=True)
    val = _loader(_intervals(scans["VAL"], vs, seed=cfg["seed"], variant=variant), p["batch_size"], False, workers)
    trainer = fit(module, train, val, run, opts, monitor="val_loss", mode="min")
    if scans.get("TEST") and trainer.is_global_zero:  # under DDP, evaluate once
        evaluate_pretext(best_checkpoint(run), scans["TEST"], cfg, run / "metrics.json", device=_device(opts))
    return run


def load_module(checkpoint, tasks):
    """``(module in eval mode, hyper-parameters)`` of an echossl checkpoint of one of ``tasks``."""
    ckpt = load_checkpoint(checkpoint, expect_task=tasks)
    hp = dict(ckpt["hyper_parameters"])
    cls = {"video-speech": VideoSpeechPretraining, "plane": PlaneModule, "saliency": SaliencyModule}[hp["task"]]
    module = cls(**hp)
    module.load_state_dict(ckpt["state_dict"])
    return module.eval(), hp


@torch.inference_mode()
def evaluate_pretext(checkpoint, scans, cfg: dict, out_json, *, split: str = "TEST", device=None) -> dict:
    """Pair-correlation accuracy (all pairs and high-affinity pairs) and 12-way order accuracy."""
    module, hp = load_module(checkpoint, "video-speech")
    module.to(device or "cpu")
    vs = _section(cfg)
    ds = _intervals(scans, vs, seed=cfg["seed"] + 1, variant=hp["variant"])
    correct, high, order_ok, pos_v, neg_v = [], [], [], [], []
    for batch in _loader(ds, vs["pretrain"]["batch_size"], False):
        batch = {k: v.to(module.device) for k, v in batch.items()}
        net = module.net
        f_v = net.video(batch["frames"].flatten(0, 1))
        m = f_v.shape[0]
        spec = module.spectrogram(torch.cat([batch["speech_pos"].flatten(0, 1), batch["speech_neg"].flatten(0, 1)]))
        f_s = net.encode_audio(spec)
        logits = net.pair_head(torch.cat([torch.cat([f_v, f_s[:m]], 1), torch.cat([f_v, f_s[m:]], 1)]))
        target = torch.cat([torch.ones(m), torch.zeros(m)]).to(logits.device)
        ok = (logits.argmax(1) == target).float().reshape(2, m)
        correct.append(ok.mean(0).cpu())
        high.append(batch["high_affinity"].flatten().cpu())
        pos_v.append(batch["pos_voiced"].flatten().cpu())
        neg_v.append(batch["neg_voiced"].flatten().cpu())
        clips = batch["order_frames"]
        maps = net.video.features(clips.flatten(0, 1))
        o = net.order_head(maps.reshape(clips.shape[0], 4, *maps.shape[1:]))
        order_ok.append((o.argmax(1) == batch["order_label"]).float().cpu())
    correct, high, order_ok = torch.cat(correct).numpy(), torch.cat(high).numpy(), torch.cat(order_ok).numpy()
    pos_v, neg_v = torch.cat(pos_v), torch.cat(neg_v)
    control = voicing_control(pos_v, neg_v).numpy()
    pos_v, neg_v = pos_v.numpy(), neg_v.numpy()
    metrics = {"pair_accuracy": float(correct.mean()),
               "pair_accuracy_high": float(correct[high].mean()) if high.any() else float("nan"),
               "pair_accuracy_low": float(correct[~high].mean()) if (~high).any() else float("nan"),
               "order_accuracy": float(order_ok.mean()), "high_affinity_fraction": float(high.mean()),
               # speech-only control ("is this speech voiced?" alone, no video), on all pairs,
               # on the pairs the positive-only VAD filter kept (the old mask) and on the pairs
               # the current mask keeps (both voiced: 0.5 by construction)
               "voicing_control_accuracy": float(control.mean()),
               "voicing_control_accuracy_positive_filter": float(control[pos_v].mean()) if pos_v.any()
               else float("nan"),
               "voicing_control_accuracy_high": float(control[high].mean()) if high.any() else float("nan"),
               # share of voiced negatives among pairs whose positive is voiced (old mask) and
               # among the pairs used now
               "voiced_negative_fraction_positive_filter": float(neg_v[pos_v].mean()) if pos_v.any()
               else float("nan"),
               "voiced_negative_fraction_high": float(neg_v[high].mean()) if high.any() else float("nan"),
               "variant": hp["variant"]}
    write_metrics_json(out_json, task="video-speech", split=split, n=len(ds), **metrics)
    return metrics


# --------------------------------------------------------------------------- #
# Downstream tasks
# --------------------------------------------------------------------------- #

def _checkpoint_file(path) -> Path:
    path = Path(path)
    if path.is_dir():
        return best_checkpoint(path)
    if not path.is_file():
        raise EchosslError(f"initial weights {path} do not exist")
    return path


def init_backbone(backbone: torch.nn.Module, init, *, allow_partial: bool = False) -> None:
    """Copy a pre-trained video subnetwork (or a fine-tuned backbone) into ``backbone``."""
    path = _checkpoint_file(init)
    try:
        task = load_checkpoint(path)["hyper_parameters"]["task"]
    except EchosslError:
        task = None  # a plain state dict / safetensors file of the backbone
    prefix = {"video-speech": "net.video.", "plane": "net.backbone.", "saliency": "net.backbone."}.get(task, "")
    load_init_weights(backbone, path, prefix=prefix or None, allow_partial=allow_partial)


def labeled_scans(scans: list[sw.Scan], fraction: float, seed: int) -> list[sw.Scan]:
    """The TRAIN scans that carry downstream labels (at least one), in name order.

    :func:`echossl.data.splits.labeled_subset` with the *split* seed; fine-tuning
    needs labels, so a fraction of 0 is refused here.
    """
    from echossl.data.splits import labeled_subset

    labeled = labeled_subset(scans, fraction, seed, key=lambda s: s.name)[0]
    if not labeled:
        raise EchosslError(f"the labelled fraction must be in (0, 1], got {fraction}: fine-tuning needs labeled scans")
    return labeled


def train_plane(root, out, cfg: dict, opts: TrainerOptions, *, init: str | None = None,
                scans: dict | None = None) -> Path:
    """Fine-tune plane classification; TEST metrics.json and confusion.png."""
    vs = _section(cfg)
    t = vs["plane"]
    meta = sw.read_meta(root)
    scans = scans or load_scans(root, cfg)
    run = prepare_run(out, cfg, opts.resume)
    size = vs["data"]["size"]
    module = PlaneModule(backbone=vs["pretrain"]["backbone"], width=vs["pretrain"]["width"],
                         n_classes=len(meta["planes"]), class_names=list(meta["planes"]), size=size,
                         optimizer=t["optimizer"], lr=t["lr"], momentum=t["momentum"], weight_decay=t["weight_decay"],
                         step_size=t["step_size"], init=str(init) if init else None)
    if init:
        init_backbone(module.net.backbone, init, allow_partial=bool(cfg.get("init_partial", False)))
    labeled = labeled_scans(scans["TRAIN"], t["labeled_fraction"], cfg.get("split_seed", 0))
    workers = int(vs["data"].get("workers", 0))
    train = _loader(sw.PlaneFrames(labeled, step=t["frame_step"], size=size, augment=True, shift=t["shift"]),
                    t["batch_size"], True, workers, drop_last=True)
    val = _loader(sw.PlaneFrames(scans["VAL"], step=t["frame_step"], size=size), t["batch_size"], False, workers)
    trainer = fit(module, train, val, run, opts, monitor="val_f1", mode="max")
    if scans.get("TEST") and trainer.is_global_zero:  # under DDP, evaluate once
        evaluate_plane(best_checkpoint(run), scans["TEST"], cfg, run / "metrics.json", device=_device(opts))
    return run


@torch.inference_mode()
def predict_planes(module: PlaneModule, ds: sw.PlaneFrames, batch_size: int = 128) -> np.ndarray:
    preds = []
    for batch in _loader(ds, batch_size, False):
        preds.append(module(batch["image"].to(module.device)).argmax(1).cpu())
    return torch.cat(preds).numpy()


def plane_metrics(true: np.ndarray, pred: np.ndarray, bootstrap: int = 500, seed: int = 0) -> dict:
    """Macro precision, recall and F1 over the planes present in ``true``, accuracy, balanced accuracy."""
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    labels = np.unique(true)

    def f1(t, p):
        return precision_recall_fscore_support(t.astype(int), p.astype(int), labels=labels, average="macro",
                                               zero_division=0)[2]

    prec, rec, f, _ = precision_recall_fscore_support(true, pred, labels=labels, average="macro", zero_division=0)
    return {"precision": float(prec), "recall": float(rec), "f1": float(f),
            # balanced accuracy = mean recall over the planes present = the macro recall
            "accuracy": float(accuracy_score(true, pred)), "balanced_accuracy": float(rec),
            "f1_ci95": list(bootstrap_ci(f1, true, pred, n=bootstrap, seed=seed))}


def confusion_png(true: np.ndarray, pred: np.ndarray, names: list[str], title: str = "") -> bytes:
    """Row-normalised confusion matrix (paper Fig. 3) as PNG bytes."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from sklearn.metrics import confusion_matrix

    k = len(names)
    cm = confusion_matrix(true, pred, labels=np.arange(k)).astype(float)
    cm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    fig = Figure(figsize=(6.5, 5.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(cm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(k), names, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(k), names, fontsize=7)
    for i in range(k):
        for j in range(k):
            if cm[i, j] >= 0.05:
                ax.text(j, i, f"{cm[i, j]:.2f}", ha="center", va="center", fontsize=5,
                        color="white" if cm[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.046)
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def write_per_item(path, data: dict) -> None:
    """``RUN/per_item.json``: the per-scan / per-frame values that paired claims resample by scan."""
    atomic_write_text(path, json.dumps(data, allow_nan=True) + "\n")


def plane_parts(ds: sw.PlaneFrames, true: np.ndarray, pred: np.ndarray, n_classes: int) -> dict:
    """Per-scan confusion matrices ``{"scans": [name], "confusion": (U, K, K)}`` (rows true, columns predicted).

    Macro-F1 is not a mean of per-frame values, but it is a function of summed confusion
    matrices, so a scan bootstrap resamples these (:func:`echossl.evaluation.stats.paired_bootstrap_sums`)."""
    scan_of = np.array([s for s, _ in ds.index])
    names, conf = [], []
    for s in sorted(set(scan_of.tolist())):
        m = scan_of == s
        c = np.zeros((n_classes, n_classes), dtype=np.int64)
        np.add.at(c, (true[m].astype(int), pred[m].astype(int)), 1)
        names.append(ds.scans[s].name)
        conf.append(c.tolist())
    return {"scans": names, "confusion": conf}


def evaluate_plane(checkpoint, scans, cfg: dict, out_json, *, split: str = "TEST", device=None) -> dict:
    module, hp = load_module(checkpoint, "plane")
    module.to(device or "cpu")
    vs = _section(cfg)
    ds = sw.PlaneFrames(scans, step=vs["plane"]["frame_step"], size=hp["size"])
    if len(ds) == 0:
        raise EchosslError(f"no labelled {split} frames to evaluate")
    true, pred = ds.labels(), predict_planes(module, ds)
    metrics = plane_metrics(true, pred, seed=cfg["seed"])
    names = hp.get("class_names") or [str(i) for i in range(hp["n_classes"])]
    write_per_item(Path(out_json).parent / "per_item.json", plane_parts(ds, true, pred, hp["n_classes"]))
    atomic_write_bytes(Path(out_json).parent / "confusion.png",
                       confusion_png(true, pred, names, f"{split}: F1 {metrics['f1']:.3f}"))
    write_metrics_json(out_json, task="plane", split=split, n=len(ds), **metrics)
    return metrics


def _saliency_ds(root, scans, cfg: dict, size: int, out_size: int) -> sw.SaliencyFrames:
    vs = _section(cfg)
    meta = sw.read_meta(root)
    maps = sw.load_saliency_maps(root, scans, meta)
    return sw.SaliencyFrames(scans, maps, step=vs["saliency"]["frame_step"], size=size, out_size=out_size,
                             window=int(meta["gaze_window_frames"]))


def train_saliency(root, out, cfg: dict, opts: TrainerOptions, *, init: str | None = None,
                   scans: dict | None = None) -> Path:
    """Fine-tune gaze-saliency prediction; TEST metrics.json and overlays/."""
    vs = _section(cfg)
    t = vs["saliency"]
    scans = scans or load_scans(root, cfg)
    run = prepare_run(out, cfg, opts.resume)
    size = vs["data"]["size"]
    module = SaliencyModule(backbone=vs["pretrain"]["backbone"], width=vs["pretrain"]["width"], size=size,
                            out_size=t["out_size"], optimizer=t["optimizer"], lr=t["lr"], momentum=t["momentum"],
                            weight_decay=t["weight_decay"], step_size=t["step_size"],
                            init=str(init) if init else None)
    if init:
        init_backbone(module.net.backbone, init, allow_partial=bool(cfg.get("init_partial", False)))
    labeled = labeled_scans(scans["TRAIN"], t["labeled_fraction"], cfg.get("split_seed", 0))
    workers = int(vs["data"].get("workers", 0))
    train = _loader(_saliency_ds(root, labeled, cfg, size, t["out_size"]), t["batch_size"], True, workers,
                    drop_last=True)
    val = _loader(_saliency_ds(root, scans["VAL"], cfg, size, t["out_size"]), t["batch_size"], False, workers)
    trainer = fit(module, train, val, run, opts, monitor="val_kl", mode="min")
    if scans.get("TEST") and trainer.is_global_zero:  # under DDP, evaluate once
        evaluate_saliency(best_checkpoint(run), root, scans["TEST"], cfg, run / "metrics.json", device=_device(opts))
    return run


@torch.inference_mode()
def evaluate_saliency(checkpoint, root, scans, cfg: dict, out_json, *, split: str = "TEST", device=None,
                      overlays: int = 6) -> dict:
    from echossl.evaluation.plots import saliency_overlay
    from echossl.evaluation.saliency_metrics import per_map_metrics

    module, hp = load_module(checkpoint, "saliency")
    module.to(device or "cpu")
    ds = _saliency_ds(root, scans, cfg, hp["size"], hp["out_size"])
    if len(ds) == 0:
        raise EchosslError(f"no {split} frames with gaze to evaluate")
    per = {k: [] for k in ("kl", "nss", "auc", "cc", "sim")}
    frame_scan = [ds.scans[s].name for s, _ in ds.index]
    for batch in _loader(ds, 128, False):
        pred = module(batch["image"].to(module.device)).cpu().numpy()
        for k, v in per_map_metrics(pred, batch["saliency"].numpy(), batch["fixations"].numpy()).items():
            per[k].append(v)
    per = {k: np.concatenate(v) for k, v in per.items()}
    metrics = {}
    for k, v in per.items():
        metrics[k] = float(np.nanmean(v))
    for k, v in per.items():
        metrics[f"{k}_ci95"] = mean_ci(v[np.isfinite(v)])
    write_per_item(Path(out_json).parent / "per_item.json",
                   {"scan": frame_scan, **{k: [float(x) for x in v] for k, v in per.items()}})
    folder = Path(out_json).parent / "overlays"
    picks = np.linspace(0, len(ds) - 1, min(overlays, len(ds))).astype(int)
    for j, i in enumerate(picks):
        item = ds[int(i)]
        s, f = ds.index[int(i)]
        frame = ds.scans[s].frames[f]
        pred = module(item["image"][None].to(module.device))[0].cpu().numpy()
        up = torch.nn.functional.interpolate(torch.from_numpy(pred)[None, None], size=frame.shape, mode="bilinear")[0, 0]
        atomic_write_bytes(folder / f"{j:02d}_{ds.scans[s].name}_f{f:05d}.png",
                           saliency_overlay(frame, up.numpy(), title=f"{ds.scans[s].name} frame {f}"))
    write_metrics_json(out_json, task="saliency", split=split, n=len(ds), **metrics)
    return metrics


# --------------------------------------------------------------------------- #
# echossl evaluate
# --------------------------------------------------------------------------- #

def evaluate_checkpoint(checkpoint, data, split: str, out_json, *, cfg: dict) -> dict:
    """``echossl evaluate`` for video-speech, plane and saliency checkpoints on a sweep folder."""
    if not sw.detect(data):
        raise EchosslError(f"{data} is not a sweep folder (no sweeps.csv); these checkpoints need narrated sweeps")
    task = load_checkpoint(checkpoint)["hyper_parameters"]["task"]
    scans = sw.load_split(data, split, with_vad=_vad_kwargs(_section(cfg)))
    if not scans:
        raise EchosslError(f"{Path(data) / 'sweeps.csv'} has no {split} scans")
    if task == "video-speech":
        return evaluate_pretext(checkpoint, scans, cfg, out_json, split=split)
    if task == "plane":
        return evaluate_plane(checkpoint, scans, cfg, out_json, split=split)
    return evaluate_saliency(checkpoint, data, scans, cfg, out_json, split=split)


# --------------------------------------------------------------------------- #
# The comparison (Tables 1-3)
# --------------------------------------------------------------------------- #

METRIC_COLUMNS = ("precision", "recall", "f1", "kl", "nss", "auc", "cc", "sim")


def _stage(run: Path, make) -> dict:
    """Run a stage unless its metrics.json exists (so an interrupted comparison picks up where it stopped)."""
    if not (run / "metrics.json").is_file():
        if (run / "checkpoints" / "last.ckpt").exists():
            raise EchosslError(f"{run} holds an unfinished run; delete it to run this stage again")
        make()
    return json.loads((run / "metrics.json").read_text())


def cv_folds(names: list[str], folds: int, seed: int, val_share: float = 0.15) -> list[dict[str, list[str]]]:
    """``folds``-fold cross-validation over scans (paper Sec. 3.1: 3 folds, 90/45 train/test).

    Every scan is TEST in exactly one fold. The other scans of a fold are split into TRAIN and
    VAL (``val_share``, at least one; model selection). Depends only on the set of names and ``seed``.
    """
    names = sorted(set(names))
    if folds < 2 or len(names) < 2 * folds:
        raise EchosslError(f"{folds}-fold cross-validation needs at least {2 * folds} scans, got {len(names)}")
    order = [names[k] for k in np.random.default_rng(seed).permutation(len(names))]
    out = []
    for f in range(folds):
        test = sorted(order[f::folds])
        rest = [n for n in order if n not in test]
        n_val = max(1, int(round(val_share * len(rest))))
        out.append({"TRAIN": sorted(rest[n_val:]), "VAL": sorted(rest[:n_val]), "TEST": test})
    return out


def _rows_for(variants) -> list[tuple[str, str | None]]:
    names = dict((v, n) for n, v in ROWS)
    rows = [("random init", None)]
    rows += [(names[v], v) for v in ("video-only", "baseline", "contrast", "full") if v in variants]
    return rows + [(ORACLE, "oracle")]


ORACLE = "oracle (supervised on all plane labels)"


def reproduce(root, out, cfg: dict, opts_for) -> dict:
    """Tables 1-3 under 3-fold cross-validation over scans, with paired verdicts.

    ``opts_for(section)`` gives each stage's TrainerOptions. Settings: ``video_speech.reproduce``
    (``folds``, ``seeds``, ``variants``). Per fold: every pre-training variant on the fold's
    TRAIN scans (VAL for selection); an oracle backbone trained with supervision on *all*
    the fold's TRAIN plane labels; then each init (random, the variants, the oracle) is
    fine-tuned on both tasks at ``labeled_fraction`` for each seed (labeled scans fixed by
    ``split_seed``). TEST predictions of the folds are pooled (every scan is TEST once).

    Writes ``OUT/results.json`` (``rows``, ``claims``, ``n_test`` scans, ``folds``, ``seconds``)
    and ``OUT/results.md`` (table + verdict table).
    """
    from echossl.evaluation import stats

    start = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    vs = _section(cfg)
    rp = vs.get("reproduce") or {}
    n_folds, seeds = int(rp.get("folds", 3)), [int(x) for x in rp.get("seeds", [cfg["seed"]])]
    variants = list(rp.get("variants", ["video-only", "full"]))
    loaded = load_scans(root, cfg)
    every = {sc.name: sc for split in loaded.values() for sc in split}
    folds = cv_folds(list(every), n_folds, cfg.get("split_seed", 0))
    rows_spec = _rows_for(variants)
    per_plane: dict[str, list] = {tag or "random": [[] for _ in seeds] for _, tag in rows_spec}
    per_sal: dict[str, list] = {tag or "random": [[] for _ in seeds] for _, tag in rows_spec}
    pretext: dict[str, list] = {}
    test_scans: list[str] = []
    for f, fold in enumerate(folds):
        scans = {k: [every[n] for n in v] for k, v in fold.items()}
        base = out / f"fold{f}"
        test_scans += fold["TEST"]
        inits: dict[str, str | None] = {"random": None}
        for variant in variants:
            run = base / f"pretrain-{variant}"
            _stage(run, lambda run=run, variant=variant: pretrain(root, run, cfg, opts_for("pretrain"),
                                                                  variant=variant, scans=scans))
            pretext.setdefault(variant, []).append(json.loads((run / "metrics.json").read_text()))
            inits[variant] = str(best_checkpoint(run))
        oracle_cfg = deep_merge(cfg, {"video_speech": {"plane": {"labeled_fraction": 1.0}}})
        run = base / "oracle-plane-all-labels"
        _stage(run, lambda run=run: train_plane(root, run, oracle_cfg, opts_for("plane"), scans=scans))
        inits["oracle"] = str(best_checkpoint(run))
        for k, seed in enumerate(seeds):
            sub = {**cfg, "seed": seed}
            for _, tag in rows_spec:
                tag = tag or "random"
                suffix = "" if k == 0 else f"-seed{seed}"
                plane_run, sal_run = base / f"plane-{tag}{suffix}", base / f"saliency-{tag}{suffix}"
                init = inits[tag]
                _stage(plane_run, lambda r=plane_run, i=init: train_plane(
                    root, r, sub, dataclasses.replace(opts_for("plane"), seed=seed), init=i, scans=scans))
                _stage(sal_run, lambda r=sal_run, i=init: train_saliency(
                    root, r, sub, dataclasses.replace(opts_for("saliency"), seed=seed), init=i, scans=scans))
                per_plane[tag][k].append(json.loads((plane_run / "per_item.json").read_text()))
                per_sal[tag][k].append(json.loads((sal_run / "per_item.json").read_text()))
    parts = {tag: _pool_plane(v, test_scans) for tag, v in per_plane.items()}      # (S, U, K, K)
    nss = {tag: _pool_saliency(v, test_scans) for tag, v in per_sal.items()}       # {metric: (S, U, 2)}
    rows = []
    for name, tag in rows_spec:
        tag = tag or "random"
        conf = parts[tag].sum(1)                                                     # (S, K, K)
        row = {"method": name, "init": tag, "seeds": len(seeds),
               "f1": float(stats.macro_f1_from_confusion(conf).mean()),
               **{k: float(v) for k, v in zip(("precision", "recall"), _macro_pr(conf))}}
        for metric, arr in nss[tag].items():
            row[metric] = float(np.mean(arr[..., 0].sum(1) / arr[..., 1].sum(1)))
        rows.append(row)
    claims = video_speech_claims(parts, nss, variants)
    result = {"preset": cfg.get("preset"), "seed": cfg["seed"], "seeds": seeds, "folds": n_folds,
              "unit": "scan", "n_test": len(test_scans), "test_scans": test_scans, "rows": rows, "claims": claims,
              "pretext": {v: _mean_pretext(m) for v, m in pretext.items()},
              "target": {"full_beats_video_only_f1": _verdict_of(claims, "plane F1", "video-only"),
                         "full_beats_video_only_nss": _verdict_of(claims, "NSS", "video-only")},
              "seconds": round(time.perf_counter() - start, 1)}
    atomic_write_text(out / "results.json", json.dumps(result, indent=2) + "\n")
    atomic_write_text(out / "results.md", results_markdown(rows) + "\n" + claims_markdown(claims))
    return result


def _verdict_of(claims: list[dict], metric: str, other: str) -> str | None:
    for c in claims:
        if c["claim"].startswith("full") and metric in c["claim"] and other in c["claim"]:
            return c["verdict"]
    return None


def _mean_pretext(per_fold: list[dict]) -> dict:
    keys = [k for k, v in per_fold[0].items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return {k: float(np.nanmean([m[k] if m.get(k) is not None else np.nan for m in per_fold])) for k in keys}


def _pool_plane(per_seed_folds: list[list[dict]], order: list[str]) -> np.ndarray:
    """Per-fold per-scan confusion matrices -> ``(S, U, K, K)`` in ``order`` (the TEST scans of all folds)."""
    out = []
    for folds in per_seed_folds:
        by = {n: c for d in folds for n, c in zip(d["scans"], d["confusion"])}
        k = len(next(iter(by.values())))
        out.append([by.get(n, np.zeros((k, k)).tolist()) for n in order])  # a scan without labels adds nothing
    return np.asarray(out, dtype=np.float64)


def _pool_saliency(per_seed_folds: list[list[dict]], order: list[str]) -> dict[str, np.ndarray]:
    """Per-frame saliency metrics -> ``{metric: (S, U, 2)}`` per-scan ``(sum, count)`` of finite values."""
    res: dict[str, list] = {}
    for folds in per_seed_folds:
        acc = {m: {n: [0.0, 0.0] for n in order} for m in ("kl", "nss", "auc", "cc", "sim")}
        for d in folds:
            for m in acc:
                for n, v in zip(d["scan"], d[m]):
                    if v is not None and np.isfinite(v):
                        acc[m][n][0] += float(v)
                        acc[m][n][1] += 1.0
        for m, by in acc.items():
            res.setdefault(m, []).append([by[n] for n in order])
    return {m: np.asarray(v, dtype=np.float64) for m, v in res.items()}


def _macro_pr(conf: np.ndarray) -> tuple[float, float]:
    """Mean over seeds of macro precision and recall over the classes present, from ``(S, K, K)``."""
    tp = np.diagonal(conf, axis1=-2, axis2=-1)
    support, predicted = conf.sum(-1), conf.sum(-2)
    present = support > 0
    prec = np.where(predicted > 0, tp / np.maximum(predicted, 1), 0.0)
    rec = np.where(support > 0, tp / np.maximum(support, 1), 0.0)
    n = np.maximum(present.sum(-1), 1)
    return float(((prec * present).sum(-1) / n).mean()), float(((rec * present).sum(-1) / n).mean())


def _ratio(x: np.ndarray) -> np.ndarray:
    return x[..., 0] / np.where(x[..., 1] > 0, x[..., 1], np.nan)


def video_speech_claims(parts: dict, sal: dict, variants, n_boot: int = 10000) -> list[dict]:
    """Paired claims over TEST scans (unit = scan; seeds averaged per replicate).

    ``parts[tag]``: ``(S, U, K, K)`` per-scan plane confusion; ``sal[tag][metric]``: ``(S, U, 2)``
    per-scan (sum, count) of a per-frame saliency metric. The paper's target (Tables 1-2):
    the full model beats video-only on plane F1 and on NSS; then each pre-training against
    random init, and the protocol line: the oracle beats the random-init floor.
    """
    from echossl.evaluation import stats

    def f1(a, b):
        return stats.paired_bootstrap_sums(parts[a], parts[b], stats.macro_f1_from_confusion, n_boot=n_boot)

    def nss(a, b):
        return stats.paired_bootstrap_sums(sal[a]["nss"], sal[b]["nss"], _ratio, n_boot=n_boot)

    claims = []
    pairs = [("full", "video-only")] if {"full", "video-only"} <= set(variants) else []
    pairs += [(v, "random") for v in ("full", "video-only", "contrast", "baseline") if v in variants]
    label = {"full": "full", "video-only": "video-only", "contrast": "+ cm. contrast", "baseline": "baseline",
             "random": "random init"}
    for a, b in pairs:
        d, ci = f1(a, b)
        claims.append(stats.claim(f"{label[a]} beats {label[b]} on plane F1", d, ci, "higher"))
        d, ci = nss(a, b)
        claims.append(stats.claim(f"{label[a]} beats {label[b]} on NSS", d, ci, "higher"))
    for metric, fn in (("plane F1", f1), ("NSS", nss)):
        d, ci = fn("oracle", "random")
        c = stats.claim(f"protocol informative ({metric}): oracle beats the random-init floor", d, ci, "higher")
        c["informative"] = c["verdict"] == "holds"
        claims.append(c)
    return claims


def claims_markdown(claims: list[dict]) -> str:
    from echossl.evaluation import stats

    lines = ["| claim | difference [95% CI] | verdict |", "|---|---|---|"]
    lines += [f"| {r['claim']} | {r['difference [95% CI]']} | {r['verdict']} |" for r in stats.format_claims(claims)]
    return "\n".join(lines) + "\n"


def print_claims(result: dict) -> None:
    """The verdict table a ``reproduce`` command ends with."""
    from rich.console import Console
    from rich.table import Table

    from echossl.evaluation import stats

    table = Table(title=f"Claims: paired over {result['n_test']} TEST {result.get('unit', 'item')}s "
                        f"({len(result.get('seeds', [0]))} seed(s))")
    for col in ("claim", "difference [95% CI]", "verdict"):
        table.add_column(col)
    for r in stats.format_claims(result["claims"]):
        table.add_row(r["claim"], r["difference [95% CI]"], r["verdict"])
    Console().print(table)


def results_markdown(rows: list[dict]) -> str:
    head = "| method | Prec.[%] | Rec.[%] | F1[%] | KL↓ | NSS↑ | AUC↑ | CC↑ | SIM↑ |\n|---|---|---|---|---|---|---|---|---|\n"
    body = "".join(
        f"| {r['method']} | {100 * r['precision']:.1f} | {100 * r['recall']:.1f} | {100 * r['f1']:.1f} | "
        f"{r['kl']:.2f} | {r['nss']:.2f} | {r['auc']:.3f} | {r['cc']:.3f} | {r['sim']:.3f} |\n" for r in rows)
    return head + body


def stage_options(opts: TrainerOptions, vs: dict, section: str, max_epochs, max_steps) -> TrainerOptions:
    """The common flags with a stage's own epochs (``--max-epochs``/``--max-steps`` override every stage)."""
    epochs = max_epochs if max_epochs is not None else (None if max_steps else vs[section]["max_epochs"])
    return dataclasses.replace(opts, max_epochs=epochs, max_steps=max_steps)
