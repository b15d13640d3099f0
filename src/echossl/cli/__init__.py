"""The ``echossl`` command line: one module per command group.

Errors that are the user's input (:class:`echossl.errors.EchosslError`) end as one
sentence on stderr and exit code 1; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import os
import sys

import typer

from echossl.errors import EchosslError

app = typer.Typer(
    name="echossl",
    help="Label-efficient learning on echocardiography and ultrasound video.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _register() -> None:
    # Imported here so `echossl --help` stays fast and a broken optional group
    # cannot take the whole CLI down at import time.
    from echossl.cli import data, simulate

    app.add_typer(simulate.app, name="simulate", help="Write synthetic data in real formats.")
    app.add_typer(data.app, name="data", help="Check a data folder.")
    try:
        from echossl.cli import train  # noqa: F401  (registers train/pretrain/...)

        train.register(app)
    except ImportError as err:  # pragma: no cover - only while a group is being built
        if os.environ.get("ECHOSSL_DEBUG"):
            raise
        _missing.append(str(err))


_missing: list[str] = []


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    if debug:
        argv.remove("--debug")
        os.environ["ECHOSSL_DEBUG"] = "1"
    _register()
    try:
        app(args=argv, standalone_mode=False)
    except EchosslError as err:
        if debug:
            raise
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
    except (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError) as err:
        if debug:
            raise
        print(f"error: {err.strerror or err}: {err.filename}.", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted.", file=sys.stderr)
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as err:  # click usage errors arrive here in non-standalone mode
        import click

        if isinstance(err, click.exceptions.Exit):
            sys.exit(err.exit_code)
        if isinstance(err, click.ClickException):
            err.show()
            sys.exit(2)
        if isinstance(err, click.exceptions.Abort):
            sys.exit(1)
        raise
