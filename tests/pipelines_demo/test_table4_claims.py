"""Table IV claims and the diagnostic ladder from per-video errors (pipelines/demo.py)."""

import numpy as np

from echossl.pipelines import demo


def _errors(n=150, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.gamma(2.0, 3.5, n)  # video-only at 1/8 labels
    return {"video-only": base, "video+seg": 0.9 * base, "video+seg+css": 0.85 * base,
            "video+seg+css+dist": 0.6 * base, demo.CEILING: 0.4 * base, demo.ORACLE: 0.5 * base,
            demo.FLOOR: 1.5 * base + 1.0}


def test_claims_hold_when_every_component_helps():
    claims, ladder = demo.table4_claims(_errors(), n_boot=2000)
    verdicts = {c["claim"]: c["verdict"] for c in claims}
    assert all(v == "holds" for v in verdicts.values()), verdicts
    gap = next(c for c in claims if "gap" in c["claim"])
    assert abs(gap["difference"] - (1 - 0.6) / (1 - 0.4)) < 1e-9  # (MAE_vo - MAE_full) / (MAE_vo - MAE_all)
    assert [r["row"] for r in ladder] == [demo.FLOOR, "video-only", demo.ORACLE, "video+seg", "video+seg+css",
                                          "video+seg+css+dist", demo.CEILING]


def test_claims_fail_when_the_pipeline_is_worse():
    e = _errors()
    e["video+seg+css+dist"] = 1.2 * e["video-only"]
    claims, _ = demo.table4_claims(e, n_boot=2000)
    by = {c["claim"]: c for c in claims}
    assert next(v for k, v in by.items() if "0.8x" in k)["verdict"] == "fails"
    assert next(v for k, v in by.items() if "gap" in k)["verdict"] == "fails"
    assert next(v for k, v in by.items() if k.startswith("Dist. lowers MAE (with CSS)"))["verdict"] == "fails"


def test_noise_is_inconclusive():
    rng = np.random.default_rng(1)
    e = _errors()
    e["video+seg"] = e["video-only"] + rng.normal(0, 2.0, len(e["video-only"]))
    claims, _ = demo.table4_claims(e, n_boot=2000)
    assert next(c for c in claims if c["claim"].startswith("Seg."))["verdict"] == "inconclusive"
