"""Options shared by every training command (CONTRACT.md "Common flags"), declared once.

A training command declares only its own options and one parameter ``flags: RunFlags``;
:func:`run_command` adds the common flags to its signature (so ``--help`` lists them) and
hands them over gathered in a :class:`RunFlags`. ``flags.config(...)`` resolves the
preset, ``--config`` file, ``--set`` values and flags into one validated config dict,
and ``flags.trainer(...)`` builds the engine's ``TrainerOptions``.

Nothing here imports Lightning or torch at module level, so ``echossl --help`` is fast.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Callable, Optional

import typer

from echossl.config import load_config
from echossl.errors import ConfigError, EchosslError

Data = Annotated[Path, typer.Option("--data", help="Data folder (EchoNet-Dynamic layout).")]
Out = Annotated[Path, typer.Option("--out", help="Run folder to create.")]
Preset = Annotated[str, typer.Option("--preset", help="Settings preset: cpu or paper.")]
ConfigFile = Annotated[Optional[Path], typer.Option("--config", help="YAML file merged over the preset.")]
Strict = Annotated[bool, typer.Option("--strict", help="Stop at the first bad video instead of skipping it.")]
Accelerator = Annotated[str, typer.Option("--accelerator", help="cpu, gpu or auto (default: CUDA when available).")]
Devices = Annotated[str, typer.Option("--devices", help="Passed to Lightning: a count, a list, or auto (inference uses the first).")]
SetValues = Annotated[Optional[list[str]], typer.Option("--set", help="One config value, e.g. --set seg.lr=1e-4 (repeatable).")]
CheckpointConfig = Annotated[Optional[Path], typer.Option("--config", help="YAML merged over the checkpoint's own config.")]
DeprecatedPreset = Annotated[Optional[str], typer.Option("--preset", help="Deprecated: settings come from the checkpoint; used only when its config.yaml is missing.")]
BatchSize = Annotated[Optional[int], typer.Option("--batch-size", min=1, help="Clips (EF) or frames (seg) per forward pass.")]

ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps", "tpu")
PRECISIONS = ("64-true", "64", "32-true", "32", "16-mixed", "16", "bf16-mixed", "bf16", "16-true", "bf16-true",
              "transformer-engine", "transformer-engine-float16")

# The common flags, each declared once: name -> (annotation, default, group).
# Groups let a command take only what applies to it (``reproduce`` has no --resume).
_FLAGS: dict[str, tuple[Any, Any, str]] = {
    "preset": (Preset, "cpu", "config"),
    "config_file": (ConfigFile, None, "config"),
    "set_": (SetValues, None, "config"),
    "seed": (Annotated[Optional[int], typer.Option("--seed", help="Seed for training randomness (not the labeled subset).")], None, "config"),
    "split_seed": (Annotated[Optional[int], typer.Option("--split-seed", help="Seed that fixes the labeled subset (default 0).")], None, "config"),
    "labeled_fraction": (Annotated[Optional[float], typer.Option("--labeled-fraction", help="Share of TRAIN with labels.")], None, "config"),
    "max_epochs": (Annotated[Optional[int], typer.Option("--max-epochs", help="Epochs (default: the preset's).")], None, "trainer"),
    "max_steps": (Annotated[Optional[int], typer.Option("--max-steps", help="Stop after this many optimizer steps.")], None, "trainer"),
    "resume": (Annotated[bool, typer.Option("--resume", help="Continue from RUN/checkpoints/last.ckpt.")], False, "resume"),
    "devices": (Devices, "1", "trainer"),
    "accelerator": (Accelerator, "auto", "trainer"),
    "num_nodes": (Annotated[int, typer.Option("--num-nodes", help="Passed to Lightning.")], 1, "trainer"),
    "strategy": (Annotated[str, typer.Option("--strategy", help="Passed to Lightning (auto, ddp, ddp_spawn, ...).")], "auto", "trainer"),
    "precision": (Annotated[str, typer.Option("--precision", help="32-true, bf16-mixed or 16-mixed.")], "32-true", "trainer"),
    "compile_": (Annotated[bool, typer.Option("--compile", help="Wrap the model in torch.compile (faster steps after a slow first one).")], False, "trainer"),
    "threads": (Annotated[Optional[int], typer.Option("--threads", help="CPU threads for torch (default: torch's choice).")], None, "trainer"),
    "init": (Annotated[Optional[Path], typer.Option("--init", help="Initial weights: a run, checkpoint, export safetensors or torchvision state_dict file.")], None, "init"),
    "init_partial": (Annotated[bool, typer.Option("--init-partial", help="Accept --init weights that cover under half of the model.")], False, "init"),
    "strict": (Strict, False, "strict"),
}
ALL_GROUPS = ("config", "trainer", "resume", "init", "strict")

# Papers that keep a labeled fraction of their own; --labeled-fraction sets these too.
FRACTION_KEYS: dict[str | None, tuple[str, ...]] = {
    "unilvseg": ("unilvseg.labeled_fraction",),
    "video_speech": ("video_speech.plane.labeled_fraction", "video_speech.saliency.labeled_fraction"),
}


@dataclass
class RunFlags:
    """The common flags of one command invocation, as typed by the user."""

    preset: str = "cpu"
    config_file: Path | None = None
    set_: list[str] | None = None
    seed: int | None = None
    split_seed: int | None = None
    labeled_fraction: float | None = None
    max_epochs: int | None = None
    max_steps: int | None = None
    resume: bool = False
    devices: str = "1"
    accelerator: str = "auto"
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32-true"
    compile_: bool = False
    threads: int | None = None
    init: Path | None = None
    init_partial: bool = False
    strict: bool = False
    extra: dict = field(default_factory=dict)

    def config(self, paper: str | None = None) -> dict:
        """The resolved, validated config: preset <- --config <- --set <- flags.

        ``paper`` names the section whose own labeled-fraction keys ``--labeled-fraction``
        also sets (:data:`FRACTION_KEYS`, the one place this is mapped): the flag has one
        meaning, the share of TRAIN with labels, whatever task runs.
        """
        overrides: dict[str, Any] = {"seed": self.seed, "split_seed": self.split_seed,
                                     "labeled_fraction": self.labeled_fraction}
        if self.init_partial:
            overrides["init_partial"] = True
        cfg = load_config(self.preset, self.config_file, overrides, sets=self.set_ or ())
        if self.labeled_fraction is not None:
            from echossl.config import set_dotted

            for key in FRACTION_KEYS.get(paper, ()):
                set_dotted(cfg, key, self.labeled_fraction)
        fraction = cfg["labeled_fraction"]
        if not 0 < fraction <= 1:
            raise EchosslError(f"--labeled-fraction must be in (0, 1], got {fraction}")
        return cfg

    def trainer(self, cfg: dict, section: str | dict | None = None, **replace):
        """``TrainerOptions`` for the engine; epochs default to ``section['max_epochs']``."""
        from echossl.engine import TrainerOptions

        check_trainer_flags(self.accelerator, self.strategy, self.precision)
        node = cfg.get(section, {}) if isinstance(section, str) else (section or {})
        try:
            devices: str | int = int(self.devices)
        except ValueError:
            devices = self.devices
        max_epochs = self.max_epochs
        if max_epochs is None and not self.max_steps:
            max_epochs = node.get("max_epochs")
        opts = TrainerOptions(max_epochs=max_epochs, max_steps=self.max_steps, devices=devices,
                              accelerator=self.accelerator, num_nodes=self.num_nodes, strategy=self.strategy,
                              precision=self.precision, resume=self.resume, seed=cfg["seed"],
                              compile=self.compile_, threads=self.threads)
        for key, value in replace.items():
            setattr(opts, key, value)
        return opts

    def check(self) -> None:
        """Validate the trainer flags and the config without building anything."""
        check_trainer_flags(self.accelerator, self.strategy, self.precision)
        self.config()

    @property
    def init_path(self) -> str | None:
        if self.init is None:
            return None
        if not self.init.exists():
            raise EchosslError(f"--init {self.init} does not exist")
        return str(self.init)


def check_trainer_flags(accelerator: str, strategy: str, precision: str) -> None:
    """One sentence for a bad ``--accelerator``, ``--strategy`` or ``--precision``, before Lightning sees it."""
    if accelerator not in ACCELERATORS:
        raise ConfigError(f"--accelerator must be one of {', '.join(ACCELERATORS)}, got {accelerator!r}")
    if str(precision) not in PRECISIONS:
        raise ConfigError(f"--precision must be one of {', '.join(PRECISIONS[:7])}, got {precision!r}")
    if strategy != "auto":
        from lightning.pytorch.strategies import StrategyRegistry

        names = sorted(StrategyRegistry.available_strategies())
        if strategy not in names:
            import difflib

            close = difflib.get_close_matches(strategy, names, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ConfigError(f"--strategy {strategy!r} is not a Lightning strategy{hint}; "
                              f"try auto, ddp, ddp_spawn or fsdp")


def run_command(*groups: str) -> Callable[[Callable], Callable]:
    """Add the common flags of ``groups`` (default: all) to a command taking ``flags: RunFlags``.

    The flags are declared once, in ``_FLAGS``; typer reads the combined signature.
    """
    wanted = groups or ALL_GROUPS

    def decorate(fn: Callable) -> Callable:
        own = inspect.signature(fn, eval_str=True)
        params = [p for p in own.parameters.values() if p.name != "flags"]
        taken = {p.name for p in params}
        added = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
                 for name, (annotation, default, group) in _FLAGS.items() if group in wanted and name not in taken]
        names = {p.name for p in added}
        keyword = {p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY}
        ordered = [p for p in params if p.name not in keyword]
        tail = [p for p in params if p.name in keyword] + added
        # typer passes everything by keyword; make every parameter keyword-capable
        tail = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in tail]

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            common = {k: kwargs.pop(k) for k in list(kwargs) if k in names}
            return fn(*args, flags=RunFlags(**common), **kwargs)

        wrapper.__signature__ = own.replace(parameters=ordered + tail)
        wrapper.__annotations__ = {p.name: p.annotation for p in ordered + tail}
        return wrapper

    return decorate


def require_dir(path: Path, what: str = "data folder") -> Path:
    if not path.exists():
        raise EchosslError(f"{what} {path} does not exist")
    if not path.is_dir():
        raise EchosslError(f"{what} {path} is not a folder")
    return path


def print_metrics(run: Path) -> None:
    """One line: the run folder and its metrics.json values (CIs left out)."""
    import json

    from rich.console import Console

    path = Path(run)
    path = path if path.suffix == ".json" else path / "metrics.json"
    metrics = json.loads(path.read_text())
    shown = {k: v for k, v in metrics.items() if not k.endswith("_ci95") and not isinstance(v, (dict, list))}
    Console().print(f"[bold]{path.parent}[/bold] " + ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in shown.items()))


__all__ = ["RunFlags", "run_command", "check_trainer_flags", "require_dir", "print_metrics", "Data", "Out",
           "Preset", "ConfigFile", "Strict", "Accelerator", "Devices", "BatchSize", "SetValues",
           "CheckpointConfig", "DeprecatedPreset"]
