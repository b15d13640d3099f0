"""DISCOVER workflows: pre-training, evaluation of a checkpoint, and the comparison table.

- :func:`pretrain` — ``echossl pretrain discover [--variant discover|videomae|video-dino]``:
  self-supervised pre-training on every TRAIN video (labels unused), the
  ``best`` checkpoint by VAL loss, then :func:`evaluate_backbone` on TEST into
  ``RUN/metrics.json``.
- :func:`evaluate_checkpoint` — ``echossl evaluate`` for the three tasks.
- :func:`reproduce_discover` — ``echossl reproduce discover``: every method
  pre-trained on the same data, every protocol, training memory and inference
  FLOPs (Table 6), one JSON + one printed table.

Rows of the table come from :data:`PRETRAIN_METHODS`; another paper's method
joins by adding ``name -> fn(root, run_dir, cfg, opts, split) -> VideoBackbone``
(and, for Table 6, an entry in :data:`MEMORY_PROBES`).
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from echossl.data.echonet import EchoNetDynamic
from echossl.engine import TrainerOptions, best_checkpoint, fit, prepare_run
from echossl.errors import EchosslError
from echossl.evaluation import protocols as P
from echossl.evaluation.metrics import write_metrics_json
from echossl.engine.cost import count_flops
from echossl.engine.devices import config_loader as _loader
from echossl.engine.devices import training_device as _device

TASKS = ("discover", "videomae", "video-dino")


# --------------------------------------------------------------------------- #
# Building and loading
# --------------------------------------------------------------------------- #


def build_module(variant: str, cfg: dict, norm: dict):
    """A :class:`~echossl.methods.discover.DiscoverModule` from the ``discover:`` config section."""
    from echossl.methods.discover import VARIANTS, DiscoverModule

    if variant not in VARIANTS:
        raise EchosslError(f"--variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
    d = cfg["discover"]
    return DiscoverModule(variant=variant, video=dict(d["video"]), image=dict(d["image"]),
                          decoder=dict(d["decoder"]), head=dict(d["head"]), mask_ratio=float(d["mask_ratio"]),
                          image_mask_ratio=d.get("image_mask_ratio"),
                          views=int(d["views"]), image_frames=d.get("image_frames"), temps=dict(d["temps"]),
                          scd=dict(d["scd"]), ema=dict(d["ema"]),
                          lr=float(d["lr"]) if d.get("lr") is not None else float(d.get("base_lr", 1.5e-4)),
                          base_lr=None if d.get("lr") is not None else float(d.get("base_lr", 1.5e-4)),
                          batch_size=int(d["batch_size"]), grad_clip=d.get("grad_clip", 3.0),
                          freeze_last_layer=int(d.get("freeze_last_layer", 1)),
                          weight_decay=float(d["weight_decay"]), warmup_fraction=float(d["warmup_fraction"]),
                          norm=dict(norm), length=int(d["length"]), period=int(d["period"]), task=variant)


def _size(norm: dict) -> int:
    return int(norm.get("size") or 112)


def load_discover_backbone(checkpoint) -> P.VideoBackbone:
    """The inference video encoder of a ``discover``/``videomae``/``video-dino`` checkpoint."""
    from echossl.engine import load_checkpoint
    from echossl.methods.discover import DiscoverModule

    ckpt = load_checkpoint(checkpoint, expect_task=TASKS)
    hp = dict(ckpt["hyper_parameters"])
    module = DiscoverModule(**hp)
    module.load_state_dict(ckpt["state_dict"])
    norm = hp["norm"]
    return P.vit_backbone(module.net.eval(), length=hp["length"], period=hp["period"], size=_size(norm),
                          mean=norm["mean"], std=norm["std"], name=hp["variant"])


for _task in TASKS:
    P.register_backbone(_task, load_discover_backbone)


def random_backbone(cfg: dict, norm: dict, seed: int = 0) -> P.VideoBackbone:
    """The same video ViT with random initial weights (the "random init" row)."""
    from echossl.models.vit import build_vit

    torch.manual_seed(seed)
    d = cfg["discover"]
    return P.vit_backbone(build_vit(d["video"]).eval(), length=d["length"], period=d["period"], size=_size(norm),
                          mean=norm["mean"], std=norm["std"], name="random init")


# --------------------------------------------------------------------------- #
# Pre-training
# --------------------------------------------------------------------------- #


def normal_only(cfg: dict) -> bool:
    """Whether pre-training sees normal TRAIN videos only (``discover.normal_only``).

    ``auto`` (default): when the kNN anomaly protocol is among ``discover.eval.protocols``, as
    the paper ("trained solely on normal videos"); ``true``/``false`` force it."""
    d = cfg["discover"]
    value = d.get("normal_only", "auto")
    if value in (None, "auto"):
        return "knn" in list(d["eval"]["protocols"])
    return bool(value)


def normal_videos(root, names: list[str]) -> list[str]:
    """The videos of ``names`` whose EF is normal (45 <= EF <= 75, the anomaly protocol's label)."""
    from echossl.data.echonet import read_filelist

    table = read_filelist(root).set_index("FileName")
    ef = table.loc[list(names), "EF"].to_numpy(dtype=float)
    keep = [n for n, a in zip(names, P.abnormal(ef)) if not a]
    if not keep:
        raise EchosslError(f"{Path(root) / 'FileList.csv'} has no normal-EF TRAIN video to pre-train on")
    return keep


def write_collapse(run: Path, collapse: dict | None) -> None:
    """Add the ``collapse`` object (CONTRACT) to ``RUN/metrics.json`` and keep it in ``RUN/collapse.json``."""
    from echossl.io import atomic_write_text

    keys = ("video_target_entropy_ratio", "image_target_entropy_ratio", "video_batch_entropy_ratio",
            "image_batch_entropy_ratio", "embedding_std")
    if collapse is None:
        record = run / "collapse.json"
        if not record.is_file():
            return
        collapse = json.loads(record.read_text())
    section = {k: _jsonable(collapse.get(k)) for k in keys}
    section.update({k: _jsonable(v) for k, v in collapse.items() if k not in keys})
    atomic_write_text(run / "collapse.json", json.dumps(section, indent=2) + "\n")
    metrics_path = run / "metrics.json"
    if metrics_path.is_file():
        metrics = json.loads(metrics_path.read_text())
        metrics["collapse"] = section
        atomic_write_text(metrics_path, json.dumps(metrics, indent=2) + "\n")


def pretrain(root, out, cfg: dict, opts: TrainerOptions, *, variant: str = "discover", init: str | None = None,
             split=None, evaluate: bool = True, camus=None) -> Path:
    """Pre-train one variant on the TRAIN videos; ``best.ckpt`` by VAL loss; metrics on TEST.

    With :func:`normal_only` only the normal-EF TRAIN videos are used. The collapse monitors of
    the last epoch go to ``RUN/metrics.json`` (``collapse``) and ``RUN/collapse.json``."""
    from echossl.pipelines.semisupervised_ef import split_data

    split = split or split_data(root, cfg)
    run = prepare_run(out, cfg, opts.resume)
    d = cfg["discover"]
    # same seed as the "random init" row: every method starts from that very encoder
    torch.manual_seed(int(cfg["seed"]))
    module = build_module(variant, cfg, split.norm)
    if init:
        from echossl.engine import load_init_weights

        load_init_weights(module, init, allow_partial=bool(cfg.get("init_partial", False)),
                          record=run / "init.json")
    n = split.norm
    common = dict(length=int(d["length"]), period=int(d["period"]), mean=n["mean"], std=n["std"], size=n["size"])
    names = normal_videos(split.root, split.train) if normal_only(cfg) else split.train
    train = EchoNetDynamic(split.root, "TRAIN", filenames=names, clips=1, pad=d.get("pad"), **common)
    val = EchoNetDynamic(split.root, "VAL", filenames=split.val, clips=1, **common)
    bs = int(d["batch_size"])
    trainer = fit(module, _loader(train, bs, cfg, True, drop_last=len(train) > bs), _loader(val, bs, cfg, False),
                  run, opts, monitor="val_loss", mode="min")
    if trainer.is_global_zero:
        collapse = dict(module.collapse)
        collapse["pretrain_videos"] = len(names)
        write_collapse(run, collapse)
    if evaluate and trainer.is_global_zero:  # under DDP, evaluate once
        evaluate_checkpoint(best_checkpoint(run), split.root, "TEST", run / "metrics.json", cfg=cfg, camus=camus,
                            device=_device(opts))
        write_collapse(run, None)
    return run


# --------------------------------------------------------------------------- #
# Evaluation
# --------------------------------------------------------------------------- #


def evaluate_backbone(backbone: P.VideoBackbone, root, cfg: dict, *, split: str = "TEST", camus=None,
                      device=None, protocols=None, seed: int = 0, items: bool = False) -> dict:
    """Run the configured protocols on one backbone; returns a flat metrics dict.

    Keys: kNN zero-shot ``accuracy, balanced_accuracy, precision, recall, f1, auc,
    knn_k``; linear probes ``probe_*`` and their EF regression also as
    ``mae, rmse, r2``; ``finetune_*``; CAMUS ``dice, dice_lv_endo, dice_lv_epi, dice_la``.
    With ``items``, also ``items``: the per-item values behind the paired claims
    (``knn_pred``, ``label``, ``probe_abs_error`` per TEST video; ``seg_dice``,
    ``seg_patient`` per CAMUS TEST image). The backbone's weights are left untouched.
    """
    e = cfg["discover"]["eval"]
    wanted = list(protocols if protocols is not None else e["protocols"])
    out: dict = {}
    per: dict = {}
    if root is not None and ({"knn", "probe"} & set(wanted)):
        feats = {}
        splits = {"TRAIN", "VAL", split, str(e.get("probe_fit_split", "TRAIN")).upper()}
        for s in sorted(splits):
            x, ef, _ = P.clip_features(backbone, root, s, clips=int(e["clips"]), batch_size=int(e["batch_size"]),
                                       device=device)
            feats[s] = (x, ef)
        out["n"] = int(len(feats[split][1]))
        if "knn" in wanted:
            knn = P.knn_anomaly(feats["TRAIN"], feats["VAL"], feats[split], ks=e["knn_ks"], items=True)
            per.update({"knn_pred": knn["items"]["pred"], "label": knn["items"]["label"]})
            out.update({k: v for k, v in knn.items() if k not in ("k", "val_balanced_accuracy", "items")})
            out["knn_k"] = knn["k"]
            out["knn_val_balanced_accuracy"] = knn["val_balanced_accuracy"]
        if "probe" in wanted:
            fit_split = str(e.get("probe_fit_split", "TRAIN")).upper()
            select = "VAL" if fit_split != "VAL" else "TRAIN"  # regularisation picked off the fit split, never TEST
            probe = P.linear_probes(feats[fit_split], feats[split], feats[select], epochs=int(e["probe_epochs"]),
                                    seed=seed, bootstrap=int(e["bootstrap"]), items=True)
            pi = probe.pop("items")
            per["probe_abs_error"] = np.abs(np.subtract(pi["ef_pred"], pi["ef"])).tolist()
            per.setdefault("label", P.abnormal(pi["ef"]).tolist())
            out.update(probe)
            for k in ("mae", "rmse", "r2", "mae_ci95", "rmse_ci95", "r2_ci95"):
                out[k] = probe[f"probe_{k}"]
    if root is not None and "finetune" in wanted:
        f = e["finetune"]
        out.update(P.partial_finetune_ef(backbone, root, blocks=int(f["blocks"]), epochs=int(f["epochs"]),
                                         batch_size=int(f["batch_size"]), lr=float(f["lr"]),
                                         head_lr=float(f.get("head_lr", 1e-3)),
                                         weight_decay=float(f["weight_decay"]), val_clips=int(f.get("val_clips", 1)),
                                         test_clips=int(e["clips"]), test_split=split, seed=seed, device=device,
                                         bootstrap=int(e["bootstrap"])))
    if camus is not None and "seg" in wanted:
        s = e["seg"]
        out.update(P.frozen_segmentation(backbone, camus, epochs=int(s["epochs"]), batch_size=int(s["batch_size"]),
                                         lr=float(s["lr"]), width=int(s["width"]), seed=seed, device=device,
                                         items=True))
        si = out.pop("items")
        per.update({"seg_dice": si["dice"], "seg_patient": si["patient"]})
    if items:
        out["items"] = per
    return out


def evaluate_checkpoint(checkpoint, data, split, out_json, *, cfg: dict, camus=None, device=None) -> dict:
    """``echossl evaluate`` for DISCOVER checkpoints: EchoNet protocols, or segmentation on a CAMUS folder."""
    from echossl.data.check import detect_format

    backbone = P.load_backbone(checkpoint)
    fmt = detect_format(data)
    split = str(split).upper()
    if fmt == "camus":
        metrics = evaluate_backbone(backbone, None, cfg, camus=data, device=device, protocols=["seg"])
        n = metrics.pop("seg_n")
        split = "CAMUS"
    elif fmt == "echonet":
        metrics = evaluate_backbone(backbone, data, cfg, split=split, camus=camus, device=device)
        n = metrics.pop("n", 0)
        metrics.pop("seg_n", None)
    else:
        raise EchosslError(f"{data} is a {fmt} folder; DISCOVER checkpoints are evaluated on EchoNet or CAMUS data")
    from echossl.engine import load_checkpoint

    task = load_checkpoint(checkpoint)["hyper_parameters"]["task"]
    write_metrics_json(out_json, task=task, split=split, n=n, **metrics)
    return metrics


# --------------------------------------------------------------------------- #
# Table 6: training memory and inference FLOPs
# --------------------------------------------------------------------------- #


def inference_gflops(backbone: P.VideoBackbone) -> float:
    """GFLOPs of one clip embedding (batch 1), attention included (:func:`count_flops`)."""
    x = torch.zeros(1, 3, backbone.length, backbone.size, backbone.size)
    backbone = backbone.eval().cpu()
    return count_flops(backbone.embed, x) / 1e9


def _rss_kb() -> int:
    """Current resident set size in KiB (Linux ``/proc/self/statm``)."""
    import os

    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") // 1024


def _memory_probe_child(variant: str, cfg: dict, norm: dict, steps: int, queue) -> None:
    """In a fresh process: RSS peak of ``steps`` optimisation steps at batch 1 minus the RSS before them."""
    import resource

    torch.manual_seed(0)
    d = cfg["discover"]
    module = build_module(variant, cfg, norm)
    params = [p for p in module.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    x = torch.randn(1, 3, int(d["length"]), _size(norm), _size(norm))
    before = _rss_kb()
    for _ in range(steps):
        loss = module.losses(x)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    queue.put({"train_mem_mb": max(0, peak - before) / 1024.0, "train_peak_rss_mb": peak / 1024.0})


# row -> a picklable function measuring its training memory in a child process
MEMORY_PROBES = {"videomae": _memory_probe_child, "video-dino": _memory_probe_child,
                 "discover": _memory_probe_child}


def training_memory(row: str, cfg: dict, norm: dict, steps: int = 2) -> dict:
    """Training memory of one method, measured in a fresh (spawned) process so peaks do not mix.

    ``resource.getrusage().ru_maxrss`` is the process's peak; its increase over
    the RSS right before the steps is the memory that training itself needs
    (activations, gradients, optimizer state). Table 6 used batch 1; so does this.
    """
    import multiprocessing as mp

    probe = MEMORY_PROBES.get(row)
    if probe is None:
        return {"train_mem_mb": None, "train_peak_rss_mb": None}
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=probe, args=(row, cfg, norm, steps, queue))
    proc.start()
    try:
        result = queue.get(timeout=1800)
    finally:
        proc.join(timeout=60)
    return result


# --------------------------------------------------------------------------- #
# The comparison table
# --------------------------------------------------------------------------- #


def _pretrain_variant(variant: str):
    def run(root, run_dir: Path, cfg: dict, opts: TrainerOptions, split) -> P.VideoBackbone:
        # a finished run (marked by pretrain_seconds.json) is reused; an interrupted one resumes
        if not (run_dir / "pretrain_seconds.json").is_file():
            resume = (run_dir / "checkpoints" / "last.ckpt").exists()
            pretrain(root, run_dir, cfg, replace(opts, resume=resume), variant=variant, split=split,
                     evaluate=False)
        return P.load_backbone(best_checkpoint(run_dir))

    return run


# Row name -> fn(root, run_dir, cfg, opts, split) -> VideoBackbone. Other papers'
# pre-training methods join the table by adding an entry here.
PRETRAIN_METHODS = {"videomae": _pretrain_variant("videomae"), "video-dino": _pretrain_variant("video-dino"),
                    "discover": _pretrain_variant("discover")}

ORACLE, FLOOR = "oracle", "random init"
ROW_LABELS = {FLOOR: "random init", ORACLE: "oracle (supervised)", "videomae": "VideoMAE-style",
              "video-dino": "video-DINO only", "discover": "DISCOVER"}

PROTOCOL_COLUMNS = (("balanced_accuracy", "kNN bAcc"), ("f1", "kNN F1"), ("auc", "kNN AUC"),
                    ("probe_balanced_accuracy", "LP bAcc"), ("probe_f1", "LP F1"), ("probe_mae", "LP MAE"),
                    ("probe_rmse", "LP RMSE"), ("finetune_mae", "FT MAE"), ("finetune_rmse", "FT RMSE"))
SEG_COST_COLUMNS = (("dice", "Dice"), ("dice_lv_endo", "LV endo"), ("dice_lv_epi", "LV epi"), ("dice_la", "LA"),
                    ("train_mem_mb", "train MB"), ("gflops", "GFLOPs"), ("pretrain_seconds", "pretrain s"),
                    ("weight_change", "|dW|/|W0|"))

#: The paired claims: (metric key, text, better). Each is made for DISCOVER vs VideoMAE-style,
#: DISCOVER vs random init, and oracle vs random init ("protocol informative").
CLAIM_METRICS = (("knn_bacc", "kNN balanced accuracy", "higher"), ("probe_mae", "linear-probe EF MAE", "lower"),
                 ("seg_dice", "frozen CAMUS Dice", "higher"))
#: claim metric -> the per-item value of :func:`combine_items` it is the mean of
ITEM_KEYS = {"knn_bacc": "knn_correct", "probe_mae": "probe_abs_error", "seg_dice": "seg_dice"}


def _seed_list(cfg: dict) -> list[int]:
    """Training seeds of ``reproduce``: ``seed``, ``seed + 1``, ... (``discover.reproduce.seeds``)."""
    base = int(cfg["seed"])
    return [base + i for i in range(max(1, int(cfg["discover"]["reproduce"].get("seeds", 1))))]


def _run_dir(out: Path, name: str, seed: int, base: int) -> Path:
    return out / "runs" / (name if seed == base else f"{name}-seed{seed}")


def oracle_backbones(cfg: dict, split, camus, seed: int, device=None) -> tuple[P.VideoBackbone, P.VideoBackbone | None]:
    """The positive controls: the random-init ViT of ``seed`` trained with supervision on the
    downstream labels. One copy regresses EF on every TRAIN video (for the kNN and probe
    protocols, whose anomaly label is a function of EF), one segments the CAMUS TRAIN
    patients (for the frozen segmentation protocol; None without CAMUS data).
    Settings: ``discover.reproduce.oracle``."""
    o = cfg["discover"]["reproduce"]["oracle"]
    rnd = random_backbone(cfg, split.norm, seed)
    ef = P.supervised_ef_backbone(rnd, split.root, epochs=int(o["epochs"]), batch_size=int(o["batch_size"]),
                                  lr=float(o["lr"]), head_lr=float(o["head_lr"]),
                                  weight_decay=float(o["weight_decay"]), seed=seed, device=device)
    seg = None
    if camus is not None and "seg" in cfg["discover"]["eval"]["protocols"]:
        seg = P.supervised_seg_backbone(rnd, camus, epochs=int(o["seg_epochs"]), batch_size=int(o["seg_batch_size"]),
                                        lr=float(o["seg_lr"]), width=int(cfg["discover"]["eval"]["seg"]["width"]),
                                        seed=seed, device=device)
    return ef, seg


def weight_change(backbone: P.VideoBackbone, start: P.VideoBackbone) -> float:
    """``||W - W0|| / ||W0||`` over the encoder weights both share: how far training moved them."""
    a, b = backbone.encoder.state_dict(), start.encoder.state_dict()
    keys = [k for k in a if k in b and a[k].shape == b[k].shape and a[k].is_floating_point()]
    num = sum(float((a[k].float() - b[k].float()).pow(2).sum()) for k in keys)
    den = sum(float(b[k].float().pow(2).sum()) for k in keys)
    return float(np.sqrt(num / den)) if den > 0 else float("nan")


def _fingerprint(cfg: dict, data, camus, name: str, seed: int) -> str:
    import hashlib

    key = json.dumps({"discover": cfg["discover"], "data": str(data), "camus": str(camus), "name": name,
                      "seed": seed, "split_seed": cfg.get("split_seed", 0)}, sort_keys=True, default=str)
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def _evaluate_row(name: str, seed: int, out: Path, cfg: dict, opts: TrainerOptions, split, camus, device,
                  base: int) -> dict:
    """Metrics and per-item values of one row and seed, cached in ``OUT/evals/NAME-seedS.json``."""
    from echossl.io import atomic_write_text

    cache = out / "evals" / f"{name}-seed{seed}.json"
    fp = _fingerprint(cfg, split.root, camus, name, seed)
    if cache.is_file():
        record = json.loads(cache.read_text())
        if record.get("fingerprint") == fp:
            return record
    cfg_s = {**cfg, "seed": seed}
    t0 = time.time()
    wanted = list(cfg["discover"]["eval"]["protocols"])
    extra: dict = {}
    if name == FLOOR:
        backbone, seconds = random_backbone(cfg_s, split.norm, seed), 0.0
        metrics = evaluate_backbone(backbone, split.root, cfg_s, camus=camus, device=device, seed=seed, items=True)
    elif name == ORACLE:
        backbone, seg_backbone = oracle_backbones(cfg_s, split, camus, seed, device)
        seconds = time.time() - t0
        metrics = evaluate_backbone(backbone, split.root, cfg_s, device=device, seed=seed, items=True,
                                    protocols=[w for w in wanted if w in ("knn", "probe")])
        if seg_backbone is not None:
            seg = evaluate_backbone(seg_backbone, None, cfg_s, camus=camus, device=device, seed=seed, items=True,
                                    protocols=["seg"])
            metrics["items"].update(seg.pop("items"))
            metrics.update(seg)
        extra["weight_change"] = weight_change(backbone, random_backbone(cfg_s, split.norm, seed))
    else:
        run_dir = _run_dir(out, name, seed, base)
        backbone = PRETRAIN_METHODS[name](split.root, run_dir, cfg_s, replace(opts, seed=seed), split)
        seconds = _pretrain_seconds(run_dir, time.time() - t0)
        metrics = evaluate_backbone(backbone, split.root, cfg_s, camus=camus, device=device, seed=seed, items=True)
        write_metrics_json(run_dir / "metrics.json", task=name, split="TEST", n=metrics.get("n", 0),
                           **{k: v for k, v in metrics.items() if k not in ("n", "seg_n", "items")})
        write_collapse(run_dir, None)
        if name in ("videomae", "video-dino", "discover"):
            extra["weight_change"] = weight_change(backbone, random_backbone(cfg_s, split.norm, seed))
    per = metrics.pop("items")
    record = {"fingerprint": fp, "name": name, "seed": seed,
              "metrics": {k: _jsonable(v) for k, v in {**metrics, **extra, "pretrain_seconds": seconds}.items()},
              "items": {k: _jsonable(list(v)) for k, v in per.items()}, "gflops": inference_gflops(backbone)}
    atomic_write_text(cache, json.dumps(record) + "\n")
    return record


def combine_items(records: list[dict]) -> dict:
    """Per-item values of one row over its seeds -> the per-item means (:func:`stats.combine_seeds`).

    Returns ``label``, ``knn_correct`` (fraction of seeds right), ``probe_abs_error`` and ``seg_dice``
    (each averaged over seeds) and ``seg_patient``, for the keys the records have."""
    from echossl.evaluation import stats

    first = records[0]["items"]
    out: dict = {}
    if "label" in first:
        out["label"] = np.asarray(first["label"])
    if "knn_pred" in first:
        out["knn_correct"] = stats.combine_seeds([np.asarray(r["items"]["knn_pred"]) == np.asarray(r["items"]["label"])
                                                  for r in records])
    for key in ("probe_abs_error", "seg_dice"):
        if key in first:
            out[key] = stats.combine_seeds([r["items"][key] for r in records])
    if "seg_patient" in first:
        out["seg_patient"] = np.asarray(first["seg_patient"])
    return out


def discover_claims(items: dict, n_boot: int = 10000, seed: int = 0) -> tuple[list[dict], dict]:
    """Paired claims over TEST items from per-row per-item values (:func:`combine_items`).

    For each metric of :data:`CLAIM_METRICS` the rows present give: DISCOVER vs VideoMAE-style
    (the paper's claim), DISCOVER vs random init, and "protocol informative": the oracle
    beats the random-init floor by more than the paired CI (:func:`stats.informative`).
    kNN balanced accuracy is recomputed in every replicate
    (:func:`stats.paired_balanced_accuracy`); the unit is the video, for CAMUS the patient.

    Returns:
        ``(claims, informative)``: CONTRACT.md claim dicts, and per metric
        ``{"difference", "ci95", "informative"}`` (oracle - floor).
    """
    from echossl.evaluation import stats

    def pair(metric: str, a: str, b: str):
        if a not in items or b not in items:
            return None
        ia, ib = items[a], items[b]
        if metric == "knn_bacc":
            if "knn_correct" not in ia or "knn_correct" not in ib:
                return None
            return stats.paired_balanced_accuracy(ia["knn_correct"], ib["knn_correct"], ia["label"],
                                                  n_boot=n_boot, seed=seed)
        key = ITEM_KEYS[metric]
        if key not in ia or key not in ib:
            return None
        groups = ia.get("seg_patient") if metric == "seg_dice" else None
        return stats.paired_bootstrap(ia[key], ib[key], groups=groups, n_boot=n_boot, seed=seed)

    claims, info = [], {}
    for metric, text, better in CLAIM_METRICS:
        side = "higher" if better == "higher" else "lower"
        for a, b, label in (("discover", "videomae", "DISCOVER beats VideoMAE-style"),
                            ("discover", FLOOR, "DISCOVER beats random init")):
            r = pair(metric, a, b)
            if r is not None:
                claims.append(stats.claim(f"{label} on {text} ({ROW_LABELS[a]} - {ROW_LABELS[b]})", r[0], r[1], side))
        r = pair(metric, ORACLE, FLOOR)
        if r is not None:
            c = stats.claim(f"protocol informative: oracle beats random init on {text} (oracle - random init)",
                            r[0], r[1], side)
            claims.append(c)
            info[metric] = {"difference": c["difference"], "ci95": c["ci95"], "informative": c["verdict"] == "holds"}
    return claims, info


def _mean_row(records: list[dict]) -> dict:
    """A row's metrics averaged over seeds (numbers); per-seed intervals are dropped when seeds > 1."""
    keys = list(records[0]["metrics"])
    row = {}
    for k in keys:
        vals = [r["metrics"].get(k) for r in records]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals):
            row[k] = float(np.mean(vals)) if len(vals) > 1 else vals[0]
        elif len(records) == 1:
            row[k] = vals[0]
    return row


def reproduce_discover(out, cfg: dict, opts: TrainerOptions, *, data=None, camus=None, methods=None) -> dict:
    """Pre-train every method on the same EchoNet data, run every protocol, write ``OUT/results.json``.

    Rows: random init (the floor), the supervised oracle (:func:`oracle_backbones`), then
    the methods. Every row is run for each seed of :func:`_seed_list` (the labeled data
    fixed); per-item TEST values are averaged over seeds and the paired claims of
    :func:`discover_claims` end the table (``results.json`` ``claims`` and ``n_test``).
    Evaluations are cached under ``OUT/evals/`` (keyed on the config), so adding seeds
    reruns only the new ones.

    Args:
        out: folder for data (when simulated), runs and results.
        data: EchoNet-Dynamic folder; simulated into ``OUT/data/echonet`` when None.
        camus: CAMUS folder; simulated into ``OUT/data/camus`` when None.
        methods: subset of :data:`PRETRAIN_METHODS` (default all).
    """
    from echossl.pipelines.semisupervised_ef import split_data

    t_start = time.time()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rep = cfg["discover"]["reproduce"]
    if data is None:
        data = out / "data" / "echonet"
        if not (data / "FileList.csv").is_file():
            from echossl.simulate.echonet import simulate_echonet

            simulate_echonet(data, int(rep["videos"]), seed=int(cfg["seed"]), size=int(cfg["simulate"]["size"]))
    if camus is None:
        camus = out / "data" / "camus"
        if not camus.is_dir() or not any(camus.glob("patient*")):
            from echossl.simulate.camus import simulate_camus

            simulate_camus(camus, int(rep["camus_patients"]), seed=int(cfg["seed"]))
    split = split_data(data, cfg)
    device = _device(opts)
    names = list(methods) if methods is not None else list(PRETRAIN_METHODS)
    unknown = [m for m in names if m not in PRETRAIN_METHODS]
    if unknown:
        raise EchosslError(f"unknown method(s) {', '.join(unknown)}; known: {', '.join(PRETRAIN_METHODS)}")
    seeds = _seed_list(cfg)
    use_oracle = bool(rep.get("oracle", {}).get("enabled", True))
    order = [FLOOR, *([ORACLE] if use_oracle else []), *names]
    records: dict[str, list[dict]] = {}
    rows: list[dict] = []
    for seed in seeds:  # all rows of one seed before the next seed: a cut-short run still pairs
        for name in order:
            records.setdefault(name, []).append(_evaluate_row(name, seed, out, cfg, opts, split, camus, device,
                                                              seeds[0]))
    for name in order:
        recs = records[name]
        row = {"method": ROW_LABELS.get(name, name), "key": name, "seeds": len(recs), **_mean_row(recs),
               "gflops": recs[0]["gflops"]}
        if name not in (ORACLE,):
            row.update(training_memory(name, cfg, split.norm, int(rep.get("memory_steps", 2))))
        rows.append(row)
    items = {name: combine_items(records[name]) for name in order}
    claims, info = discover_claims(items, n_boot=int(rep.get("n_boot", 10000)))
    first = records[FLOOR][0]["items"]
    n_test = {"videos": len(first.get("label", [])), "camus_images": len(first.get("seg_dice", [])),
              "camus_patients": len(set(first.get("seg_patient", [])))}
    result = _write_results(out, cfg, rows, t_start, claims=claims, informative=info, n_test=n_test, seeds=seeds)
    print_table(result)
    return result


def _pretrain_seconds(run_dir: Path, measured: float) -> float:
    """Seconds of pre-training, kept in ``RUN/pretrain_seconds.json`` so a re-run reports the original."""
    record = run_dir / "pretrain_seconds.json"
    if record.is_file():
        return float(json.loads(record.read_text())["seconds"])
    from echossl.io import atomic_write_text

    atomic_write_text(record, json.dumps({"seconds": measured}))
    return measured


def _jsonable(value):
    if isinstance(value, (np.floating, np.integer)):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _write_results(out: Path, cfg: dict, rows: list[dict], t_start: float, *, claims=(), informative=None,
                   n_test=None, seeds=()) -> dict:
    from echossl.io import atomic_write_text

    result = {"preset": cfg.get("preset"), "split": "TEST", "seed": cfg.get("seed"), "seeds": list(seeds),
              "n_test": n_test, "rows": [{k: _jsonable(v) for k, v in r.items()} for r in rows],
              "claims": [{k: _jsonable(v) for k, v in c.items()} for c in claims],
              "informative": informative or {}, "seconds": time.time() - t_start}
    atomic_write_text(out / "results.json", json.dumps(result, indent=2) + "\n")
    return result


def print_table(result: dict) -> None:
    """The comparison (TEST split) as two rich tables: protocols, then segmentation and cost."""
    from rich.console import Console
    from rich.table import Table

    import sys

    console = Console(width=None if sys.stdout.isatty() else 200)
    for title, columns in (("anomaly detection and EF", PROTOCOL_COLUMNS),
                           ("CAMUS segmentation and cost (Table 6)", SEG_COST_COLUMNS)):
        table = Table(title=f"DISCOVER comparison: {title} ({result.get('preset')} preset, TEST split)")
        table.add_column("method", no_wrap=True)
        shown = [(k, label) for k, label in columns if any(r.get(k) is not None for r in result["rows"])]
        for _, label in shown:
            table.add_column(label, justify="right")
        for r in result["rows"]:
            cells = []
            for key, _ in shown:
                v = r.get(key)
                cells.append("-" if v is None else f"{v:.0f}" if key in ("train_mem_mb", "pretrain_seconds")
                             else f"{v:.2f}" if key.endswith(("mae", "rmse")) or key == "gflops"
                             else f"{v:.3f}" if isinstance(v, float) else str(v))
            table.add_row(r["method"], *cells)
        console.print(table)
    if result.get("claims"):
        from echossl.evaluation import stats

        n = result.get("n_test") or {}
        table = Table(title=f"Claims (paired bootstrap over {n.get('videos')} TEST videos / "
                            f"{n.get('camus_patients')} CAMUS TEST patients; {len(result.get('seeds') or [1])} seed(s))")
        for col in ("claim", "difference [95% CI]", "verdict"):
            table.add_column(col)
        for r in stats.format_claims(result["claims"]):
            table.add_row(*r.values())
        console.print(table)
