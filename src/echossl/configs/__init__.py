"""The presets (``cpu.yaml``, ``paper.yaml`` and per-paper files), read by :mod:`echossl.config`."""

__all__: list[str] = []
