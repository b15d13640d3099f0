"""reproduce mrjet: paired claims over TEST videos (schema, seeds, oracle line)."""

from __future__ import annotations

import numpy as np

from echossl.evaluation.stats import VERDICTS
from echossl.pipelines import mrjet as mp


def _videos(rng, hit_p, dice_mean, n=20):
    out = []
    for i in range(n):
        k = int(rng.integers(0, 4))
        out.append({"name": f"v{i:02d}", "n_true": k, "hits_exact": 0, "hits_within2": int(rng.binomial(k, hit_p)),
                    "n_pred": k, "good_pred_within2": 0,
                    "dice": np.clip(rng.normal(dice_mean, 0.05, k), 0, 1).tolist()})
    return out


def test_mrjet_claims_schema_with_seeds_oracle_and_strengths():
    rng = np.random.default_rng(0)
    per_item = {"random": [_videos(rng, 0.3, 0.5) for _ in range(3)],
                "jigsaw": [_videos(rng, 0.8, 0.8) for _ in range(3)],
                "jigsaw+color": [_videos(rng, 0.8, 0.8) for _ in range(3)],
                "jigsaw+color s=1": [_videos(rng, 0.8, 0.6)],
                mp.ORACLE: [_videos(rng, 0.95, 0.9)]}
    # the same videos (names and true max frames) in every row: rebuild n_true from one row
    ref = per_item["random"][0]
    for rows in per_item.values():
        for videos in rows:
            for v, r in zip(videos, ref):
                v["n_true"] = r["n_true"]
                v["hits_within2"] = min(v["hits_within2"], r["n_true"])
                v["dice"] = (v["dice"] + [0.5] * 4)[:r["n_true"]]
    claims, n_test = mp.mrjet_claims(per_item, [0.5, 1.0], n_boot=500)
    assert n_test == 20
    for c in claims:
        assert {"claim", "difference", "ci95", "verdict"} <= set(c)
        assert c["verdict"] in VERDICTS and len(c["ci95"]) == 2
    texts = [c["claim"] for c in claims]
    assert "jigsaw beats random init at 10% labels on hits (within ±2 frames)" in texts
    assert "jigsaw+color beats random init at 10% labels on jet Dice" in texts
    assert any(t.startswith("colour strength") for t in texts)
    info = [c for c in claims if c["claim"].startswith("protocol informative")]
    assert len(info) == 2 and all(c["informative"] for c in info)
    by = {c["claim"]: c for c in claims}
    assert by["jigsaw beats random init at 10% labels on jet Dice"]["verdict"] == "holds"


def test_summary_rows_average_seeds():
    rows = [{"labeled_fraction": 0.1, "init": "random", "labeled_videos": 15, **{k: v for k in mp.TABLE_METRICS}}
            for v in (0.2, 0.4)]
    s = mp.summary_rows(rows)
    assert len(s) == 1 and s[0]["seeds"] == 2 and abs(s[0]["dice"] - 0.3) < 1e-12
    assert "| 10% (15 videos) | random | 2 |" in mp.results_markdown(s)
