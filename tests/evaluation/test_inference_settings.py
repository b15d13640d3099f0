"""predict / evaluate / export follow the checkpoint's own settings, not the preset given at predict time."""

from __future__ import annotations

import json
import shutil
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from echossl.config import deep_merge, load_preset, save_config

# a run made with settings unlike the cpu preset's (size 32, length 32, period 2, 8 test clips),
# standing in for a `paper` run without the cost of R(2+1)D-18
RUN_EF = {"size": 24, "length": 8, "period": 3, "test_clips": 3}


def make_ef_run(run, ef_overrides=RUN_EF, seed=0):
    """A run folder (config.yaml + checkpoints/best.ckpt) of an untrained small EF model, in milliseconds."""
    from echossl.methods.ef import EFRegression

    cfg = deep_merge(load_preset("cpu"), {"ef": dict(ef_overrides)})
    torch.manual_seed(seed)
    norm = {"mean": [30.0, 31.0, 32.0], "std": [40.0, 41.0, 42.0], "size": cfg["ef"]["size"]}
    module = EFRegression(model=cfg["ef"]["model"], in_channels=3, mean_target=55.0, norm=norm,
                          model_kwargs=cfg["ef"].get("model_kwargs"))
    (run / "checkpoints").mkdir(parents=True)
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams), "epoch": 1,
                "global_step": 2}, run / "checkpoints" / "best.ckpt")
    save_config(cfg, run / "config.yaml")
    return run


def reference_ef(run, video, *, size, length, period, clips) -> float:
    """EF computed directly with given settings, bypassing predict's settings logic."""
    from echossl.data.video import read_video
    from echossl.pipelines import semisupervised_ef as pipe

    module, hp = pipe.load_ef_model(run)
    x = pipe._normalise(read_video(video), {**hp["norm"], "size": size}, "cpu")
    return pipe.predict_ef_frames(module, x, length, period, clips, 16)


@pytest.fixture(scope="module")
def ef_run(tmp_path_factory):
    return make_ef_run(tmp_path_factory.mktemp("run") / "ef")


@pytest.fixture()
def videos(sim_echonet):
    return sorted((sim_echonet / "Videos").glob("*.avi"))[:1]


def test_predict_uses_the_checkpoints_settings_without_any_preset(ef_run, videos, tmp_path):
    from echossl.pipelines.predict import predict

    plain = predict(ef_run, videos, tmp_path / "plain.csv")
    own = predict(ef_run, videos, tmp_path / "own.csv", config=ef_run / "config.yaml")
    # the same EF as with the run's own config.yaml ...
    assert (tmp_path / "plain.csv").read_bytes() == (tmp_path / "own.csv").read_bytes()
    # ... which is the EF at the run's settings, and not the EF at the cpu preset's
    run_ef = [reference_ef(ef_run, v, size=24, length=8, period=3, clips=3) for v in videos]
    cpu = load_preset("cpu")["ef"]
    cpu_ef = [reference_ef(ef_run, v, size=24, length=cpu["length"], period=cpu["period"], clips=cpu["test_clips"])
              for v in videos]
    np.testing.assert_allclose(plain.EF, run_ef, atol=1e-4)
    assert np.max(np.abs(np.asarray(cpu_ef) - np.asarray(run_ef))) > 1e-3
    assert list(own.EF) == list(plain.EF)


def test_preset_is_ignored_and_config_set_override(ef_run, videos, tmp_path):
    from echossl.pipelines.predict import predict

    plain = predict(ef_run, videos[:1], tmp_path / "a.csv")
    with_preset = predict(ef_run, videos[:1], tmp_path / "b.csv", preset="paper")
    assert list(with_preset.EF) == list(plain.EF)
    # --set is an explicit override over the checkpoint's config
    one = predict(ef_run, videos[:1], tmp_path / "c.csv", sets=("ef.test_clips=1", "ef.period=2"))
    expected = reference_ef(ef_run, videos[0], size=24, length=8, period=2, clips=1)
    assert one.EF[0] == pytest.approx(expected, abs=1e-4)
    assert abs(one.EF[0] - plain.EF[0]) > 1e-4


def test_bare_checkpoint_falls_back_to_the_preset_with_a_warning(ef_run, videos, tmp_path):
    from echossl.pipelines.predict import predict

    bare = tmp_path / "moved.ckpt"
    shutil.copy(ef_run / "checkpoints" / "best.ckpt", bare)
    with pytest.warns(UserWarning, match="no config.yaml"):
        table = predict(bare, videos[:1], tmp_path / "a.csv")
    cpu = load_preset("cpu")["ef"]
    expected = reference_ef(ef_run, videos[0], size=24, length=cpu["length"], period=cpu["period"],
                            clips=cpu["test_clips"])
    assert table.EF[0] == pytest.approx(expected, abs=1e-4)


def test_evaluate_uses_the_checkpoints_test_clips(ef_run, sim_echonet, tmp_path):
    from echossl.data.echonet import read_filelist
    from echossl.pipelines.evaluate import evaluate

    out = tmp_path / "eval" / "metrics.json"
    metrics = evaluate(ef_run, sim_echonet, "TEST", out, preset="cpu")
    table = pd.read_csv(out.with_name("predictions.csv"))
    files = read_filelist(sim_echonet)
    test = files[files.Split == "TEST"]
    assert list(table.columns) == ["FileName", "EF_True", "EF_Pred", "EF_ClipStd", "Clips"]
    assert set(table.FileName) == set(test.FileName) and len(table) == json.loads(out.read_text())["n"]
    assert (table.Clips == RUN_EF["test_clips"]).all()  # the run's 3, not the cpu preset's 8
    assert (table.EF_ClipStd > 0).all()
    np.testing.assert_allclose(table.EF_True, test.set_index("FileName").loc[table.FileName, "EF"], atol=1e-3)
    assert metrics["mae"] == pytest.approx(np.mean(np.abs(table.EF_True - table.EF_Pred)), abs=1e-3)
    # the per-video mean is the EF of the clips at the run's own settings
    video = sim_echonet / "Videos" / f"{table.FileName[0]}.avi"
    assert table.EF_Pred[0] == pytest.approx(
        reference_ef(ef_run, video, size=24, length=8, period=3, clips=3), abs=2e-3)


def test_the_cli_warns_that_preset_is_deprecated(ef_run, videos, tmp_path):
    from echossl.cli import main
    from echossl.evaluation import settings
    from echossl.pipelines.predict import predict

    settings._WARNED_PRESET = False
    with pytest.warns(FutureWarning, match="--preset is deprecated"):
        main(["predict", "--checkpoint", str(ef_run), str(videos[0]), "--out", str(tmp_path / "cli.csv"),
              "--preset", "paper", "--accelerator", "cpu", "--devices", "1", "--batch-size", "2"])
    api = predict(ef_run, videos[:1], tmp_path / "api.csv")
    assert pd.read_csv(tmp_path / "cli.csv").EF[0] == pytest.approx(api.EF[0], abs=1e-4)


def test_select_device():
    from echossl.errors import EchosslError
    from echossl.engine.devices import _first_index, select_device

    assert select_device("cpu", "4").type == "cpu"
    if not torch.cuda.is_available():
        assert select_device("auto", "auto").type == "cpu"
        with pytest.raises(EchosslError, match="no CUDA"):
            select_device("gpu", "1")
    assert _first_index("1,3") == 1 and _first_index("[2]") == 2 and _first_index("auto") == 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert _first_index("2") == 0
    with pytest.raises(EchosslError, match="--devices"):
        _first_index("two")
    with pytest.raises(EchosslError, match="--accelerator"):
        select_device("abacus")


def test_evaluate_seg_writes_per_video_dice(sim_echonet, tmp_path):
    from echossl.data.echonet import read_filelist
    from echossl.pipelines.evaluate import evaluate
    from echossl.methods.css import SegmentationModule

    cfg = load_preset("cpu")
    torch.manual_seed(0)
    module = SegmentationModule(model=cfg["seg"]["model"], norm={"mean": [30.0] * 3, "std": [40.0] * 3, "size": 32})
    run = tmp_path / "seg"
    (run / "checkpoints").mkdir(parents=True)
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)},
               run / "checkpoints" / "best.ckpt")
    save_config(cfg, run / "config.yaml")
    out = tmp_path / "eval" / "metrics.json"
    metrics = evaluate(run, sim_echonet, "TEST", out, batch_size=64)
    table = pd.read_csv(out.with_name("predictions.csv"))
    files = read_filelist(sim_echonet)
    assert list(table.columns) == ["FileName", "Dice_ED", "Dice_ES", "Dice", "EF_True", "EF_Seg"]
    assert set(table.FileName) == set(files.FileName[files.Split == "TEST"])
    assert table[["Dice_ED", "Dice_ES", "Dice"]].stack().between(0, 1).all()
    assert json.loads(out.read_text())["n"] == len(table) and "dice" in metrics
    # pooled Dice of a video lies between its two frames' Dice
    lo, hi = table[["Dice_ED", "Dice_ES"]].min(axis=1), table[["Dice_ED", "Dice_ES"]].max(axis=1)
    assert ((table.Dice >= lo - 1e-9) & (table.Dice <= hi + 1e-9)).all()
