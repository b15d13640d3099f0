"""``echossl report``: one report per task family, several runs side by side, escaping, figures on disk."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

EVIL = "<script>alert(1)</script>"


def _write_json(path: Path, value: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value))


def make_ef_run(path: Path, seed: int = 0, noise: float = 4.0, n: int = 40, evil: bool = False) -> Path:
    """An EF run folder: config.yaml, metrics.json, predictions.csv and a training log."""
    from echossl.evaluation.metrics import regression_metrics

    rng = np.random.default_rng(seed)
    true = rng.uniform(20, 75, n)
    pred = true + rng.normal(1.0, noise, n)
    names = [f"0X{k:04d}" for k in range(n)]
    if evil:
        names[int(np.argmax(np.abs(pred - true)))] = EVIL  # the worst video: it reaches the table
    path.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"FileName": names, "EF": true, "EF_Pred": pred}).to_csv(path / "predictions.csv", index=False)
    _write_json(path / "metrics.json", {"task": "ef", "split": "TEST", "n": n, **regression_metrics(true, pred, 200)})
    (path / "config.yaml").write_text(yaml.safe_dump({"preset": "cpu", "seed": 3, "split_seed": 1,
                                                       "labeled_fraction": 0.1875}))
    log = path / "logs" / "csv"
    log.mkdir(parents=True)
    pd.DataFrame({"epoch": [0, 0, 1, 1], "step": [0, 1, 2, 3], "train_loss": [30.0, 20.0, 12.0, 9.0],
                  "val_mae": [np.nan, 8.0, np.nan, 6.0]}).to_csv(log / "metrics.csv", index=False)
    return path


@pytest.fixture(scope="module")
def sim(tmp_path_factory) -> Path:
    from echossl.simulate.echonet import simulate_echonet

    root = tmp_path_factory.mktemp("report-data")
    simulate_echonet(root, 8, seed=5, size=48, progress=False)
    return root


def make_seg_run(path: Path, data: Path, shift: int = 2) -> Path:
    """A seg run whose masks are the simulator's truth shifted by ``shift`` pixels (a known error)."""
    from echossl.data.echonet import load_truth, read_filelist

    table = read_filelist(data)
    masks = path / "masks"
    masks.mkdir(parents=True)
    for name in table["FileName"]:
        truth = load_truth(data, name)["masks"]
        np.save(masks / f"{name}.npy", (np.roll(truth, shift, axis=2) * 255).astype(np.uint8))
    _write_json(path / "metrics.json", {"task": "seg", "split": "TEST", "n": 2, "dice": 0.8, "dice_ed": 0.8,
                                        "dice_ed_ci95": [0.7, 0.9], "dice_es": 0.8})
    (path / "config.yaml").write_text(yaml.safe_dump({"preset": "cpu", "seed": 0, "labeled_fraction": 0.5}))
    return path


def _html(path: Path) -> str:
    return path.read_text()


def test_ef_report_has_every_part_and_escapes(tmp_path):
    from echossl.evaluation.run_report import write_run_report

    run = make_ef_run(tmp_path / "runs" / "ef", evil=True)
    out = write_run_report([run], tmp_path / "report" / "report.html")
    text = _html(out)
    assert "<script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    for header in ("MAE (EF %)", "RMSE (EF %)", "R² (fraction of variance)", "95 % CI", "Labeled fraction",
                   "3/16 (0.1875)", "Split seed (labeled subset)", "Actual EF (%)", "Predicted EF (%)",
                   "EF &lt; 35 %", "EF &lt; 50 %", "largest errors", "training loss", "Data folder"):
        assert header in text, header
    assert "mae_ci95" not in text
    assert 'href="../runs/ef/config.yaml"' in text
    # the AUCs in the table are scikit-learn's on these predictions
    from sklearn.metrics import roc_auc_score

    p = pd.read_csv(run / "predictions.csv")
    auc = roc_auc_score(p["EF"] < 45, -p["EF_Pred"])
    row = re.search(r"<td>EF &lt; 45 %</td><td>\d+</td><td>\d+</td><td>([0-9.]+)</td>", text)
    assert row and float(row.group(1)) == pytest.approx(auc, abs=6e-4)
    # every inline image is a PNG that also sits in figures/ with its SVG twin
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', text)
    pngs = sorted((out.parent / "figures").glob("*.png"))
    assert len(images) == len(pngs) >= 5
    assert {base64.b64decode(i) for i in images} == {p.read_bytes() for p in pngs}
    for png in pngs:
        assert png.with_suffix(".svg").read_text().lstrip().startswith(("<?xml", "<svg"))


def test_bland_altman_labels_bias_and_limits():
    from echossl.evaluation import plots

    rng = np.random.default_rng(1)
    true = rng.uniform(30, 70, 50)
    pred = true + rng.normal(2.0, 3.0, 50)
    stats = plots.agreement(true, pred)
    diff = pred - true
    assert stats["bias"] == pytest.approx(diff.mean())
    assert stats["loa_high"] == pytest.approx(diff.mean() + 1.96 * diff.std(ddof=1))
    svg = plots.bland_altman(true, pred, fmt="svg").decode()
    for text in (f"bias {stats['bias']:+.2f}", f"+1.96 SD {stats['loa_high']:+.2f}",
                 f"−1.96 SD {stats['loa_low']:+.2f}", "Predicted − actual EF (%)"):
        assert text in svg, text


def test_surface_metrics_known_shift():
    from echossl.evaluation.run_report import surface_metrics

    a = np.zeros((2, 40, 40), bool)
    a[:, 10:30, 10:30] = True
    b = np.roll(a, 3, axis=2)
    px = surface_metrics(a, b)
    assert px["hd95"] == pytest.approx([3.0, 3.0]) and 0 < px["msd"][0] <= 3.0
    mm = surface_metrics(a, b, spacing=[(0.5, 2.0), (0.5, 2.0)])  # (row, column) mm: the shift is along columns
    assert mm["hd95"] == pytest.approx([6.0, 6.0])
    empty = surface_metrics(np.zeros((1, 8, 8), bool), a[:1, :8, :8])
    assert np.isnan(empty["hd95"][0])


def test_seg_report_scores_masks_against_tracings(tmp_path, sim):
    from echossl.evaluation.run_report import write_run_report

    run = make_seg_run(tmp_path / "seg", sim, shift=2)
    out = write_run_report([run], tmp_path / "seg-report.html", data=sim)
    text = _html(out)
    for header in ("Hausdorff 95 (pixels)", "Hausdorff 95 (mm)", "Mean surface distance (mm)", "Dice at ED",
                   "LV area of", "ED frame", "lowest Dice"):
        assert header in text, header
    hd = float(re.search(r"<td>Hausdorff 95 \(pixels\)</td><td>([0-9.]+)</td>", text).group(1))
    assert 1.0 <= hd <= 3.5  # a 2-pixel shift, against tracings rasterised slightly differently from the truth
    svg = next((tmp_path / "figures").glob("*lv-area*.svg")).read_text()
    assert "LV area (cm²)" in svg  # the simulator records its pixel spacing


def test_ssl_run_and_results_folder(tmp_path):
    from echossl.evaluation.run_report import write_run_report

    pre = tmp_path / "out" / "runs" / "discover"
    _write_json(pre / "metrics.json", {"task": "discover", "split": "TEST", "n": 4, "balanced_accuracy": 0.6,
                                       "collapse": {"video_target_entropy_ratio": 0.02, "embedding_std": 1e-4}})
    (pre / "logs" / "csv").mkdir(parents=True)
    pd.DataFrame({"epoch": [0, 0, 1], "step": [0, 1, 2], "train_loss": [5.0, 4.0, 3.5],
                  "train_scd": [2.0, 1.5, 1.2]}).to_csv(pre / "logs" / "csv" / "metrics.csv", index=False)
    make_ef_run(tmp_path / "out" / "runs" / "video-only", seed=1)
    _write_json(tmp_path / "out" / "results.json", {
        "preset": "cpu", "labeled_fraction": 0.125, "n_test": 40,
        "rows": [{"method": EVIL, "mae": 5.0, "mae_ci95": [4.0, 6.0]}],
        "claims": [{"claim": "CSS lowers MAE", "difference": -0.4, "ci95": [-0.9, 0.1], "verdict": "inconclusive"},
                   {"claim": "distillation helps", "difference": -1.0, "ci95": [-1.5, -0.5], "verdict": "holds"}]})
    from echossl.evaluation import plots

    png = plots.line_plot([0, 1], {"a": [1, 2]}, "extra")
    out = write_run_report([tmp_path / "out"], tmp_path / "r.html", extra_figures=[("t-SNE <extra>", png)],
                           extra_tables=[("Table IV", [{"method": "video-only", "mae": 5.0}])])
    text = _html(out)
    assert "t-SNE &lt;extra&gt;" in text and "<h3>Table IV</h3>" in text
    assert (tmp_path / "figures" / "01_t-sne-extra.png").read_bytes() == png
    assert '<td class="verdict-holds">holds</td>' in text and "CSS lowers MAE" in text
    assert "Collapse monitors" in text and "Video target entropy ÷ ln K" in text
    assert "1/8 (0.125)" in text and "&lt;script&gt;" in text and "<script>" not in text
    assert "Provenance: discover" in text and "Provenance: video-only" in text
    assert "5 [4, 6]" in text  # the rows keep their CIs


def test_several_runs_side_by_side_with_paired_differences(tmp_path):
    from echossl.evaluation.run_report import write_run_report

    a = make_ef_run(tmp_path / "a" / "run", seed=0, noise=2.0)
    b = make_ef_run(tmp_path / "b" / "run", seed=0, noise=8.0)  # same videos, larger errors
    out = write_run_report([a, b], tmp_path / "cmp.html")
    text = _html(out)
    assert "Side by side" in text and "a/run" in text and "b/run" in text
    row = re.search(r"<td>b/run − a/run</td><td>mean absolute EF error \(EF points\)</td><td>40</td>"
                    r"<td>([0-9.]+)</td><td>([0-9.]+)</td><td>([-0-9.]+)</td><td>\[([-0-9.]+), ([-0-9.]+)\]</td>"
                    r"<td[^>]*>(\w+)</td>", text)
    assert row, "paired difference row missing"
    mean_a, mean_b, diff, lo, hi = map(float, row.groups()[:5])
    assert diff == pytest.approx(mean_b - mean_a, abs=2e-3) and lo <= diff <= hi and lo > 0
    assert row.group(6) == "differs"


def test_fraction_label_and_demo_title():
    from echossl.evaluation.report import demo_title, fraction_label

    assert [fraction_label(f) for f in (0.125, 3 / 32, 0.5, 1.0, 0.123456)] == ["1/8", "3/32", "1/2", "all", "12.3 %"]
    assert demo_title(0.25) == "echossl demo: semi-supervised EF (Table IV at 1/4 labels)"


def test_bad_folder_is_one_sentence(tmp_path):
    from echossl.errors import EchosslError
    from echossl.evaluation.run_report import write_run_report

    (tmp_path / "empty").mkdir()
    with pytest.raises(EchosslError, match="neither metrics.json nor results.json"):
        write_run_report([tmp_path / "empty"], tmp_path / "r.html")


@pytest.mark.slow  # two interpreter start-ups with torch: tens of seconds on a busy 2-core machine
def test_cli_report(tmp_path):
    run = make_ef_run(tmp_path / "run")
    out = tmp_path / "rep" / "report.html"
    proc = subprocess.run([sys.executable, "-m", "echossl", "report", str(run), "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert out.is_file() and (out.parent / "figures").is_dir()
    proc = subprocess.run([sys.executable, "-m", "echossl", "report", str(tmp_path / "nope"), "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "does not exist" in proc.stderr
