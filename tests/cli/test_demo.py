"""`echossl demo`, `reproduce table4` and CAMUS external validation on tiny data."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from echossl.cli.demo import parse_fractions

ROWS = ["video-only", "video+seg", "video+seg+css", "video+seg+css+dist"]


def echossl(*args):
    proc = subprocess.run([sys.executable, "-m", "echossl", *map(str, args)], capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def demo_out(sim_echonet, tiny_config, tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    proc = echossl("demo", "--data", sim_echonet, "--out", out, "--config", tiny_config)
    return out, proc


def test_demo_writes_results_and_report(demo_out):
    out, proc = demo_out
    results = json.loads((out / "results.json").read_text())
    names = [r["method"] for r in results["rows"]]
    assert names[:4] == ROWS  # the contract's rows first, then the bracketing rows of issue 14
    assert {"video-only (all labels)", "video+true-masks (oracle)", "mean-EF (floor)"} <= set(names[4:])
    assert results["n_test"] == results["rows"][0]["n"] > 0
    claims = results["claims"]
    assert claims and all(set(c) == {"claim", "difference", "ci95", "verdict"} for c in claims)
    assert all(c["verdict"] in ("holds", "fails", "inconclusive") and c["ci95"][0] <= c["ci95"][1] for c in claims)
    assert any("0.8x" in c["claim"] for c in claims) and any("gap" in c["claim"] for c in claims)
    assert [r["row"] for r in results["ladder"]][:3] == ["mean-EF (floor)", "video-only", "video+true-masks (oracle)"]
    for row in results["rows"]:
        assert {"mae", "rmse", "r2", "r2_ci95"} <= set(row)
        assert row["mae"] >= 0
    assert {"dice_ed", "dice_es", "dice_unlabeled"} <= set(results["rows"][2])
    assert "attention_dice" in results["rows"][0]
    assert results["preset"] == "cpu" and results["seconds"] > 0
    html = (out / "report.html").read_text()
    assert html.count("<img") >= 8  # 4 scatters, Bland-Altman, area curve, saliency, t-SNE
    assert len(list((out / "figures").glob("*.png"))) >= 8
    assert "Table IV" in proc.stdout and "video-only" in proc.stdout  # the printed table
    assert "Claims" in proc.stdout and "Diagnostic ladder" in proc.stdout and "Claims" in html


def test_demo_reuses_finished_stages(demo_out, sim_echonet, tiny_config):
    out, _ = demo_out
    before = (out / "runs" / "seg" / "checkpoints" / "last.ckpt").stat().st_mtime
    echossl("demo", "--data", sim_echonet, "--out", out, "--config", tiny_config)
    assert (out / "runs" / "seg" / "checkpoints" / "last.ckpt").stat().st_mtime == before


def test_camus_external_validation(demo_out, tmp_path):
    out, _ = demo_out
    camus = tmp_path / "camus"
    echossl("simulate", "camus", camus, "--patients", "6", "--seed", "2")
    metrics_path = tmp_path / "camus.json"
    echossl("evaluate", "--checkpoint", out / "runs" / "video+seg+css+dist", "--data", camus, "--out", metrics_path)
    m = json.loads(metrics_path.read_text())
    assert m["split"] == "CAMUS" and m["n"] == 6 and m["mae"] >= 0
    assert any(k.startswith("mae_") and k[4:] in ("good", "medium", "poor") for k in m)


def test_parse_fractions():
    assert parse_fractions("3/32, 0.5") == [3 / 32, 0.5]
    from echossl.errors import ConfigError

    with pytest.raises(ConfigError):
        parse_fractions("2/0")
    with pytest.raises(ConfigError):
        parse_fractions("1.5")


@pytest.mark.slow
def test_reproduce_table4_grid(sim_echonet, tiny_config, tmp_path):
    echossl("reproduce", "table4", "--data", sim_echonet, "--out", tmp_path, "--config", tiny_config,
            "--fractions", "1/4,1/2", "--seeds", "2")
    table = json.loads((tmp_path / "table4.json").read_text())
    # 5 rows at each fraction (Video+Seg.+Dist. included) and 3 in the All-labels column, per seed
    assert len(table["cells"]) == 2 * (2 * 5 + 3) and (tmp_path / "fig6.png").is_file()
    assert table["fractions"][-1] == 1.0 and table["split_seed"] == 0 and table["training_seeds"] == [0, 1]
    assert any(c["method"] == "video+seg+dist" for c in table["cells"])
    assert table["claims"] and table["n_test"] > 0
