"""Loading checkpoints safely, and telling the user which task a checkpoint is for.

Checkpoints are loaded with ``torch.load(weights_only=True)``: a checkpoint that
would need to unpickle arbitrary objects (and so could run code) is refused.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch

from echossl.errors import CheckpointError


def load_checkpoint(path: str | Path, expect_task: str | tuple[str, ...] | None = None) -> dict:
    """Load a Lightning checkpoint written by echossl.

    Returns:
        The checkpoint dict with ``state_dict`` and ``hyper_parameters``; the
        task is ``ckpt["hyper_parameters"]["task"]``.

    Raises:
        CheckpointError: the file is missing, not a checkpoint, unsafe to load,
            or made for another task.
    """
    path = Path(path)
    if path.is_dir():
        from echossl.engine import best_checkpoint

        path = best_checkpoint(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(
            f"checkpoint {path} holds pickled objects that could run code, so it was not loaded"
        ) from None
    except Exception as err:  # truncated zip, random bytes, ...
        raise CheckpointError(f"checkpoint {path} cannot be read ({err.__class__.__name__})") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise CheckpointError(f"{path} is not an echossl checkpoint (it has no state_dict)")
    task = (ckpt.get("hyper_parameters") or {}).get("task")
    if task is None:
        raise CheckpointError(f"{path} is not an echossl checkpoint (its hyper-parameters name no task)")
    if expect_task is not None:
        expected = (expect_task,) if isinstance(expect_task, str) else tuple(expect_task)
        if task not in expected:
            raise CheckpointError(f"checkpoint {path} is for task {task!r}, not {' or '.join(expected)}")
    ckpt["path"] = str(path)
    return ckpt


def load_module_weights(module: torch.nn.Module, path: str | Path, prefix: str = "") -> None:
    """Initialise ``module`` from a checkpoint (``--init``): Lightning checkpoint or plain state dict.

    Only tensors whose names and shapes match are copied; the rest keep their
    initialisation. ``prefix`` selects a sub-module in a Lightning state dict.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"initial weights {path} do not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:
            raise CheckpointError(f"initial weights {path} hold pickled objects that could run code") from None
        state = state.get("state_dict", state) if isinstance(state, dict) else state
    if prefix:
        state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    own = module.state_dict()
    matched = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not matched:
        raise CheckpointError(f"no weights in {path} match this model")
    module.load_state_dict(matched, strict=False)
