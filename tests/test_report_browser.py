"""A report made here opens in a real browser (headless Chromium): it renders, every image decodes,
and the console stays silent. Skipped where no Chromium is installed (``apt-get install chromium``).

Set ``ECHOSSL_UPDATE_SCREENSHOT=1`` to refresh docs/img/report.png from this test.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
PROBE = """<script>
window.addEventListener("load", function () {
  var images = Array.from(document.images);
  var broken = images.filter(function (i) { return !i.complete || i.naturalWidth === 0; }).length;
  var out = document.createElement("pre");
  out.id = "echossl-probe";
  out.textContent = JSON.stringify({height: document.documentElement.scrollHeight, images: images.length,
                                    broken: broken, title: document.title});
  document.body.appendChild(out);
});
</script>"""

pytestmark = pytest.mark.slow  # a browser start-up and a report: more than a few seconds on 2 cores


def _browser() -> str:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("no Chromium on this machine (apt-get install chromium)")


def _chromium(browser: str, *args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
           "--disable-extensions", "--enable-logging=stderr", "--v=0", *args]
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{browser} did not finish within {timeout} s")


def _render(browser: str, page: Path) -> tuple[dict, list[str]]:
    """Open ``page`` with the probe script added; returns (probe values, console lines)."""
    probe = page.with_name(f"probe-{page.name}")
    text = page.read_text()
    probe.write_text(text.replace("</body>", PROBE + "\n</body>"))
    proc = _chromium(browser, "--virtual-time-budget=5000", "--dump-dom", probe.as_uri())
    found = re.search(r'<pre id="echossl-probe">([^<]*)</pre>', proc.stdout)
    assert found, f"the page did not load:\n{proc.stderr[-2000:]}"
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]
    return json.loads(found.group(1).replace("&quot;", '"')), console


def _ef_run(path: Path) -> Path:
    from echossl.evaluation.metrics import regression_metrics

    rng = np.random.default_rng(0)
    true = rng.uniform(20, 75, 60)
    pred = true + rng.normal(1.5, 5.0, 60)
    path.mkdir(parents=True)
    pd.DataFrame({"FileName": [f"0X{k:04X}" for k in range(60)], "EF": true, "EF_Pred": pred}).to_csv(
        path / "predictions.csv", index=False)
    (path / "metrics.json").write_text(json.dumps({"task": "distill", "split": "TEST", "n": 60,
                                                   **regression_metrics(true, pred, 200)}))
    (path / "config.yaml").write_text(yaml.safe_dump({"preset": "cpu", "seed": 0, "split_seed": 0,
                                                       "labeled_fraction": 0.125}))
    (path / "logs" / "csv").mkdir(parents=True)
    steps = np.arange(40)
    pd.DataFrame({"epoch": steps // 10, "step": steps, "train_loss": 40 * np.exp(-steps / 12) + rng.random(40),
                  "train_lb": 30 * np.exp(-steps / 12), "val_mae": np.where(steps % 10 == 9, 12 - steps / 5, np.nan)}
                 ).to_csv(path / "logs" / "csv" / "metrics.csv", index=False)
    return path


def test_report_renders_in_chromium(tmp_path):
    browser = _browser()
    from echossl.evaluation.run_report import write_run_report

    report = write_run_report([_ef_run(tmp_path / "runs" / "student")], tmp_path / "report" / "report.html")
    probe, console = _render(browser, report)
    assert probe["images"] >= 5 and probe["broken"] == 0, probe
    assert probe["height"] > 2000, probe  # provenance, metrics, tables and five figures stack up
    assert probe["title"].startswith("echossl report")
    assert console == [], console
    shot = tmp_path / "report.png"
    proc = _chromium(browser, "--window-size=1200,2200", f"--screenshot={shot}", report.as_uri())
    assert shot.is_file() and shot.stat().st_size > 20_000, proc.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if os.environ.get("ECHOSSL_UPDATE_SCREENSHOT"):
        (ROOT / "docs" / "img").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, ROOT / "docs" / "img" / "report.png")


def test_probe_catches_broken_images_and_console_errors(tmp_path):
    """The checks above can fail: a broken image and a console error are both seen."""
    browser = _browser()
    page = tmp_path / "bad.html"
    page.write_text('<!DOCTYPE html><html><head><title>bad</title></head><body>'
                    '<img src="data:image/png;base64,AAAA"><script>console.error("boom")</script></body></html>')
    probe, console = _render(browser, page)
    assert probe["broken"] == 1
    assert any("boom" in line for line in console)
