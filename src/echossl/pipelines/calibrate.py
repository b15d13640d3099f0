"""``echossl simulate calibrate``: small experiments showing the simulated bench can tell methods apart.

Issue 14 asks the simulator for four properties, each measured here through the
project's own pipelines and evaluation:

1. **Labels matter for segmentation.** Supervised LV segmentation
   (:func:`echossl.pipelines.semisupervised_ef.train_seg`, ``css=False``) at 1/8
   of the TRAIN labels against all of them: TEST Dice gap >= 4 points.
2. **Labels matter for EF.** Video-only EF regression
   (:func:`~echossl.pipelines.semisupervised_ef.train_ef`) at 1/8 against all
   labels: TEST MAE gap >= 2.0 EF points.
3. **No texture shortcut to the plane.** Six global intensity statistics of a
   sweep frame (mean, sd, skewness, kurtosis, 10th and 90th percentile of the
   pixels in the fan) classify its plane, leave-one-scan-out, at macro-F1 <= 0.35.
4. **Frozen random features are not enough for CAMUS.** The DISCOVER frozen
   segmentation protocol (:func:`echossl.evaluation.protocols.frozen_segmentation`)
   on a random-init ViT scores clearly below the same ViT and head trained end
   to end on the CAMUS TRAIN labels (the "trained encoder"): gap >= 0.05 Dice.

Every experiment runs at small sizes (the ``SIZES`` table; ``quick`` for tests)
with the cpu preset's methods; the thresholds are the issue's. A pass here says
the bench *can* discriminate; it says nothing about any one method.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from pathlib import Path

import numpy as np

from echossl.io import atomic_write_text

#: Targets from issue 14: (metric, comparison, threshold).
TARGETS = {
    "seg_dice_gap": (">=", 0.04),
    "ef_mae_gap": (">=", 2.0),
    "plane_stats_macro_f1": ("<=", 0.35),
    "camus_frozen_random_gap": (">=", 0.05),
}

#: Experiment sizes: full (``echossl simulate calibrate``) and quick (tests).
SIZES = {
    "full": {"videos": 128, "video_size": 64, "seg_epochs": 25, "ef_videos": 400, "ef_epochs": 80,
             "ef_ceiling_epochs": 20, "sweeps": 10, "sweep_seconds": 40, "camus_patients": 40, "camus_epochs": 20},
    "quick": {"videos": 16, "video_size": 32, "seg_epochs": 1, "ef_videos": 16, "ef_epochs": 1,
              "ef_ceiling_epochs": 1, "sweeps": 3, "sweep_seconds": 10, "camus_patients": 4, "camus_epochs": 1},
}


def _verdict(name: str, value: float) -> bool:
    op, threshold = TARGETS[name]
    return bool(value >= threshold) if op == ">=" else bool(value <= threshold)


# --------------------------------------------------------------------------- #
# 3. planes from global intensity statistics
# --------------------------------------------------------------------------- #


def frame_statistics(frames: np.ndarray, fan: np.ndarray) -> np.ndarray:
    """Six global intensity statistics per frame: ``(F, H, W)`` uint8 -> ``(F, 6)``.

    Mean, standard deviation, skewness, excess kurtosis and the 10th and 90th
    percentiles of the pixels inside the ``(H, W)`` bool ``fan``.
    """
    from scipy import stats

    x = frames[:, fan].astype(np.float64)  # (F, P)
    return np.column_stack([x.mean(1), x.std(1), stats.skew(x, axis=1), stats.kurtosis(x, axis=1),
                            np.percentile(x, 10, axis=1), np.percentile(x, 90, axis=1)])


def plane_shortcut(scans: int, seconds: float, *, seed: int = 0, size: int = 64, fps: float = 15.0) -> dict:
    """Macro-F1 of planes from :func:`frame_statistics`, leave-one-scan-out.

    Scans are simulated in memory (:func:`echossl.simulate.sweep.simulate_sweep_video`).
    Two classifiers are tried, a standardised multinomial logistic regression and
    a random forest; the larger macro-F1 is reported (the shortcut is only as
    absent as the best of them finds it). Predictions of all held-out scans are
    pooled before the F1 is computed, over the classes present in the truth.
    """
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score
    from sklearn.model_selection import LeaveOneGroupOut, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from echossl.simulate.sweep import sector_mask, simulate_sweep_video

    fan = sector_mask(size)
    feats, labels, groups = [], [], []
    for i in range(scans):
        sim = simulate_sweep_video(seed, i, size=size, fps=fps, seconds=seconds)
        feats.append(frame_statistics(sim["frames"], fan))
        labels.append(sim["planes"])
        groups.append(np.full(len(sim["planes"]), i))
    x, y, g = np.concatenate(feats), np.concatenate(labels), np.concatenate(groups)
    x = np.nan_to_num(x)
    out = {"scans": scans, "frames": int(len(y)), "classes": int(len(np.unique(y)))}
    if len(np.unique(g)) < 2:
        out["plane_stats_macro_f1"] = float("nan")
        return out
    models = {
        "logistic": make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)),
        "forest": RandomForestClassifier(n_estimators=100, min_samples_leaf=5, random_state=seed, n_jobs=1),
    }
    for name, model in models.items():
        pred = cross_val_predict(model, x, y, groups=g, cv=LeaveOneGroupOut())
        out[f"plane_stats_macro_f1_{name}"] = float(f1_score(y, pred, average="macro", labels=np.unique(y)))
    out["plane_stats_macro_f1"] = max(out[f"plane_stats_macro_f1_{n}"] for n in models)
    out["chance_macro_f1"] = float(1.0 / out["classes"])
    return out


# --------------------------------------------------------------------------- #
# 1-2. label gaps for segmentation and EF
# --------------------------------------------------------------------------- #


def _cfg(sizes: dict, fraction: float, seed: int) -> dict:
    """The cpu preset at calibration sizes and ``labeled_fraction = fraction``."""
    from echossl.config import load_config

    cfg = load_config("cpu")
    cfg["seed"] = seed
    cfg["labeled_fraction"] = fraction
    cfg["data"]["size"] = sizes["video_size"]
    cfg["data"]["stats_videos"] = min(cfg["data"]["stats_videos"], sizes["videos"])
    return cfg


def label_gaps(root, out, sizes: dict, *, seed: int = 0, threads: int | None = None, progress: bool = False,
               which=("seg", "ef")) -> dict:
    """Supervised segmentation Dice and video-only EF MAE on TEST at 1/8 and at all labels.

    Segmentation runs :func:`~echossl.pipelines.semisupervised_ef.train_seg` with
    ``css=False`` for ``seg_epochs`` epochs (an epoch = one pass over the labeled
    videos, as in the paper, so all labels also means 8x the steps). Its split
    drops the unlabeled videos, which supervised training never reads, so that
    mask inference covers only the labeled, VAL and TEST videos. EF runs
    :func:`~echossl.pipelines.semisupervised_ef.train_ef` for ``ef_epochs``
    (1/8) and ``ef_ceiling_epochs`` (all labels), the cpu preset's ratio.
    """
    from dataclasses import replace

    from echossl.engine import TrainerOptions
    from echossl.pipelines import semisupervised_ef as pipe

    out = Path(out)
    res: dict = {}
    for tag, fraction in (("eighth", 0.125), ("all", 1.0)):
        cfg = _cfg(sizes, fraction, seed)
        split = pipe.split_data(root, cfg)
        res[f"n_labeled_{tag}"] = len(split.labeled)
        res["n_test"] = len(split.test)
        if "seg" in which:
            opts = TrainerOptions(max_epochs=sizes["seg_epochs"], accelerator="cpu", seed=seed, threads=threads,
                                  progress=progress)
            run = pipe.train_seg(root, out / f"seg_{tag}", cfg, opts, css=False, split=replace(split, unlabeled=[]))
            metrics = json.loads((run / "metrics.json").read_text())
            res[f"seg_dice_{tag}"] = float(metrics["dice"])
            res[f"seg_dice_{tag}_ci95"] = metrics.get("dice_ci95")
        if "ef" in which:
            epochs = sizes["ef_epochs"] if tag == "eighth" else sizes["ef_ceiling_epochs"]
            opts = TrainerOptions(max_epochs=epochs, accelerator="cpu", seed=seed, threads=threads, progress=progress)
            run = pipe.train_ef(root, out / f"ef_{tag}", cfg, opts, split=split)
            metrics = json.loads((run / "metrics.json").read_text())
            res[f"ef_mae_{tag}"] = float(metrics["mae"])
            res[f"ef_mae_{tag}_ci95"] = metrics.get("mae_ci95")
    if "seg" in which:
        res["seg_dice_gap"] = res["seg_dice_all"] - res["seg_dice_eighth"]
    if "ef" in which:
        res["ef_mae_gap"] = res["ef_mae_eighth"] - res["ef_mae_all"]
    return res


# --------------------------------------------------------------------------- #
# 4. CAMUS: frozen random features against a trained encoder
# --------------------------------------------------------------------------- #


def _camus_frames(root, split: str, size: int, ed_es_only: bool):
    """``(N, 3, size, size)`` float frames in [0, 255] and ``(N, size, size)`` int64 labels of one split."""
    import torch

    from echossl.data.camus import Camus

    ds = Camus(root, size=size, mirror=False, split=split)
    xs, ys = [], []
    for i in range(len(ds)):
        item = ds[i]
        if item["labels"] is None:
            continue
        idx = sorted({item["ed"], item["es"]}) if ed_es_only else list(range(item["video"].shape[1]))
        xs.append(torch.as_tensor(item["video"])[:, idx].permute(1, 0, 2, 3))
        ys.append(torch.as_tensor(np.asarray(item["labels"])[idx].astype(np.int64)))
    return torch.cat(xs).float(), torch.cat(ys)


def camus_frozen_gap(camus_root, *, epochs: int, seed: int = 0, size: int = 64) -> dict:
    """Dice of the DISCOVER frozen protocol on a random ViT against the same ViT trained end to end.

    ``frozen_random``: :func:`echossl.evaluation.protocols.frozen_segmentation` on
    the cpu preset's random-init DISCOVER ViT (the "random init" row).
    ``trained``: that ViT plus the same :class:`~echossl.evaluation.protocols.SegmentationHead`,
    all weights trained with Dice + CE on every labelled TRAIN frame, each fed
    as a still clip (the frame repeated over the clip length; the time steps of
    the dense features are averaged). Both are scored on the TEST ED/ES frames
    by :func:`~echossl.evaluation.protocols.label_dice` (mean of LV endo, LV epi, LA).
    """
    import lightning as L
    import torch
    import torch.nn.functional as F
    from monai.losses import DiceCELoss
    from torch.utils.data import DataLoader, TensorDataset

    from echossl.config import load_config
    from echossl.engine import fit
    from echossl.evaluation import protocols as P
    from echossl.pipelines.discover import random_backbone

    cfg = load_config("cpu")
    x_tr, y_tr = _camus_frames(camus_root, "TRAIN", size, ed_es_only=False)
    x_te, y_te = _camus_frames(camus_root, "TEST", size, ed_es_only=True)
    mean, std = float(x_tr.mean()), float(x_tr.std())
    norm = {"mean": [mean] * 3, "std": [std] * 3, "size": size}
    width = int(cfg["discover"]["eval"]["seg"]["width"])
    frozen = P.frozen_segmentation(random_backbone(cfg, norm, seed), camus_root, epochs=epochs,
                                   batch_size=int(cfg["discover"]["eval"]["seg"]["batch_size"]), width=width, seed=seed)

    backbone = random_backbone(cfg, norm, seed).train()

    class EndToEnd(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.backbone = backbone
            with torch.no_grad():
                grid = backbone.dense(torch.zeros(1, 3, backbone.length, size, size)).shape[-1]
            self.head = P.SegmentationHead(backbone.dense_dim, 4, width, max(0, round(math.log2(size / grid))))
            self.loss = DiceCELoss(to_onehot_y=True, softmax=True)

        def forward(self, x):  # (B, 3, H, W) in [0, 255] -> (B, 4, H, W) logits
            x = (x - mean) / std
            clip = x.unsqueeze(2).expand(-1, -1, self.backbone.length, -1, -1)
            logits = self.head(self.backbone.dense(clip).mean(2))
            return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = self.loss(self(x), y.unsqueeze(1))
            self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=x.shape[0])
            return loss

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=1e-3)

    torch.manual_seed(seed)
    module = EndToEnd()
    loader = DataLoader(TensorDataset(x_tr, y_tr), batch_size=16, shuffle=True)
    with tempfile.TemporaryDirectory(prefix="echossl-calibrate-") as tmp:
        fit(module, loader, None, Path(tmp), P._trainer_options(epochs, seed, "cpu"), monitor="train_loss",
            mode="min")
    module.eval()
    with torch.inference_mode():
        pred = torch.cat([module(x_te[s:s + 32]).argmax(1) for s in range(0, len(x_te), 32)]).numpy()
    per = P.label_dice(pred, y_te.numpy())
    trained = float(np.mean([v.mean() for v in per.values()]))
    return {"camus_dice_frozen_random": float(frozen["dice"]), "camus_dice_trained": trained,
            "camus_frozen_random_gap": trained - float(frozen["dice"]), "camus_test_images": int(len(x_te))}


# --------------------------------------------------------------------------- #
# all four
# --------------------------------------------------------------------------- #


def run_calibrate(out, *, quick: bool = False, seed: int = 0, threads: int | None = 1, progress: bool = False,
                  log=print) -> dict:
    """Simulate the small data sets into ``out``, run the four experiments, return the figures.

    Returns ``{"figures": {...}, "checks": [{"name", "value", "target", "pass"}], "seconds", "quick"}``.
    """
    from echossl.simulate.camus import simulate_camus
    from echossl.simulate.echonet import simulate_echonet

    t0 = time.time()
    sizes = SIZES["quick" if quick else "full"]
    out = Path(out)
    figures: dict = {}
    sets = {}
    for key, count in (("seg", sizes["videos"]), ("ef", sizes["ef_videos"])):
        echonet = out / ("echonet" if count == sizes["videos"] else f"echonet_{count}")
        if not (echonet / "FileList.csv").exists():
            log(f"simulating {count} EchoNet videos at {sizes['video_size']} px")
            simulate_echonet(echonet, count, seed=seed, size=sizes["video_size"], progress=progress)
        sets[key] = echonet
    log("segmentation and EF at 1/8 and all labels")
    # EF needs the demo's scale (400 videos: 38 labeled at 1/8, 300 at all); segmentation shows its gap on 128
    figures.update(label_gaps(sets["seg"], out / "runs", sizes, seed=seed, threads=threads, progress=progress,
                              which=("seg",)))
    ef = label_gaps(sets["ef"], out / "runs", sizes, seed=seed, threads=threads, progress=progress, which=("ef",))
    figures.update({k: v for k, v in ef.items() if k.startswith("ef_")})
    figures.update({f"ef_{k}": v for k, v in ef.items() if not k.startswith("ef_")})
    log(f"planes from global statistics ({sizes['sweeps']} scans)")
    figures.update(plane_shortcut(sizes["sweeps"], sizes["sweep_seconds"], seed=seed))
    camus = out / "camus"
    if not any(camus.glob("patient*")):
        simulate_camus(camus, sizes["camus_patients"], seed=seed, progress=progress)
    log("CAMUS: frozen random features against a trained encoder")
    figures.update(camus_frozen_gap(camus, epochs=sizes["camus_epochs"], seed=seed))
    checks = []
    for name, (op, threshold) in TARGETS.items():
        value = figures.get(name)
        ok = value is not None and not (isinstance(value, float) and math.isnan(value)) and _verdict(name, value)
        checks.append({"name": name, "value": value, "target": f"{op} {threshold}", "pass": bool(ok)})
    result = {"figures": figures, "checks": checks, "seconds": round(time.time() - t0, 1), "quick": quick,
              "seed": seed}
    atomic_write_text(out / "calibrate.json", json.dumps(result, indent=2, default=float) + "\n")
    return result
