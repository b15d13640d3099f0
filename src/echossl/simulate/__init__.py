"""The built-in simulator: one module per synthetic modality, writing real formats.
"""

from __future__ import annotations

from echossl._lazy import lazy_exports

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

# imported on first use, so that importing the package stays fast
__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
