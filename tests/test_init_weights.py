"""`--init` from the weights people have: echossl runs, exports, and plain torchvision state dicts.

Every file here is written by the test from a randomly initialised torchvision
model (nothing is downloaded); a Kinetics-400 or ImageNet file has the same names
and shapes.
"""

from __future__ import annotations

import json

import pytest
import torch
import torchvision
import yaml

from echossl.engine import load_init_weights
from echossl.errors import CheckpointError
from echossl.models.video import build_video_regressor


def _params_equal(model: torch.nn.Module, state: dict, keys) -> None:
    own = model.state_dict()
    for k in keys:
        assert torch.equal(own[k], state[k]), k


@pytest.fixture(scope="module")
def k400_file(tmp_path_factory):
    """A Kinetics-shaped r2plus1d_18 state_dict() file (400-class fc), as torchvision saves it."""
    torch.manual_seed(11)
    state = torchvision.models.video.r2plus1d_18(weights=None).state_dict()
    path = tmp_path_factory.mktemp("init") / "r2p1d_k400.pt"
    torch.save(state, path)
    return path, state


def test_torchvision_r2plus1d_into_the_teacher_and_the_video_model(k400_file, capsys):
    path, state = k400_file
    torch.manual_seed(0)
    teacher = build_video_regressor("r2plus1d_18", 4, mean_target=55.6)
    mask_filters = teacher.stem[0].weight[:, 3:].clone()
    report = load_init_weights(teacher, path)
    # everything but the 400-way fc loads; the RGB+mask first layer takes the file's RGB filters
    assert (len(report.loaded), len(report.skipped_shape), len(report.missing), len(report.unused)) == (222, 2, 0, 0)
    assert {m for m, *_ in report.skipped_shape} == {"fc.weight", "fc.bias"}
    assert report.adapted == ["stem.0.weight"]
    w = teacher.stem[0].weight
    assert w.shape[1] == 4 and torch.equal(w[:, :3], state["stem.0.weight"])
    assert torch.equal(w[:, 3:], mask_filters)  # rule "keep": the mask channel keeps its random init
    _params_equal(teacher, state, [k for k in report.loaded if k != "stem.0.weight"])
    assert teacher.fc.bias.item() == pytest.approx(55.6)  # the EF head keeps its mean-EF bias
    table = " ".join(capsys.readouterr().err.split())  # rich wraps at the terminal width
    for row in ("loaded", "skipped for shape", "missing from the file", "in the file but unused"):
        assert row in table
    assert "222 of the model's 224" in table

    video = build_video_regressor("r2plus1d_18", 3)
    report = load_init_weights(video, path, quiet=True)
    assert len(report.loaded) == 222 and report.adapted == []
    _params_equal(video, state, report.loaded)


def test_the_extra_channel_rules(tmp_path):
    torch.manual_seed(1)
    rgb = build_video_regressor("small_r2plus1d", 3)
    path = tmp_path / "rgb.pth"
    torch.save(rgb.state_dict(), path)
    file_w = rgb.stem[0].weight.detach()
    for rule, expect in (("mean", file_w.mean(1, keepdim=True)), ("zero", torch.zeros_like(file_w[:, :1]))):
        four = build_video_regressor("small_r2plus1d", 4)
        load_init_weights(four, path, extra_channels=rule, quiet=True)
        assert torch.equal(four.stem[0].weight[:, :3], file_w)
        assert torch.allclose(four.stem[0].weight[:, 3:], expect)
    # the other way: a 4-channel teacher's file into a video-only network takes the RGB filters
    teacher_path = tmp_path / "teacher.pth"
    torch.save(build_video_regressor("small_r2plus1d", 4).state_dict(), teacher_path)
    student = build_video_regressor("small_r2plus1d", 3)
    report = load_init_weights(student, teacher_path, quiet=True)
    assert report.adapted == ["stem.0.weight"] and len(report.loaded) == len(student.state_dict())
    with pytest.raises(Exception, match="extra-channel rule"):
        load_init_weights(student, teacher_path, extra_channels="copy")


@pytest.mark.parametrize("wrap", ["module.", "model.", "net.", "backbone.", "model.module."])
def test_wrapper_prefixes_are_stripped(tmp_path, wrap):
    torch.manual_seed(2)
    src = build_video_regressor("small_r2plus1d", 3)
    state = {wrap + k: v for k, v in src.state_dict().items()}
    path = tmp_path / "wrapped.pt"
    torch.save({"state_dict": state} if wrap == "net." else state, path)
    dst = build_video_regressor("small_r2plus1d", 3)
    report = load_init_weights(dst, path, quiet=True)
    assert len(report.loaded) == len(dst.state_dict()) and not report.unused and not report.missing
    _params_equal(dst, src.state_dict(), report.loaded)


@pytest.mark.slow  # four ResNet-50s: ~15 s on 2 busy cores
def test_torchvision_deeplab_and_resnet50_into_the_paper_segmenter(tmp_path):
    from echossl.models.segmentation import build_segmenter

    torch.manual_seed(3)
    deeplab = torchvision.models.segmentation.deeplabv3_resnet50(weights=None, weights_backbone=None,
                                                                 aux_loss=True).state_dict()
    torch.save(deeplab, tmp_path / "deeplab.pth")
    seg = build_segmenter("deeplabv3_resnet50")
    report = load_init_weights(seg, tmp_path / "deeplab.pth", quiet=True)
    # backbone. -> encoder., classifier. -> decoder.; the 21-class conv and the aux head do not fit
    assert [(a, b) for a, b, _ in report.rules] == [("backbone.", "encoder."), ("classifier.", "decoder.")]
    assert {m for m, *_ in report.skipped_shape} == {"decoder.4.weight", "decoder.4.bias"}
    assert report.missing == [] and all(k.startswith("aux_classifier.") for k in report.unused)
    assert torch.equal(seg.encoder.layer4[2].conv3.weight, deeplab["backbone.layer4.2.conv3.weight"])
    assert torch.equal(seg.decoder[0].convs[1][0].weight, deeplab["classifier.0.convs.1.0.weight"])

    resnet = torchvision.models.resnet50(weights=None).state_dict()
    torch.save(resnet, tmp_path / "r50.pth")
    seg = build_segmenter("deeplabv3_resnet50")
    report = load_init_weights(seg, tmp_path / "r50.pth", quiet=True)
    assert len(report.loaded) == 318 and report.unused == ["fc.weight", "fc.bias"]
    assert all(k.startswith("decoder.") for k in report.missing)
    assert torch.equal(seg.encoder.conv1.weight, resnet["conv1.weight"])


@pytest.mark.parametrize("encoder,factory", [("resnet18", torchvision.models.resnet18),
                                             ("mobilenet_v3", torchvision.models.mobilenet_v3_large)])
def test_imagenet_encoders_into_the_super_image_unet(tmp_path, encoder, factory):
    from echossl.models.video_seg import build_video_net

    torch.manual_seed(4)
    state = factory(weights=None).state_dict()
    torch.save(state, tmp_path / "enc.pth")
    net = build_video_net("superimage", 1, encoder=encoder)
    report = load_init_weights(net, tmp_path / "enc.pth", quiet=True)
    assert report.rules[0][:2] == ("", "body.encoder.")
    assert all(k.startswith("body.encoder.") for k in report.loaded)
    assert all(not k.startswith("body.encoder.") for k in report.missing)  # only the decoder starts afresh
    enc = net.body.encoder.state_dict()
    for k in enc:
        assert torch.equal(enc[k], state[k]), k


def test_a_file_for_another_model_is_refused_unless_partial(tmp_path):
    torch.manual_seed(5)
    big = build_video_regressor("small_r2plus1d", 3, widths=[8, 16, 32, 64])
    # only the first stem convolution and its norm fit a wider network: less than half of its tensors
    torch.save(big.state_dict(), tmp_path / "other.pt")
    wide = build_video_regressor("small_r2plus1d", 3, widths=[12, 24, 48, 96])
    before = {k: v.clone() for k, v in wide.state_dict().items()}
    with pytest.raises(CheckpointError, match="--init-partial") as err:
        load_init_weights(wide, tmp_path / "other.pt", quiet=True)
    assert "\n" not in str(err.value) and "other.pt" in str(err.value)
    assert all(torch.equal(before[k], v) for k, v in wide.state_dict().items())  # refused: nothing changed
    report = load_init_weights(wide, tmp_path / "other.pt", allow_partial=True, quiet=True)
    assert 0 < 2 * len(report.loaded) < report.model_tensors and report.skipped_shape
    _params_equal(wide, big.state_dict(), report.loaded)
    # nothing that fits at all is refused even with allow_partial
    torch.save({"foo.weight": torch.zeros(3)}, tmp_path / "nothing.pt")
    with pytest.raises(CheckpointError, match="no tensor"):
        load_init_weights(wide, tmp_path / "nothing.pt", allow_partial=True, quiet=True)


def test_echossl_checkpoints_run_folders_and_exports(tmp_path):
    from safetensors.torch import save_file

    from echossl.methods.ef import EFRegression

    torch.manual_seed(6)
    src = EFRegression(model="small_r2plus1d", model_kwargs={"widths": [8, 16, 32, 64]})
    state = src.state_dict()  # net.* keys, as a Lightning checkpoint holds them
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    torch.save({"state_dict": state, "hyper_parameters": dict(src.hparams)}, run / "checkpoints" / "best.ckpt")
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "model.safetensors"))
    for source in (run, run / "checkpoints" / "best.ckpt", tmp_path / "model.safetensors"):
        dst = EFRegression(model="small_r2plus1d", model_kwargs={"widths": [8, 16, 32, 64]})
        record = tmp_path / "init.json"
        report = load_init_weights(dst.net, source, prefix="net.", quiet=True, record=record)
        assert len(report.loaded) == len(dst.net.state_dict()) and not report.unused
        assert json.loads(record.read_text())["loaded"] == len(report.loaded)
        _params_equal(dst, state, state)


@pytest.mark.slow
def test_train_ef_paper_init_ends_up_in_the_run(tmp_path, sim_echonet, k400_file, monkeypatch, capsys):
    """`train ef --preset paper --init r2p1d.pt --max-steps 1` (small clips, lr 0 so one step changes no weight)."""
    from echossl.engine import load_checkpoint
    from echossl.cli import main

    path, state = k400_file
    cfg = tmp_path / "small.yaml"
    cfg.write_text(yaml.safe_dump({
        "labeled_fraction": 0.5, "data": {"size": 32, "stats_videos": 4, "workers": 0},
        "ef": {"batch_size": 2, "length": 4, "period": 2, "pad": None, "lr": 0.0, "weight_decay": 0.0,
               "test_clips": 1, "infer_batch": 4}}))
    run = tmp_path / "ef"
    try:
        main(["train", "ef", "--data", str(sim_echonet), "--out", str(run), "--preset", "paper", "--config", str(cfg),
              "--init", str(path), "--max-steps", "1"])
    except SystemExit as stop:
        assert stop.code in (0, None)
    assert "222 of the model's 224 tensors loaded" in " ".join(capsys.readouterr().err.split())
    recorded = json.loads((run / "init.json").read_text())
    assert recorded["loaded"] == 222 and [s["model"] for s in recorded["skipped_shape"]] == ["fc.weight", "fc.bias"]
    weights = load_checkpoint(run / "checkpoints" / "last.ckpt")["state_dict"]
    params = {n for n, _ in torchvision.models.video.r2plus1d_18(weights=None).named_parameters()} - {"fc.weight",
                                                                                                       "fc.bias"}
    assert len(params) > 100
    for name in params:  # BN running statistics move in a training forward pass; parameters do not at lr 0
        assert torch.equal(weights[f"net.{name}"], state[name]), name
