"""The engine every method plugs into.

- :mod:`~echossl.engine.trainer`: the one configured Lightning Trainer (:func:`fit`,
  :class:`TrainerOptions`): checkpoints, ``--resume``, logs, progress, seeding,
  ``--devices/--accelerator/--num-nodes/--strategy/--precision`` passed to Lightning.
- :mod:`~echossl.engine.checkpoints`: safe loading, export, ``best_checkpoint``.
- :mod:`~echossl.engine.init_weights`: ``--init`` from runs, exports and torchvision files.
- :mod:`~echossl.engine.tasks`: the one task table (checkpoint task -> module, evaluation, kind).
- :mod:`~echossl.engine.devices`: the inference device and DataLoader helpers.
- :mod:`~echossl.engine.cost`: parameters and FLOPs.

Names are loaded on first use, so ``from echossl.engine import load_checkpoint``
does not import Lightning.
"""

from echossl._lazy import lazy_exports

_NAMES = {
    'TrainerOptions': 'echossl.engine.trainer',
    'NonFiniteLossError': 'echossl.engine.trainer',
    'StopOnNonFiniteLoss': 'echossl.engine.trainer',
    'RestoreRandomState': 'echossl.engine.trainer',
    'AtomicCheckpointIO': 'echossl.engine.trainer',
    'KeepingCSVLogger': 'echossl.engine.trainer',
    'quiet_lightning': 'echossl.engine.trainer',
    'prepare_run': 'echossl.engine.trainer',
    'build_trainer': 'echossl.engine.trainer',
    'fit': 'echossl.engine.trainer',
    'finite': 'echossl.engine.trainer',
    'best_checkpoint': 'echossl.engine.checkpoints',
    'load_checkpoint': 'echossl.engine.checkpoints',
    'load_export': 'echossl.engine.checkpoints',
    'export_checkpoint': 'echossl.engine.checkpoints',
    'EXPORT_WEIGHTS': 'echossl.engine.checkpoints',
    'EXPORT_CONFIG': 'echossl.engine.checkpoints',
    'InitReport': 'echossl.engine.init_weights',
    'read_init_state': 'echossl.engine.init_weights',
    'load_init_weights': 'echossl.engine.init_weights',
    'load_module_weights': 'echossl.engine.init_weights',
    'EXTRA_CHANNEL_RULES': 'echossl.engine.init_weights',
    'TASKS': 'echossl.engine.tasks',
    'Task': 'echossl.engine.tasks',
    'get_task': 'echossl.engine.tasks',
    'tasks_of_kind': 'echossl.engine.tasks',
    'select_device': 'echossl.engine.devices',
    'training_device': 'echossl.engine.devices',
    'make_loader': 'echossl.engine.devices',
    'config_loader': 'echossl.engine.devices',
    'count_parameters': 'echossl.engine.cost',
    'count_flops': 'echossl.engine.cost',
    'flops_per_frame': 'echossl.engine.cost',
}

__getattr__, __dir__ = lazy_exports(__name__, _NAMES, globals())
__all__ = sorted(_NAMES)
