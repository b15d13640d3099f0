"""Deprecated location: checkpoint loading, export and ``--init`` moved to :mod:`echossl.engine`.

``echossl.checkpoints`` keeps working for code written against earlier versions;
import from :mod:`echossl.engine.checkpoints` and :mod:`echossl.engine.init_weights`.
"""

from echossl.engine.checkpoints import *  # noqa: F401,F403
from echossl.engine.checkpoints import EXPORT_CONFIG, EXPORT_WEIGHTS, best_checkpoint, load_checkpoint, load_export  # noqa: F401
from echossl.engine.init_weights import *  # noqa: F401,F403
from echossl.engine.init_weights import (EXTRA_CHANNEL_RULES, InitReport, load_init_weights,  # noqa: F401
                                         load_module_weights, read_init_state)
