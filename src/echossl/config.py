"""Presets and config files.

A run's configuration is the preset (``configs/cpu.yaml`` or
``configs/paper.yaml``), then a user YAML given with ``--config`` merged over it,
then command-line flags. The resolved result is saved as ``RUN/config.yaml``, so
a run can always be repeated from its own folder. Nothing is read from hidden
files or the environment.
"""

from __future__ import annotations

import copy
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from echossl.errors import ConfigError

PRESETS = ("cpu", "paper")


def deep_merge(base: dict, override: dict) -> dict:
    """Recursively merge ``override`` into a copy of ``base``."""
    out = copy.deepcopy(base)
    for key, value in (override or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_preset(name: str) -> dict:
    """``configs/<name>.yaml`` merged with every ``configs/<name>/*.yaml`` (one file per paper)."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    root = resources.files("echossl.configs")
    cfg = yaml.safe_load(root.joinpath(f"{name}.yaml").read_text())
    folder = root.joinpath(name)
    if folder.is_dir():
        for part in sorted((p for p in folder.iterdir() if p.name.endswith(".yaml")), key=lambda p: p.name):
            cfg = deep_merge(cfg, yaml.safe_load(part.read_text()) or {})
    return cfg


def load_config(preset: str = "cpu", config_file: str | Path | None = None, overrides: dict | None = None) -> dict:
    """Resolve preset <- YAML file <- overrides (``None`` values are ignored)."""
    cfg = load_preset(preset)
    if config_file is not None:
        path = Path(config_file)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        try:
            user = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"config file {path} is not valid YAML ({err.__class__.__name__})") from None
        if not isinstance(user, dict):
            raise ConfigError(f"config file {path} must hold a mapping of settings")
        cfg = deep_merge(cfg, user)
    if overrides:
        cfg = deep_merge(cfg, {k: v for k, v in overrides.items() if v is not None})
    return cfg


def save_config(cfg: dict, path: str | Path) -> None:
    from echossl.io import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(cfg, sort_keys=False))


def get(cfg: dict, dotted: str, default: Any = None) -> Any:
    """``get(cfg, "seg.css.weight")``."""
    node: Any = cfg
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node
