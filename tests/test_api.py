"""The Python API: __all__ of every package, load_model, transform=, the DataModules, and docs/api.md's examples."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("echossl", "echossl.data", "echossl.methods", "echossl.models", "echossl.evaluation",
            "echossl.simulate", "echossl.pipelines", "echossl.configs", "echossl.bench")


def test_import_echossl_is_light():
    code = "import sys, echossl; print(int('torch' in sys.modules), len(echossl.__all__))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    torch_loaded, n = out.stdout.split()
    assert torch_loaded == "0" and int(n) > 10


@pytest.mark.parametrize("name", PACKAGES)
def test_every_public_name_resolves(name):
    package = importlib.import_module(name)
    assert isinstance(package.__all__, list)
    for public in package.__all__:
        assert getattr(package, public) is not None, f"{name}.{public}"
    with pytest.raises(AttributeError):
        package.no_such_name  # noqa: B018


def test_named_losses_are_public_and_typed():
    import echossl
    from echossl import methods

    for loss in ("cyclical_loss", "distillation_loss", "semantic_cluster_distillation"):
        assert callable(getattr(methods, loss)) and getattr(echossl, loss) is getattr(methods, loss)
    assert (ROOT / "src" / "echossl" / "py.typed").is_file()
    assert "py.typed" in (ROOT / "pyproject.toml").read_text()


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A folder holding ``EchoNet-Dynamic/`` (8 simulated videos) and ``runs/ef`` (an untrained cpu-preset
    EF model saved as an echossl checkpoint with its config.yaml): what docs/api.md's examples expect."""
    from echossl.config import load_config, save_config
    from echossl.methods.ef import EFRegression
    from echossl.simulate.echonet import simulate_echonet

    root = tmp_path_factory.mktemp("api")
    simulate_echonet(root / "EchoNet-Dynamic", 8, seed=1, size=64, progress=False)
    cfg = load_config("cpu")
    cfg["ef"].update(length=8, period=2)
    torch.manual_seed(0)
    module = EFRegression(model=cfg["ef"]["model"], model_kwargs=cfg["ef"].get("model_kwargs"), mean_target=55.0,
                          norm={"mean": [30.0] * 3, "std": [40.0] * 3, "size": 32})
    run = root / "runs" / "ef"
    (run / "checkpoints").mkdir(parents=True)
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)},
               run / "checkpoints" / "best.ckpt")
    save_config(cfg, run / "config.yaml")
    return root


def test_load_model_returns_network_and_settings(workspace):
    import echossl

    net, settings = echossl.load_model(workspace / "runs" / "ef")
    assert isinstance(net, torch.nn.Module) and not net.training
    assert settings["task"] == "ef" and settings["in_channels"] == 3
    assert (settings["length"], settings["period"]) == (8, 2)  # from the run's config.yaml
    assert settings["norm"]["size"] == 32
    frames = np.full((40, 64, 64, 3), 90, np.uint8)
    ef = echossl.predict_ef(net, frames, settings)
    x = echossl.prepare_frames(frames, settings)
    assert x.shape == (40, 3, 32, 32) and torch.allclose(x, torch.full_like(x, 1.5))
    with torch.inference_mode():  # every clip of a constant video is the same clip
        one = float(net(x[:16:2].permute(1, 0, 2, 3)[None]).reshape(-1))
    assert ef == pytest.approx(one, rel=1e-5)


def test_load_model_refuses_garbage(tmp_path):
    from echossl.api import load_model
    from echossl.errors import CheckpointError

    (tmp_path / "x.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        load_model(tmp_path / "x.ckpt")


def test_datasets_apply_monai_and_torchvision_transforms(workspace):
    from monai.transforms import ScaleIntensityd
    from torchvision.transforms import v2

    from echossl.data import EchoNetDynamic, EchoNetFrames

    data = workspace / "EchoNet-Dynamic"
    kw = dict(length=8, period=2, mean=0.0, std=1.0, warn=False)
    plain = EchoNetDynamic(data, "TRAIN", **kw)
    scaled = EchoNetDynamic(data, "TRAIN", transform=ScaleIntensityd(keys="video"), **kw)
    torch.manual_seed(3)
    a = plain[0]
    torch.manual_seed(3)
    b = scaled[0]
    assert b["video"].shape == a["video"].shape and b["EF"] == a["EF"] and b["filename"] == a["filename"]
    assert float(b["video"].min()) == pytest.approx(0.0) and float(b["video"].max()) == pytest.approx(1.0)
    assert float(a["video"].max()) > 1.5  # the untransformed clip is on the 0..255 scale
    flipped = EchoNetFrames(data, "TRAIN", transform=v2.RandomHorizontalFlip(p=1.0), warn=False)
    same = EchoNetFrames(data, "TRAIN", warn=False)
    f, s = flipped[0], same[0]
    assert torch.equal(torch.as_tensor(f["image"]), torch.flip(s["image"], dims=[-1]))
    assert f["frame"] == s["frame"]


def test_echonet_datamodule_batches(workspace):
    from echossl.data import EchoNetDynamicDataModule

    dm = EchoNetDynamicDataModule(workspace / "EchoNet-Dynamic", length=8, period=2, batch_size=2,
                                  labeled_fraction=0.5, size=32, stats_videos=2)
    dm.setup("fit")
    assert len(dm.labeled) + len(dm.unlabeled) == len(dm.train_set) + len(dm.unlabeled)
    assert len(dm.train_set) == len(dm.labeled) >= 1
    batch = next(iter(dm.train_dataloader()))
    assert batch["video"].shape[1:] == (3, 8, 32, 32) and batch["EF"].ndim == 1
    assert next(iter(dm.val_dataloader()))["video"].shape[-1] == 32


def test_camus_datamodule_batches(tmp_path):
    from echossl.data import CamusDataModule
    from echossl.simulate.camus import simulate_camus

    simulate_camus(tmp_path / "camus", 10, seed=0)
    dm = CamusDataModule(tmp_path / "camus", size=32, length=12, batch_size=3)
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    assert batch["video"].shape[1:] == (3, 12, 32, 32)
    assert len(batch["patient"]) == batch["video"].shape[0] and isinstance(batch["patient"][0], str)


def _examples() -> list[str]:
    text = (ROOT / "docs" / "api.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    return [b for b in blocks if not b.lstrip().startswith("# not run")]


def test_docs_have_three_runnable_examples():
    blocks = _examples()
    assert len(blocks) == 3
    assert all(len(b.strip().splitlines()) <= 16 for b in blocks)


@pytest.mark.parametrize("index", [0, 1, 2])
def test_docs_api_example_runs(index, workspace, monkeypatch, capsys):
    monkeypatch.chdir(workspace)
    namespace: dict = {}
    exec(compile(_examples()[index], f"docs/api.md example {index + 1}", "exec"), namespace)  # noqa: S102
    if index == 0:
        assert np.isfinite(namespace["ef"]) and namespace["one_clip_ef"].shape == (1,)
        assert "EF " in capsys.readouterr().out
    elif index == 1:
        loss = namespace["loss"].detach()
        assert torch.isfinite(loss) and float(loss) > 0
    else:
        video = namespace["video"]
        assert video.shape[1:] == (3, 16, 64, 64)
        assert float(video.min()) >= 0.0 and float(video.max()) <= 1.0 + 1e-6
