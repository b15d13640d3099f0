"""``echossl export``: a checkpoint as safetensors plus a JSON config and a model card, for sharing."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer


def export_cmd(checkpoint: Annotated[Path, typer.Argument(metavar="CHECKPOINT", help="Checkpoint (.ckpt), run folder or export folder.")],
               out: Annotated[Path, typer.Option("--out", help="Folder for model.safetensors, config.json, README.md (model card), config.yaml and metrics.json.")],
               data: Annotated[Optional[Path], typer.Option("--data", help="The training data folder, described in the model card (videos per split, simulated or not).")] = None):
    """Write OUT/model.safetensors (the weights, no pickle), OUT/config.json (task, settings, sha256) and a model card.

    The card (OUT/README.md) gives the task, preset, training data, metrics with CIs, inference
    settings, intended use and limits; the run's config.yaml and metrics.json are copied beside it.
    """
    from rich.console import Console

    from echossl.engine import export_checkpoint

    if data is not None and not data.is_dir():
        from echossl.errors import EchosslError

        raise EchosslError(f"data folder {data} does not exist or is not a folder")
    config = export_checkpoint(checkpoint, out, training_data=data)
    Console().print(f"wrote {config['tensors']} tensors ({config['parameters']:,} values, task {config['task']}) "
                    f"and a model card (README.md) to {out}; use it with --checkpoint {out} "
                    f"or --init {out}/model.safetensors")


def register(app: typer.Typer) -> None:
    app.command("export")(export_cmd)
