"""The built-in simulator: one module per synthetic modality, writing real formats.
"""

from __future__ import annotations

_LAZY = {
    # echossl.simulate.echonet
    "simulate_echonet": "echossl.simulate.echonet",
    # echossl.simulate.camus
    "simulate_camus": "echossl.simulate.camus",
    # echossl.simulate.mrjet
    "simulate_mrjet": "echossl.simulate.mrjet",
    # echossl.simulate.sweep
    "simulate_sweep": "echossl.simulate.sweep",
}
__all__ = [*sorted(_LAZY)]

def __getattr__(name: str):
    # imported on first use, so that importing the package stays fast
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
