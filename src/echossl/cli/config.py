"""``echossl config show``: the resolved settings of a run, before it runs."""

from __future__ import annotations

import typer

from echossl.cli.common import RunFlags, run_command

config_app = typer.Typer(no_args_is_help=True, help="Show the resolved settings (preset <- --config <- --set).")


@config_app.command("show")
@run_command("config")
def show_cmd(*, flags: RunFlags):
    """Print the resolved config as YAML (what a training command with the same flags would use)."""
    import yaml

    typer.echo(yaml.safe_dump(flags.config(), sort_keys=False).rstrip())


def register(*, app: typer.Typer, **_) -> None:
    app.add_typer(config_app, name="config")
