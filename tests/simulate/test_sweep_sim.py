"""The narrated-sweep simulator: layout, labels, and audio-video alignment."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from echossl.simulate.sweep import PLANES, SAMPLE_RATE, simulate_sweep, simulate_sweep_video

FPS, SECONDS, SIZE = 10.0, 20.0, 48


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sweep_sim")
    simulate_sweep(root, 2, seed=4, size=SIZE, fps=FPS, seconds=SECONDS)
    return root


def test_layout_and_data_check(sweeps):
    from echossl.data.check import check_dir

    table = pd.read_csv(sweeps / "sweeps.csv")
    assert list(table.columns) == ["FileName", "Split", "NumberOfFrames", "FPS", "FrameHeight", "FrameWidth",
                                   "SampleRate", "Seconds"]
    meta = json.loads((sweeps / "sweep.json").read_text())
    assert meta["planes"] == list(PLANES) and len(PLANES) == 14 and "Background" in PLANES
    for name in table["FileName"]:
        for sub, ext in (("Videos", "avi"), ("Audio", "wav"), ("Labels", "csv"), ("Saliency", "npz")):
            assert (sweeps / sub / f"{name}.{ext}").is_file()
    report = check_dir(sweeps)
    assert report["format"] == "sweep" and report["usable"] and report["counts"]["usable"] == 2


def test_wav_and_labels_match_the_video(sweeps):
    from scipy.io import wavfile

    from echossl.data.sweep import read_frames, read_labels

    for name in pd.read_csv(sweeps / "sweeps.csv")["FileName"]:
        sr, pcm = wavfile.read(sweeps / "Audio" / f"{name}.wav")
        frames = read_frames(sweeps, name)
        assert sr == 24_000 and pcm.dtype == np.int16
        assert len(pcm) == pytest.approx(len(frames) / FPS * sr, abs=1)
        planes, gaze = read_labels(sweeps, name, list(PLANES))
        assert len(planes) == len(frames) and (planes >= 0).all()
        with np.load(sweeps / "Saliency" / f"{name}.npz") as z:
            maps = z["maps"]
        assert maps.shape == frames.shape
        # the saliency peak sits near the current gaze point
        peak = np.stack(np.unravel_index(maps.reshape(len(maps), -1).argmax(1), maps.shape[1:]), 1)[:, ::-1]
        assert np.median(np.linalg.norm(peak - gaze, axis=1)) < 0.15 * SIZE


def test_narration_lines_up_with_the_planes_on_screen():
    from echossl.methods.video_speech import energy_vad

    for index in range(3):
        sim = simulate_sweep_video(7, index, size=SIZE, fps=FPS, seconds=SECONDS)
        assert len(sim["audio"]) == round(len(sim["frames"]) / FPS * SAMPLE_RATE)
        assert -0.3 <= sim["lag"] <= 0.5
        narrations = [e for e in sim["events"] if e["kind"] == "narration"]
        assert narrations
        for e in narrations:
            # shift the speech back by the narration lag: it describes the plane on screen then
            frames = np.arange(int((e["start"] - sim["lag"]) * FPS), int((e["end"] - sim["lag"]) * FPS))
            frames = frames[(frames >= 0) & (frames < len(sim["planes"]))]
            on_screen = [PLANES[p] for p in sim["planes"][frames]]
            assert np.mean([p == e["plane"] for p in on_screen]) >= 0.9
        # the energy VAD finds speech where (and only where) someone talks
        voiced = energy_vad(torch.from_numpy(sim["audio"]), SAMPLE_RATE).numpy()
        talk = np.zeros(len(voiced), bool)
        for e in sim["events"]:
            if e["kind"] in ("narration", "chatter"):
                talk[int(e["start"] * 100):int(e["end"] * 100)] = True
        assert voiced[talk].mean() > 0.5
        assert voiced[~talk].mean() < 0.05


def test_deterministic_and_planes_look_different():
    a = simulate_sweep_video(1, 0, size=SIZE, fps=FPS, seconds=12)
    b = simulate_sweep_video(1, 0, size=SIZE, fps=FPS, seconds=12)
    assert np.array_equal(a["frames"], b["frames"]) and np.array_equal(a["audio"], b["audio"])
    c = simulate_sweep_video(1, 1, size=SIZE, fps=FPS, seconds=12)
    assert not np.array_equal(a["frames"], c["frames"])


def test_bad_options_are_config_errors(tmp_path):
    from echossl.errors import ConfigError

    with pytest.raises(ConfigError):
        simulate_sweep(tmp_path, 0)
    with pytest.raises(ConfigError):
        simulate_sweep(tmp_path, 1, size=8)


def test_bad_files_are_reported_by_file_and_row(sweeps, tmp_path):
    import shutil

    from echossl.data.check import check_dir

    bad = tmp_path / "bad"
    shutil.copytree(sweeps, bad)
    name = pd.read_csv(bad / "sweeps.csv")["FileName"].iloc[0]
    labels = pd.read_csv(bad / "Labels" / f"{name}.csv")
    labels.loc[4, "Plane"] = "Elbow"
    labels.to_csv(bad / "Labels" / f"{name}.csv", index=False)
    report = check_dir(bad)
    assert not report["usable"] or report["counts"]["usable"] == 1
    [problem] = report["problems"]
    assert problem["row"] == 5 and "Elbow" in problem["message"] and name in problem["file"]
    (bad / "Audio" / f"{name}.wav").unlink()
    assert "audio file does not exist" in check_dir(bad)["problems"][0]["message"]
