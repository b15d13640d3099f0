"""``python -m echossl`` is the ``echossl`` command."""

from echossl.cli import main

main()
