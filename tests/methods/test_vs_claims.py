"""video-speech reproduce: cross-validation folds over scans, per-scan parts, claims schema."""

from __future__ import annotations

import numpy as np
import pytest

from echossl.evaluation.stats import VERDICTS
from echossl.pipelines import video_speech as vsp


def _check_schema(claims):
    assert claims
    for c in claims:
        assert {"claim", "difference", "ci95", "verdict"} <= set(c)
        assert isinstance(c["claim"], str) and isinstance(c["difference"], float)
        assert len(c["ci95"]) == 2 and c["ci95"][0] <= c["ci95"][1]
        assert c["verdict"] in VERDICTS


def test_cv_folds_put_every_scan_in_test_once():
    names = [f"s{i:02d}" for i in range(24)]
    folds = vsp.cv_folds(names, 3, seed=0)
    tests = [n for f in folds for n in f["TEST"]]
    assert sorted(tests) == names
    for f in folds:
        assert len(f["TEST"]) == 8 and f["VAL"]
        assert not set(f["TRAIN"]) & set(f["TEST"]) and not set(f["VAL"]) & set(f["TEST"])
        assert set(f["TRAIN"]) | set(f["VAL"]) | set(f["TEST"]) == set(names)
    assert vsp.cv_folds(list(reversed(names)), 3, seed=0) == folds
    with pytest.raises(Exception):
        vsp.cv_folds(names[:5], 3, seed=0)


def test_claims_schema_and_verdicts_over_scans():
    rng = np.random.default_rng(0)
    u, k = 12, 4

    def conf(acc):  # (1, U, K, K) per-scan confusion of a classifier of accuracy ~acc
        out = np.zeros((1, u, k, k))
        for s in range(u):
            for t in rng.integers(0, k, 40):
                out[0, s, t, t if rng.random() < acc else (t + 1) % k] += 1
        return out

    def nss(mean):
        return np.stack([rng.normal(mean, 0.1, (1, u)) * 30, np.full((1, u), 30.0)], -1)

    parts = {"random": conf(0.3), "video-only": conf(0.5), "full": conf(0.9), "oracle": conf(0.95)}
    sal = {t: {"nss": nss(m)} for t, m in (("random", 1.0), ("video-only", 1.5), ("full", 2.0), ("oracle", 2.5))}
    claims = vsp.video_speech_claims(parts, sal, ["video-only", "full"], n_boot=500)
    _check_schema(claims)
    by = {c["claim"]: c for c in claims}
    assert by["full beats video-only on plane F1"]["verdict"] == "holds"
    assert by["full beats video-only on NSS"]["verdict"] == "holds"
    info = [c for c in claims if c["claim"].startswith("protocol informative")]
    assert len(info) == 2 and all(c["informative"] for c in info)
    md = vsp.claims_markdown(claims)
    assert md.startswith("| claim | difference [95% CI] | verdict |")


def test_plane_parts_sum_to_the_pooled_confusion():
    from echossl.data.sweep import PlaneFrames, Scan

    rng = np.random.default_rng(1)
    scans = [Scan(f"s{i}", np.zeros((20, 8, 8), np.uint8), np.zeros(10, np.float32), rng.integers(0, 3, 20),
                  np.zeros((20, 2), np.float32), 10.0) for i in range(3)]
    ds = PlaneFrames(scans, step=2, size=8)
    true = ds.labels()
    pred = rng.integers(0, 3, len(true))
    parts = vsp.plane_parts(ds, true, pred, 3)
    assert parts["scans"] == ["s0", "s1", "s2"]
    total = np.asarray(parts["confusion"]).sum(0)
    want = np.zeros((3, 3), int)
    np.add.at(want, (true, pred), 1)
    assert (total == want).all()
