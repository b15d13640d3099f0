"""Common flags declared once, validated config, ``config show``, ``--version`` and a light start-up."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from echossl.cli import main

CLI = Path(__file__).resolve().parents[2] / "src" / "echossl" / "cli"


def call(*argv: str) -> tuple[int, str, str]:
    import io
    from contextlib import redirect_stderr, redirect_stdout

    out, err = io.StringIO(), io.StringIO()
    code = 0
    with redirect_stdout(out), redirect_stderr(err):
        try:
            main(list(argv))
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
    return code, out.getvalue(), err.getvalue()


def test_trainer_flags_are_declared_once_in_cli():
    text = "\n".join(p.read_text() for p in CLI.glob("*.py"))
    for flag in ("--num-nodes", "--strategy", "--precision", "--split-seed", "--set",
                 "--init", "--max-epochs"):
        assert text.count(f'"{flag}"') == 1, flag


@pytest.mark.parametrize("command", [
    ["train", "seg"], ["train", "ef"], ["train", "distill"], ["train", "video-seg"], ["train", "mrjet"],
    ["train", "plane"], ["train", "saliency"], ["pretrain", "discover"], ["pretrain", "jigsaw"],
    ["pretrain", "temporal-masking"], ["pretrain", "video-speech"], ["demo"], ["reproduce", "table4"],
    ["reproduce", "discover"], ["reproduce", "unilvseg"], ["reproduce", "mrjet"], ["reproduce", "video-speech"],
])
def test_every_training_command_takes_the_common_flags(command):
    code, out, _ = call(*command, "--help")
    assert code == 0
    for flag in ("--num-nodes", "--strategy", "--precision", "--seed", "--split-seed", "--set"):
        assert flag in out, (command, flag)
    assert "[default: auto]" in out  # --accelerator


def test_config_show_prints_the_resolved_paper_preset():
    code, out, _ = call("config", "show", "--preset", "paper", "--set", "seg.lr=2e-5", "--seed", "4")
    assert code == 0
    cfg = yaml.safe_load(out)
    assert cfg["seg"]["model"] == "deeplabv3_resnet50"
    assert cfg["seg"]["lr"] == pytest.approx(2e-5) and cfg["seed"] == 4 and cfg["split_seed"] == 0


@pytest.mark.parametrize("yaml_text, needles", [
    ("seg:\n  lrr: 5\n", ["seg.lrr", "did you mean seg.lr"]),
    ("ef:\n  lr: fast\n", ["ef.lr", "a number"]),
    ("seg:\n  css:\n    weight: [1]\n", ["seg.css.weight", "a number"]),
])
def test_a_bad_config_file_is_one_sentence_naming_the_key(tmp_path, yaml_text, needles):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml_text)
    code, _, err = call("config", "show", "--config", str(path))
    assert code == 1
    assert err.count("error:") == 1 and all(n in err for n in needles), err


def test_yaml_exponent_without_a_dot_is_read_as_a_number(tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text("seg:\n  lr: 1e-4\n")  # YAML 1.1 reads this as a string
    code, out, _ = call("config", "show", "--config", str(path))
    assert code == 0 and yaml.safe_load(out)["seg"]["lr"] == pytest.approx(1e-4)


@pytest.mark.parametrize("flag, value, needle", [
    ("--accelerator", "gpux", "--accelerator must be one of"),
    ("--precision", "33", "--precision must be one of"),
    ("--strategy", "ddpp", "did you mean ddp"),
])
def test_bad_trainer_flags_are_one_sentence(tmp_path, flag, value, needle):
    code, _, err = call("train", "seg", "--data", str(tmp_path), "--out", str(tmp_path / "run"), flag, value)
    assert code == 1 and needle in err and "Traceback" not in err, err


def test_labeled_fraction_has_one_meaning():
    from echossl.cli.common import RunFlags

    uni = RunFlags(labeled_fraction=0.25).config("unilvseg")
    vs = RunFlags(labeled_fraction=0.25).config("video_speech")
    assert uni["labeled_fraction"] == uni["unilvseg"]["labeled_fraction"] == 0.25
    assert vs["video_speech"]["plane"]["labeled_fraction"] == vs["video_speech"]["saliency"]["labeled_fraction"] == 0.25


def test_version():
    code, out, _ = call("--version")
    assert code == 0 and out.startswith("echossl ")


def test_help_imports_neither_torch_nor_lightning():
    probe = ("import sys; from echossl.cli import _register; _register(); "
             "print(sorted(m for m in ('torch', 'lightning', 'monai', 'cv2') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True).stdout
    assert out.strip() == "[]"
