"""The ``echossl`` command line: one module per command group.

Errors that are the user's input (:class:`echossl.errors.EchosslError`) end as one
sentence on stderr and exit code 1; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import importlib
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


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"echossl {version('echossl')}")
        except PackageNotFoundError:
            typer.echo("echossl (not installed)")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", help="Print the version and exit.", is_eager=True,
                                       callback=_version)) -> None:
    """Label-efficient learning on echocardiography and ultrasound video."""


def _register() -> None:
    # Imported here so `echossl --help` stays fast and a broken optional group
    # cannot take the whole CLI down at import time.
    from echossl.cli import data, export, simulate, train

    app.add_typer(simulate.app, name="simulate", help="Write synthetic data in real formats.")
    app.add_typer(data.app, name="data", help="Check a data folder.")
    train.register(app)
    export.register(app)
    pretrain_app = typer.Typer(no_args_is_help=True, help="Self-supervised pre-training (jigsaw, temporal-masking, discover, video-speech).")
    reproduce_app = typer.Typer(no_args_is_help=True, help="Re-run a paper's comparison table on the same data.")
    app.add_typer(pretrain_app, name="pretrain")
    app.add_typer(reproduce_app, name="reproduce")
    groups = {"simulate": simulate.app, "train": train.train_app, "pretrain": pretrain_app,
              "reproduce": reproduce_app, "app": app}
    # one CLI module per paper; each adds its commands to the shared groups
    for name in PAPER_MODULES:
        try:
            module = importlib.import_module(f"echossl.cli.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"echossl.cli.{name}":
                raise
            continue
        module.register(**groups)


PAPER_MODULES = ("config", "demo", "unilvseg", "discover", "mrjet", "video_speech", "bench", "convert", "report")


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    if debug:
        argv.remove("--debug")
        os.environ["ECHOSSL_DEBUG"] = "1"
    _register()
    try:
        # without standalone mode, typer returns a command's typer.Exit code instead of exiting
        code = app(args=argv, standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
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
    except OSError as err:
        # a full disk or a read-only folder met by a writer that does not go through echossl.io
        from echossl.io import WRITE_REASONS, output_error

        if debug or err.errno not in WRITE_REASONS:
            raise
        print(f"error: {output_error(err, err.filename or 'an output file', intact=False)}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted.", file=sys.stderr)
        sys.exit(130)
    except SystemExit:
        raise
    except typer.Exit as err:
        sys.exit(err.exit_code)
    except typer.Abort:
        sys.exit(1)
    except Exception as err:
        # usage errors (unknown option, missing value) come from typer's bundled click
        if hasattr(err, "show") and hasattr(err, "exit_code"):
            err.show()
            sys.exit(2)
        raise
