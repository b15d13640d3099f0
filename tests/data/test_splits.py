"""One labeled-subset rule; the split seed picks it, the training seed does not."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from echossl.data.splits import labeled_subset
from echossl.errors import ConfigError

NAMES = [f"0X{i:04d}" for i in range(40)]


def test_subset_is_deterministic_order_free_and_complete():
    lab, unl = labeled_subset(NAMES, 0.25, 3)
    assert len(lab) == 10 and sorted(lab + unl) == NAMES and not set(lab) & set(unl)
    assert lab == sorted(lab) and unl == sorted(unl)
    assert labeled_subset(list(reversed(NAMES)) + NAMES[:5], 0.25, 3) == (lab, unl)  # order, duplicates
    assert labeled_subset(NAMES, 0.25, 4)[0] != lab


@pytest.mark.parametrize("fraction, n", [(0.0, 0), (0.001, 1), (0.125, 5), (1.0, 40)])
def test_bounds(fraction, n):
    assert len(labeled_subset(NAMES, fraction, 0)[0]) == n


@pytest.mark.parametrize("fraction", [-0.1, 1.5, "half", None])
def test_bad_fraction_is_a_config_error(fraction):
    with pytest.raises(ConfigError, match="labeled_fraction"):
        labeled_subset(NAMES, fraction, 0)


def test_objects_by_key_match_names():
    @dataclass
    class Scan:
        name: str

    scans = [Scan(n) for n in reversed(NAMES)]
    lab, _ = labeled_subset(scans, 0.25, 7, key=lambda s: s.name)
    assert [s.name for s in lab] == labeled_subset(NAMES, 0.25, 7)[0]


def test_old_names_are_the_same_rule():
    from echossl.data.echonet import labeled_split
    from echossl.pipelines.mrjet import labeled_videos

    assert labeled_split(NAMES, 0.3, 2) == labeled_subset(NAMES, 0.3, 2)
    assert labeled_videos(NAMES, 0.3, 2) == labeled_subset(NAMES, 0.3, 2)[0]


def test_split_data_follows_split_seed_not_seed(sim_echonet):
    from echossl.config import load_config
    from echossl.pipelines.semisupervised_ef import split_data

    def split(**over):
        cfg = load_config("cpu")
        cfg.update(labeled_fraction=0.5, **over)
        cfg["data"]["stats_videos"] = 4
        return split_data(sim_echonet, cfg)

    base = split(seed=0, split_seed=0)
    other_seed = split(seed=5, split_seed=0)
    assert other_seed.labeled == base.labeled and other_seed.norm == base.norm
    moved = [split(seed=0, split_seed=s) for s in (1, 2, 3)]
    assert any(m.labeled != base.labeled for m in moved)
    assert len({len(m.labeled) for m in moved} | {len(base.labeled)}) == 1


def test_video_speech_scans_follow_split_seed():
    from echossl.pipelines.video_speech import labeled_scans

    @dataclass
    class Scan:
        name: str

    scans = [Scan(n) for n in NAMES]
    a = labeled_scans(scans, 0.25, 0)
    assert [s.name for s in a] == labeled_subset(NAMES, 0.25, 0)[0]
    with pytest.raises(Exception, match="labelled fraction"):
        labeled_scans(scans, 0.0, 0)
