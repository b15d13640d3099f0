"""LightningDataModules for EchoNet-Dynamic and CAMUS, for training your own models with Lightning.

>>> dm = EchoNetDynamicDataModule("/data/EchoNet-Dynamic", labeled_fraction=1/8, batch_size=8)  # doctest: +SKIP
>>> trainer.fit(model, datamodule=dm)                                                          # doctest: +SKIP

Both wrap the readers of this package (:class:`~echossl.data.echonet.EchoNetDynamic`,
:class:`~echossl.data.camus.Camus`) and pass ``transform=`` through to them, so a
MONAI dictionary transform or a torchvision v2 transform sees every item dict.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
from torch.utils.data import DataLoader, default_collate

from echossl.data.camus import Camus, camus_splits
from echossl.data.echonet import EchoNetDynamic, compute_mean_std, labeled_split, read_filelist, validate
from echossl.errors import DataError

__all__ = ["EchoNetDynamicDataModule", "CamusDataModule", "collate_items"]


def collate_items(items: list[dict]) -> dict:
    """``default_collate`` per key, except keys holding None in any item (e.g. CAMUS labels of a
    patient without ground truth) or strings, which stay Python lists."""
    out = {}
    for key in items[0]:
        values = [item[key] for item in items]
        if any(v is None for v in values) or isinstance(values[0], str):
            out[key] = values
        else:
            out[key] = default_collate(values)
    return out


def _loader(ds, batch_size: int, workers: int, shuffle: bool, collate=None) -> DataLoader:
    return DataLoader(ds, batch_size=min(batch_size, max(1, len(ds))), shuffle=shuffle, num_workers=workers,
                      persistent_workers=workers > 0, collate_fn=collate)


class EchoNetDynamicDataModule(L.LightningDataModule):
    """TRAIN (its labeled part), VAL and TEST clips of an EchoNet-Dynamic folder.

    Args:
        root: folder with FileList.csv, VolumeTracings.csv and Videos/.
        length, period: frames per clip and the step between them (paper: 32, 2).
        batch_size, num_workers: of every DataLoader.
        labeled_fraction: share of TRAIN videos used (1.0 = all); the subset is
            drawn with ``split_seed`` exactly as ``echossl train --labeled-fraction``.
        mean, std: per-channel normalisation on the 0..255 scale; None computes
            them from TRAIN (``compute_mean_std``, ``stats_videos`` videos).
        size: resize frames to ``size x size``; None keeps them.
        val_clips, test_clips: clips per VAL/TEST video (1, k or "all").
        transform: applied to every VAL and TEST item, and to TRAIN items unless
            ``train_transform`` is given (e.g. augmentation for TRAIN only).

    Items are :class:`EchoNetDynamic` items: ``video`` ``(3, T, H, W)``, ``EF``, ``EDV``,
    ``ESV``, ``filename``, ``index``; batches stack them.
    """

    def __init__(self, root, *, length: int = 32, period: int = 2, batch_size: int = 8, num_workers: int = 0,
                 labeled_fraction: float = 1.0, split_seed: int = 0, mean=None, std=None, size: int | None = None,
                 val_clips=1, test_clips=1, stats_videos: int = 128, transform=None, train_transform=None):
        super().__init__()
        self.root = Path(root)
        self.length, self.period = length, period
        self.batch_size, self.num_workers = batch_size, num_workers
        self.labeled_fraction, self.split_seed = float(labeled_fraction), int(split_seed)
        self.mean, self.std, self.size = mean, std, size
        self.val_clips, self.test_clips, self.stats_videos = val_clips, test_clips, stats_videos
        self.transform = transform
        self.train_transform = train_transform if train_transform is not None else transform
        self.labeled: list[str] = []
        self.unlabeled: list[str] = []

    def setup(self, stage: str | None = None) -> None:
        table = read_filelist(self.root)
        usable = set(validate(self.root)[0])
        train = sorted(f for f in table.loc[table["Split"] == "TRAIN", "FileName"] if f in usable)
        self.labeled, self.unlabeled = labeled_split(train, self.labeled_fraction, self.split_seed)
        if self.mean is None or self.std is None:
            mean, std = compute_mean_std(self.root, train, samples=self.stats_videos, seed=self.split_seed)
            self.mean = np.ravel(mean).tolist() if self.mean is None else self.mean
            self.std = np.ravel(std).tolist() if self.std is None else self.std
        common = dict(length=self.length, period=self.period, mean=self.mean, std=self.std, size=self.size,
                      warn=False)
        self.train_set = EchoNetDynamic(self.root, "TRAIN", filenames=self.labeled, clips=1,
                                        transform=self.train_transform, **common)
        self.val_set = EchoNetDynamic(self.root, "VAL", clips=self.val_clips, transform=self.transform, **common)
        self.test_set = EchoNetDynamic(self.root, "TEST", clips=self.test_clips, transform=self.transform, **common)

    def train_dataloader(self) -> DataLoader:
        return _loader(self.train_set, self.batch_size, self.num_workers, True)

    def val_dataloader(self) -> DataLoader:
        return _loader(self.val_set, self.batch_size, self.num_workers, False)

    def test_dataloader(self) -> DataLoader:
        return _loader(self.test_set, self.batch_size, self.num_workers, False)

    def predict_dataloader(self) -> DataLoader:
        return self.test_dataloader()


class CamusDataModule(L.LightningDataModule):
    """CAMUS half sequences per split (``camus_splits``: the official lists when present).

    Args:
        root: CAMUS folder (``database_nifti/`` or the patient folders).
        view: "4CH" or "2CH".
        size: frame size; length: frames per sequence after mirroring (fixed, so
            that sequences of different lengths batch), None keeps them (then use
            ``batch_size=1``).
        mirror: ED -> ES -> ED full cycle (:func:`echossl.data.camus.mirror`).
        transform: applied to every item dict.

    Items are :class:`Camus` items (``video`` ``(3, T, H, W)`` in [0, 255], ``labels``,
    ``EF``, ``quality``, ``patient``, ``ed``, ``es``); batches keep strings and
    missing labels as lists (:func:`collate_items`).
    """

    def __init__(self, root, *, view: str = "4CH", size: int = 112, length: int | None = 32, mirror: bool = True,
                 batch_size: int = 4, num_workers: int = 0, transform=None):
        super().__init__()
        self.root = Path(root)
        self.view, self.size, self.length, self.mirror = view, size, length, mirror
        self.batch_size, self.num_workers, self.transform = batch_size, num_workers, transform

    def _split(self, split: str) -> Camus | None:
        """The split's dataset, or None when it has no patients (a small folder may have no VAL)."""
        if not camus_splits(self.root)[split]:
            return None
        return Camus(self.root, view=self.view, size=self.size, mirror=self.mirror, length=self.length,
                     split=split, transform=self.transform)

    def _loader(self, ds, split: str, shuffle: bool) -> DataLoader:
        if ds is None:
            raise DataError(self.root, f"has no CAMUS patients in the {split} split")
        return _loader(ds, self.batch_size, self.num_workers, shuffle, collate_items)

    def setup(self, stage: str | None = None) -> None:
        self.train_set, self.val_set, self.test_set = (self._split(s) for s in ("TRAIN", "VAL", "TEST"))

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, "TRAIN", True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, "VAL", False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, "TEST", False)
