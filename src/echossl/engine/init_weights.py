"""``--init``: initial weights from an echossl run, an export, or a plain ``state_dict`` file.

One loader for every command (:func:`load_init_weights`): names are mapped by
prefix rules, then by a unique suffix; tensors whose shapes differ are skipped
and listed; a first layer with more input channels than the file's (the
4-channel EF teacher) gets the file's RGB filters and follows the extra-channel
rule for the rest. The result is one rich table per load and ``RUN/init.json``.
"""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import torch

from echossl.engine.checkpoints import EXPORT_CONFIG, EXPORT_WEIGHTS, _read_safetensors, best_checkpoint, load_export
from echossl.errors import CheckpointError, EchosslError

EXTRA_CHANNEL_RULES = ("keep", "mean", "zero")
# wrappers around a whole network's keys: DDP (module.), torch.compile (_orig_mod.)
_WRAPPERS = ("module.", "_orig_mod.")


@dataclass
class InitReport:
    """What :func:`load_init_weights` did, tensor by tensor (names are the model's unless said).

    ``loaded`` includes ``adapted`` (first-layer filters whose input channels differ:
    the RGB filters were copied, the other channels follow the extra-channel rule).
    ``skipped_shape`` holds ``(model key, file key, model shape, file shape)``;
    ``missing`` the model's tensors the file has nothing for; ``unused`` the
    file's tensors that went nowhere; ``rules`` the name mappings used,
    ``(file prefix stripped, model prefix added, tensors)``.
    """

    path: str
    model_tensors: int
    loaded: list = field(default_factory=list)
    adapted: list = field(default_factory=list)
    skipped_shape: list = field(default_factory=list)
    missing: list = field(default_factory=list)
    unused: list = field(default_factory=list)
    rules: list = field(default_factory=list)
    extra_channels: str = "keep"

    def as_dict(self) -> dict:
        return {"path": self.path, "model_tensors": self.model_tensors, "loaded": len(self.loaded),
                "adapted": list(self.adapted), "skipped_shape": [
                    {"model": m, "file": f, "model_shape": list(ms), "file_shape": list(fs)}
                    for m, f, ms, fs in self.skipped_shape],
                "missing": list(self.missing), "unused": list(self.unused), "extra_channels": self.extra_channels,
                "rules": [{"strip": a, "add": b, "tensors": n} for a, b, n in self.rules]}

    def table(self):
        """A rich table: the four counts, with the first names of each."""
        from rich.table import Table

        def names(items, n=3):
            items = [i if isinstance(i, str) else i[0] for i in items]
            return ", ".join(items[:n]) + (f", ... (+{len(items) - n})" if len(items) > n else "")

        rules = "; ".join(f"same names ({n})" if not a and not b else f"file '{a}' -> model '{b}' ({n})"
                          for a, b, n in self.rules)
        title = f"--init {self.path}: {len(self.loaded)} of the model's {self.model_tensors} tensors loaded"
        table = Table(title=title,
                      caption=f"names mapped: {rules or 'none'}", title_justify="left", caption_justify="left")
        table.add_column("tensors")
        table.add_column("count", justify="right")
        table.add_column("which")
        extra = (f" ({len(self.adapted)} with the file's RGB filters; other input channels: "
                 f"{self.extra_channels})") if self.adapted else ""
        table.add_row("loaded", str(len(self.loaded)), names(self.loaded) + extra)
        table.add_row("skipped for shape", str(len(self.skipped_shape)),
                      names([f"{m} {tuple(ms)} <- {tuple(fs)}" for m, _, ms, fs in self.skipped_shape]))
        table.add_row("missing from the file", str(len(self.missing)), names(self.missing))
        table.add_row("in the file but unused", str(len(self.unused)), names(self.unused))
        return table


def read_init_state(path: str | Path) -> dict[str, torch.Tensor]:
    """The named tensors of an ``--init`` source, read without unpickling code.

    Accepts a run folder (its best checkpoint), a ``.ckpt``, an export folder or
    its ``model.safetensors`` (sha256-checked when ``config.json`` is beside it),
    any other ``.safetensors`` file, and a ``torch.save``\ d ``state_dict()``
    (``.pt``/``.pth``), bare or under ``state_dict``/``model``/``module``/``net``.

    Raises:
        CheckpointError: missing, unreadable, unsafe, or holding no named tensors.
    """
    path = Path(path)
    if path.is_dir() and (path / EXPORT_WEIGHTS).is_file():  # an export folder
        path = path / EXPORT_WEIGHTS
    elif path.is_dir():
        try:
            path = best_checkpoint(path)
        except EchosslError:
            raise CheckpointError(f"--init {path} is a folder with neither checkpoints/ nor {EXPORT_WEIGHTS}") from None
    if not path.is_file():
        raise CheckpointError(f"initial weights {path} do not exist")
    if path.suffix == ".safetensors":
        beside = path.with_name(EXPORT_CONFIG)
        state = load_export(path)["state_dict"] if beside.is_file() else _read_safetensors(path)
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:
            raise CheckpointError(f"initial weights {path} hold pickled objects that could run code, "
                                  "so they were not loaded") from None
        except Exception as err:  # truncated zip, random bytes, ...
            raise CheckpointError(f"initial weights {path} cannot be read ({err.__class__.__name__})") from None
        state = _unwrap_state(state)
    if not isinstance(state, dict) or not any(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"initial weights {path} hold no state dict of named tensors")
    return {str(k): v for k, v in state.items() if isinstance(v, torch.Tensor)}


def _unwrap_state(obj):
    """The state dict inside a saved object: itself, or under a usual container key."""
    if not isinstance(obj, dict):
        return obj
    if any(isinstance(v, torch.Tensor) for v in obj.values()):
        return obj
    for key in ("state_dict", "model", "model_state_dict", "module", "net", "weights"):
        inner = obj.get(key)
        if isinstance(inner, dict) and any(isinstance(v, torch.Tensor) for v in inner.values()):
            return inner
    return obj


def _unwrap_key(key: str) -> str:
    for wrapper in _WRAPPERS:
        if key.startswith(wrapper):
            key = key[len(wrapper):]
        key = key.replace("." + wrapper, ".")
    return key


def _compatible(model_t: torch.Tensor, file_t: torch.Tensor) -> str | None:
    """``exact``, ``channels`` (a first-layer filter bank with RGB on one side and more or fewer
    input channels on the other: dim 1 differs, 3 on one side), or ``None``."""
    if model_t.shape == file_t.shape:
        return "exact"
    if (model_t.dim() >= 4 and model_t.dim() == file_t.dim() and model_t.is_floating_point()
            and model_t.shape[0] == file_t.shape[0] and model_t.shape[2:] == file_t.shape[2:]
            and 3 in (model_t.shape[1], file_t.shape[1])):
        return "channels"
    return None


def _dot_prefixes(key: str):
    """``(prefix, rest)`` for every split of ``key`` at a dot, ``("", key)`` first."""
    parts = key.split(".")
    for i in range(len(parts)):
        yield ("".join(p + "." for p in parts[:i]), ".".join(parts[i:]))


def _map_names(own: dict, state: dict):
    """Pair model keys with file keys by name: prefix rules first, then unique suffixes.

    A rule strips a prefix from file keys and adds one to them (``backbone.`` ->
    ``encoder.``, ``net.`` -> ``""``, ``""`` -> ``body.encoder.``). Rules are chosen
    greedily, each the one that pairs the most shape-compatible tensors among the
    keys still unpaired (a second rule must pair at least 2, so that a lone
    same-shaped tensor is not taken for a mapping). Then each remaining model key
    is paired with the one remaining file key that it ends with (or that ends
    with it), at least two name parts long, when exactly one such pair exists
    both ways. Returns ``(pairs {model: file}, rules)``.
    """
    pairs: dict[str, str] = {}
    rules: list[tuple[str, str, int]] = []
    by_suffix: dict[str, list[str]] = {}
    for mk in own:
        for add, rest in _dot_prefixes(mk):
            by_suffix.setdefault(rest, []).append(add)
    while True:
        votes: dict[tuple[str, str], int] = {}
        used = set(pairs.values())
        for fk, ft in state.items():
            if fk in used:
                continue
            for strip, rest in _dot_prefixes(fk):
                for add in by_suffix.get(rest, ()):
                    mk = add + rest
                    if mk not in pairs and _compatible(own[mk], ft):
                        votes[(strip, add)] = votes.get((strip, add), 0) + 1
        if not votes:
            break
        # most tensors; on a tie the shortest rule (the identity before anything else)
        (strip, add), count = max(votes.items(), key=lambda kv: (kv[1], -len(kv[0][0]) - len(kv[0][1])))
        if count < (1 if not rules else 2):
            break
        n = 0
        for fk in state:
            if fk in used or not fk.startswith(strip):
                continue
            mk = add + fk[len(strip):]
            if mk in own and mk not in pairs:  # a name match: loaded, or skipped for its shape
                pairs[mk] = fk
                used.add(fk)
                n += 1
        rules.append((strip, add, n))
    used = set(pairs.values())
    left_model = [k for k in own if k not in pairs]
    left_file = [k for k in state if k not in used]

    def ends(long: str, short: str) -> bool:
        return short.count(".") >= 1 and long.endswith("." + short)

    cand = {mk: [fk for fk in left_file if (ends(mk, fk) or ends(fk, mk)) and _compatible(own[mk], state[fk])]
            for mk in left_model}
    back: dict[str, int] = {}
    for fks in cand.values():
        for fk in fks:
            back[fk] = back.get(fk, 0) + 1
    n = 0
    for mk, fks in cand.items():
        if len(fks) == 1 and back[fks[0]] == 1:
            pairs[mk] = fks[0]
            n += 1
    if n:
        rules.append(("(unique suffix)", "", n))
    return pairs, rules


def load_init_weights(model: torch.nn.Module, path: str | Path, *, allow_partial: bool = False,
                      prefix: str | None = None, extra_channels: str = "keep", quiet: bool = False,
                      record: str | Path | None = None) -> InitReport:
    """Initialise ``model`` from ``path`` (``--init``) by tensor name, and print what happened.

    ``path`` is anything :func:`read_init_state` reads: an echossl run or
    checkpoint, an ``echossl export``, or a plain torchvision ``state_dict()``
    (``r2plus1d_18`` for the EF networks, ``resnet50``/``deeplabv3_resnet50`` for
    the segmenter, ``resnet18``/``mobilenet_v3_large`` for UniLVSeg's super-image
    encoder). File keys are mapped onto the model's by :func:`_map_names`
    (``net.``, ``model.``, ``backbone.``, ``module.`` and the like are stripped
    or added as the names require); tensors whose names match but whose shapes
    do not are skipped, except a first-layer filter bank whose input channels
    differ with RGB on one side:

    - file RGB -> a model with more input channels (the 4-channel EF teacher:
      RGB + LV mask): channels 0-2 get the file's RGB filters, and the others
      follow ``extra_channels``: ``keep`` (default) leaves the model's own random
      initialisation, as the CSS authors' code initialises the mask channel at
      random; ``mean`` sets them to the mean of the file's RGB filters (the rule
      :func:`echossl.models.video.widen_input` applies to a random network);
      ``zero`` zeroes them, so that the network starts as exactly the pretrained
      RGB one and the mask's effect is learnt from nothing.
    - a file with more channels -> an RGB model (a teacher's weights into a
      video-only network): its first three (RGB) input channels are taken.

    Args:
        model: the network to fill (e.g. ``module.net``).
        allow_partial: accept a file that fills fewer than half of the model's
            tensors (state-dict entries: parameters and buffers); ``--init-partial``.
        prefix: a hint: when some file keys start with it, only those are used,
            with it stripped (a video-speech checkpoint's ``net.video.`` for the
            video backbone).
        extra_channels: ``keep``, ``mean`` or ``zero``, see above.
        quiet: do not print the table (it is printed on the first process only).
        record: a JSON file to write :meth:`InitReport.as_dict` to (``RUN/init.json``).

    Returns:
        The :class:`InitReport`.

    Raises:
        CheckpointError: unreadable or unsafe file, no tensor that fits, or fewer
            than half of the model's tensors without ``allow_partial``.
    """
    if extra_channels not in EXTRA_CHANNEL_RULES:
        raise EchosslError(f"the extra-channel rule must be {', '.join(EXTRA_CHANNEL_RULES)}, not {extra_channels!r}")
    state = {_unwrap_key(k): v for k, v in read_init_state(path).items()}
    if prefix and any(k.startswith(prefix) for k in state):
        state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    own = model.state_dict()
    pairs, rules = _map_names(own, state)
    report = InitReport(path=str(path), model_tensors=len(own), rules=rules, extra_channels=extra_channels)
    new = {}
    for mk, fk in pairs.items():
        mt, ft = own[mk], state[fk]
        kind = _compatible(mt, ft)
        if kind == "exact":
            new[mk] = ft
        elif kind == "channels":
            c = min(mt.shape[1], ft.shape[1])
            t = mt.detach().clone()
            t[:, :c] = ft[:, :c].to(t.dtype)
            if mt.shape[1] > c and extra_channels == "mean":
                t[:, c:] = ft.to(t.dtype).mean(dim=1, keepdim=True)
            elif mt.shape[1] > c and extra_channels == "zero":
                t[:, c:] = 0
            new[mk] = t
            report.adapted.append(mk)
        else:
            report.skipped_shape.append((mk, fk, tuple(mt.shape), tuple(ft.shape)))
    report.loaded = [k for k in own if k in new]
    report.missing = [k for k in own if k not in pairs]
    used = set(pairs.values())
    report.unused = [k for k in state if k not in used]
    if not new:
        raise CheckpointError(f"no tensor in {path} fits this model (its {len(own)} tensors are named like "
                              f"{next(iter(own), '?')!r}, the file's like {next(iter(state), '?')!r})")
    if 2 * len(new) < len(own) and not allow_partial:
        raise CheckpointError(f"--init {path} fills only {len(new)} of the model's {len(own)} tensors "
                              f"({len(report.skipped_shape)} skipped for shape, {len(report.missing)} missing from "
                              "the file), so it was refused; pass --init-partial to start from it anyway")
    model.load_state_dict(new, strict=False)
    if not quiet and _first_process():
        from rich.console import Console

        Console(stderr=True).print(report.table())
    if record is not None:
        from echossl.io import atomic_write_text

        atomic_write_text(record, json.dumps(report.as_dict(), indent=1) + "\n")
    return report


def _first_process() -> bool:
    import os

    return int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0")) or 0) == 0


def load_module_weights(module: torch.nn.Module, path: str | Path, prefix: str = "") -> InitReport:
    """Kept for callers of the old name: :func:`load_init_weights` with partial files allowed, quietly."""
    return load_init_weights(module, path, prefix=prefix or None, allow_partial=True, quiet=True)
