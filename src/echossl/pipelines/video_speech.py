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
from torch.utils.data import DataLoader

from echossl.checkpoints import load_checkpoint, load_init_weights
from echossl.config import deep_merge
from echossl.data import sweep as sw
from echossl.engine import TrainerOptions, best_checkpoint, fit, prepare_run
from echossl.errors import EchosslError
from echossl.evaluation.metrics import bootstrap_ci, mean_ci, write_metrics_json
from echossl.io import atomic_write_bytes, atomic_write_text
from echossl.methods.video_speech import PlaneModule, SaliencyModule, VideoSpeechPretraining, voicing_control

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


def _loader(ds, batch_size: int, shuffle: bool, workers: int = 0, drop_last: bool = False) -> DataLoader:
    bs = min(batch_size, max(1, len(ds)))
    return DataLoader(ds, batch_size=bs, shuffle=shuffle, num_workers=workers, persistent_workers=workers > 0,
                      drop_last=drop_last and len(ds) > bs)


def _device(opts: TrainerOptions) -> torch.device:
    if opts.accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def _intervals(scans, vs: dict, *, seed: int | None) -> sw.VideoSpeechIntervals:
    d = vs["data"]
    return sw.VideoSpeechIntervals(
        scans, interval_seconds=d["interval_seconds"], excerpt_seconds=d["excerpt_seconds"], groups=d["groups"],
        shift_range=d["shift_range"], size=d["size"], order_step=d["order_step"], order_crop=d["order_crop"],
        min_voiced=d["min_voiced"], vad_hop_seconds=vs["vad"]["hop_seconds"], seed=seed)


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
    train = _loader(_intervals(scans["TRAIN"], vs, seed=None), p["batch_size"], True, workers, drop_last=True)
    val = _loader(_intervals(scans["VAL"], vs, seed=cfg["seed"]), p["batch_size"], False, workers)
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
    ds = _intervals(scans, vs, seed=cfg["seed"] + 1)
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


def reproduce(root, out, cfg: dict, opts_for) -> dict:
    """All rows of Tables 1-3 on one data set; ``opts_for(section)`` gives each stage's TrainerOptions.

    Writes ``OUT/results.json`` (``{"rows": [{"method", metric...}], "target": {...}, "seconds"}``)
    and ``OUT/results.md``.
    """
    start = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    scans = load_scans(root, cfg)
    pretrained: dict[str, Path] = {}
    for variant in ("full", "video-only", "baseline", "contrast"):  # the two rows the target compares first
        run = out / f"pretrain-{variant}"
        _stage(run, lambda: pretrain(root, run, cfg, opts_for("pretrain"), variant=variant, scans=scans))
        pretrained[variant] = best_checkpoint(run)
    rows = []
    for name, variant in ROWS:
        tag = variant or "random"
        init = str(pretrained[variant]) if variant else None
        plane_run, sal_run = out / f"plane-{tag}", out / f"saliency-{tag}"
        pm = _stage(plane_run, lambda: train_plane(root, plane_run, cfg, opts_for("plane"), init=init, scans=scans))
        sm = _stage(sal_run, lambda: train_saliency(root, sal_run, cfg, opts_for("saliency"), init=init, scans=scans))
        rows.append({"method": name, "init": tag, **{k: pm[k] for k in ("precision", "recall", "f1")},
                     **{k: sm[k] for k in ("kl", "nss", "auc", "cc", "sim")}, "n_plane": pm["n"], "n_saliency": sm["n"]})
    by = {r["init"]: r for r in rows}
    target = {"full_beats_video_only_f1": by["full"]["f1"] > by["video-only"]["f1"],
              "full_beats_video_only_nss": by["full"]["nss"] > by["video-only"]["nss"]}
    result = {"preset": cfg.get("preset"), "seed": cfg["seed"], "rows": rows, "target": target,
              "seconds": round(time.perf_counter() - start, 1)}
    atomic_write_text(out / "results.json", json.dumps(result, indent=2) + "\n")
    atomic_write_text(out / "results.md", results_markdown(rows))
    return result


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
