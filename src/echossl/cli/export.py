"""``echossl export``: a checkpoint as safetensors plus a JSON config, for sharing."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def export_cmd(checkpoint: Annotated[Path, typer.Argument(metavar="CHECKPOINT", help="Checkpoint (.ckpt), run folder or export folder.")],
               out: Annotated[Path, typer.Option("--out", help="Folder for model.safetensors and config.json.")]):
    """Write OUT/model.safetensors (the weights, no pickle) and OUT/config.json (task, settings, sha256)."""
    from rich.console import Console

    from echossl.checkpoints import export_checkpoint

    config = export_checkpoint(checkpoint, out)
    Console().print(f"wrote {config['tensors']} tensors ({config['parameters']:,} values, task {config['task']}) "
                    f"to {out}; use it with --checkpoint {out} or --init {out}/model.safetensors")


def register(app: typer.Typer) -> None:
    app.command("export")(export_cmd)
