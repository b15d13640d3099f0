"""Presets and config files.

A run's configuration is the preset (``configs/cpu.yaml`` or
``configs/paper.yaml``), then a user YAML given with ``--config`` merged over it,
then command-line flags. The resolved result is saved as ``RUN/config.yaml``, so
a run can always be repeated from its own folder. Nothing is read from hidden
files or the environment.

Validation: the two presets are the schema. Every key a user gives (in a ``--config``
file or with ``--set``) must exist in ``cpu`` or ``paper`` (each paper's section lives in
``configs/<preset>/<paper>.yaml``), and its value must have the type the presets give it
(an int is accepted for a float; ``null`` in a preset accepts the other preset's type;
keys under a ``*_kwargs`` mapping are free, since they go to a model builder). An unknown
key is refused in one sentence naming the closest valid key, a wrong type naming the
expected type. A new setting therefore needs only a line in each preset.
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


def load_config(preset: str = "cpu", config_file: str | Path | None = None, overrides: dict | None = None,
                sets: tuple[str, ...] | list[str] = ()) -> dict:
    """Resolve preset <- YAML file <- ``--set a.b=c`` values <- overrides (``None`` values are ignored).

    The file and the ``--set`` values are validated against the presets (see the module docstring).
    """
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
        validate(user, where=f"config file {path}")
        cfg = deep_merge(cfg, _coerce(user, schema()))
    for item in sets:
        key, value = parse_set(item)
        update: dict = {}
        set_dotted(update, key, value)
        validate(update, where=f"--set {item}")
        cfg = deep_merge(cfg, _coerce(update, schema()))
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


def set_dotted(cfg: dict, dotted: str, value: Any) -> None:
    """``set_dotted(cfg, "seg.css.weight", 0.1)``, creating sections as needed."""
    parts = dotted.split(".")
    node = cfg
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def parse_set(item: str) -> tuple[str, Any]:
    """``"seg.lr=1e-4"`` -> ``("seg.lr", 1e-4)``; the value is read as YAML."""
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {item!r} must look like section.key=value")
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError:
        value = text
    return key.strip(), value


_SCHEMA: dict | None = None

# Keys whose presets both hold a word but which also take a number.
ALSO_ACCEPTS = {"mrjet.train.peak_height": {"float"}}


def schema() -> dict:
    """Every valid key, as the union of both presets: ``{key: {"types": set, "children": schema}}``."""
    global _SCHEMA
    if _SCHEMA is None:
        _SCHEMA = {}
        for name in PRESETS:
            _add_to_schema(_SCHEMA, load_preset(name))
        for top in ("split_seed", "init_partial"):
            _SCHEMA.setdefault(top, {"types": {"int"} if top == "split_seed" else {"bool"}, "children": None})
        for dotted, types in ALSO_ACCEPTS.items():
            node = _SCHEMA
            *parents, last = dotted.split(".")
            for part in parents:
                node = node.get(part, {}).get("children") or {}
            if last in node:
                node[last]["types"] |= types
    return _SCHEMA


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "dict"
    return "none" if value is None else type(value).__name__


def _add_to_schema(node: dict, cfg: dict) -> None:
    for key, value in cfg.items():
        entry = node.setdefault(key, {"types": set(), "children": None})
        entry["types"].add(_type_name(value))
        if isinstance(value, dict):
            entry["children"] = entry["children"] or {}
            _add_to_schema(entry["children"], value)


_TYPE_WORDS = {"int": "an integer", "float": "a number", "str": "a string", "bool": "true or false",
               "list": "a list", "dict": "a mapping"}


def _accepts(types: set[str], value: Any) -> bool:
    got = _type_name(value)
    kinds = types - {"none"}
    if not kinds or got == "none" or got in kinds:
        return True
    if got == "int" and "float" in kinds:
        return True
    if got == "str" and "float" in kinds:
        return _as_float(value) is not None
    return False


def _as_float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def validate(user: dict, *, where: str, node: dict | None = None, prefix: str = "") -> None:
    """Refuse unknown keys and wrong types in ``user`` (one sentence each)."""
    import difflib

    node = schema() if node is None else node
    for key, value in user.items():
        dotted = f"{prefix}{key}"
        if key not in node:
            close = difflib.get_close_matches(str(key), list(node), n=1, cutoff=0.5)
            hint = f"; did you mean {prefix}{close[0]}?" if close else f"; valid keys here: {', '.join(sorted(node))}"
            raise ConfigError(f"{where}: unknown config key {dotted}{hint}")
        entry = node[key]
        if not _accepts(entry["types"], value):
            expected = " or ".join(_TYPE_WORDS.get(t, t) for t in sorted(entry["types"] - {"none"}))
            raise ConfigError(f"{where}: config key {dotted} must be {expected}, got {value!r}")
        if isinstance(value, dict) and entry["children"] is not None and not str(key).endswith("_kwargs"):
            validate(value, where=where, node=entry["children"], prefix=f"{dotted}.")


def _coerce(user: dict, node: dict) -> dict:
    """YAML reads ``1e-4`` as a string; give such values the float the schema expects."""
    out = {}
    for key, value in user.items():
        entry = node.get(key, {"types": set(), "children": None})
        kinds = entry["types"] - {"none"}
        if isinstance(value, str) and "float" in kinds and "str" not in kinds and _as_float(value) is not None:
            value = _as_float(value)
        elif isinstance(value, dict) and entry["children"] is not None and not str(key).endswith("_kwargs"):
            value = _coerce(value, entry["children"])
        out[key] = value
    return out
