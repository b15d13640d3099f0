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
from torch.utils.data import DataLoader

from echossl.data.echonet import EchoNetDynamic
from echossl.engine import TrainerOptions, best_checkpoint, fit, prepare_run
from echossl.errors import EchosslError
from echossl.evaluation import protocols as P
from echossl.evaluation.metrics import write_metrics_json

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
    from echossl.checkpoints import load_checkpoint
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


def _loader(ds, batch_size: int, cfg: dict, shuffle: bool, drop_last: bool = False) -> DataLoader:
    workers = int(cfg["data"].get("workers", 0))
    return DataLoader(ds, batch_size=min(batch_size, max(1, len(ds))), shuffle=shuffle, num_workers=workers,
                      persistent_workers=workers > 0, drop_last=drop_last)


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
        from echossl.checkpoints import load_init_weights

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


def _device(opts: TrainerOptions) -> torch.device:
    if opts.accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


# --------------------------------------------------------------------------- #
# Evaluation
# --------------------------------------------------------------------------- #


def evaluate_backbone(backbone: P.VideoBackbone, root, cfg: dict, *, split: str = "TEST", camus=None,
                      device=None, protocols=None, seed: int = 0) -> dict:
    """Run the configured protocols on one backbone; returns a flat metrics dict.

    Keys: kNN zero-shot ``accuracy, balanced_accuracy, precision, recall, f1, auc,
    knn_k``; linear probes ``probe_*`` and their EF regression also as
    ``mae, rmse, r2``; ``finetune_*``; CAMUS ``dice, dice_lv_endo, dice_lv_epi, dice_la``.
    The backbone's weights are left untouched.
    """
    e = cfg["discover"]["eval"]
    wanted = list(protocols if protocols is not None else e["protocols"])
    out: dict = {}
    if root is not None and ({"knn", "probe"} & set(wanted)):
        feats = {}
        splits = {"TRAIN", "VAL", split, str(e.get("probe_fit_split", "TRAIN")).upper()}
        for s in sorted(splits):
            x, ef, _ = P.clip_features(backbone, root, s, clips=int(e["clips"]), batch_size=int(e["batch_size"]),
                                       device=device)
            feats[s] = (x, ef)
        out["n"] = int(len(feats[split][1]))
        if "knn" in wanted:
            knn = P.knn_anomaly(feats["TRAIN"], feats["VAL"], feats[split], ks=e["knn_ks"])
            out.update({k: v for k, v in knn.items() if k not in ("k", "val_balanced_accuracy")})
            out["knn_k"] = knn["k"]
            out["knn_val_balanced_accuracy"] = knn["val_balanced_accuracy"]
        if "probe" in wanted:
            fit_split = str(e.get("probe_fit_split", "TRAIN")).upper()
            select = "VAL" if fit_split != "VAL" else "TRAIN"  # regularisation picked off the fit split, never TEST
            probe = P.linear_probes(feats[fit_split], feats[split], feats[select], epochs=int(e["probe_epochs"]),
                                    seed=seed, bootstrap=int(e["bootstrap"]))
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
                                         lr=float(s["lr"]), width=int(s["width"]), seed=seed, device=device))
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
    from echossl.checkpoints import load_checkpoint

    task = load_checkpoint(checkpoint)["hyper_parameters"]["task"]
    write_metrics_json(out_json, task=task, split=split, n=n, **metrics)
    return metrics


# --------------------------------------------------------------------------- #
# Table 6: training memory and inference FLOPs
# --------------------------------------------------------------------------- #


def count_flops(fn, *args) -> int:
    """FLOPs of ``fn(*args)`` counted by ``FlopCounterMode``, attention included.

    On CPU, ``scaled_dot_product_attention`` dispatches to a fused kernel that the counter
    does not know, so attention counted as 0 (22 % of the shipped ViT's FLOPs); the math
    kernel (explicit matmuls and softmax) is forced while counting."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    with torch.inference_mode(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        fn(*args)
    return int(counter.get_total_flops())


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

ROW_LABELS = {"random init": "random init", "videomae": "VideoMAE-style", "video-dino": "video-DINO only",
              "discover": "DISCOVER"}

PROTOCOL_COLUMNS = (("balanced_accuracy", "kNN bAcc"), ("f1", "kNN F1"), ("auc", "kNN AUC"),
                    ("probe_balanced_accuracy", "LP bAcc"), ("probe_f1", "LP F1"), ("probe_mae", "LP MAE"),
                    ("probe_rmse", "LP RMSE"), ("finetune_mae", "FT MAE"), ("finetune_rmse", "FT RMSE"))
SEG_COST_COLUMNS = (("dice", "Dice"), ("dice_lv_endo", "LV endo"), ("dice_lv_epi", "LV epi"), ("dice_la", "LA"),
                    ("train_mem_mb", "train MB"), ("gflops", "GFLOPs"), ("pretrain_seconds", "pretrain s"))


def reproduce_discover(out, cfg: dict, opts: TrainerOptions, *, data=None, camus=None, methods=None) -> dict:
    """Pre-train every method on the same EchoNet data, run every protocol, write ``OUT/results.json``.

    Args:
        out: folder for data (when simulated), runs and results.
        data: EchoNet-Dynamic folder; simulated into ``OUT/data/echonet`` when None.
        camus: CAMUS folder; simulated into ``OUT/data/camus`` when None.
        methods: subset of :data:`PRETRAIN_METHODS` (default all); "random init" always comes first.
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
    rows = []
    for name in ["random init", *names]:
        t0 = time.time()
        if name == "random init":
            backbone, seconds = random_backbone(cfg, split.norm, int(cfg["seed"])), 0.0
        else:
            run_dir = out / "runs" / name
            backbone = PRETRAIN_METHODS[name](split.root, run_dir, cfg, replace(opts), split)
            seconds = _pretrain_seconds(run_dir, time.time() - t0)
        metrics = evaluate_backbone(backbone, split.root, cfg, camus=camus, device=device, seed=int(cfg["seed"]))
        if name != "random init":  # the run folder gets its metrics.json like any training command
            write_metrics_json(out / "runs" / name / "metrics.json", task=name, split="TEST", n=metrics.get("n", 0),
                               **{k: v for k, v in metrics.items() if k not in ("n", "seg_n")})
            write_collapse(out / "runs" / name, None)
        row = {"method": ROW_LABELS.get(name, name), "key": name, **metrics, "gflops": inference_gflops(backbone),
               "pretrain_seconds": seconds,
               **training_memory(name, cfg, split.norm, int(rep.get("memory_steps", 2)))}
        rows.append(row)
        _write_results(out, cfg, rows, t_start)
    result = _write_results(out, cfg, rows, t_start)
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


def _write_results(out: Path, cfg: dict, rows: list[dict], t_start: float) -> dict:
    from echossl.io import atomic_write_text

    result = {"preset": cfg.get("preset"), "split": "TEST", "seed": cfg.get("seed"),
              "rows": [{k: _jsonable(v) for k, v in r.items()} for r in rows],
              "seconds": time.time() - t_start}
    atomic_write_text(out / "results.json", json.dumps(result, indent=2) + "\n")
    return result


def print_table(result: dict) -> None:
    """The comparison (TEST split) as two rich tables: protocols, then segmentation and cost."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
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
