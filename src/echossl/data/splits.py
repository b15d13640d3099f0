"""The labeled subset of a training split, one rule for every workflow.

The papers' code fixes the labeled/unlabeled lists once (seed 0) and varies only
the training seed across runs (REFERENCE-NOTES.md, CSS). Here that seed is the
config's ``split_seed`` (default 0), read by the callers as
``cfg.get("split_seed", 0)``; ``cfg["seed"]`` drives training randomness only,
so runs with different ``--seed`` share one labeled subset.
"""

from __future__ import annotations

from typing import Callable, Sequence, TypeVar

import numpy as np

from echossl.errors import ConfigError

T = TypeVar("T")


def labeled_subset(items: Sequence[T], fraction: float, seed: int = 0, *,
                   key: Callable[[T], str] | None = None) -> tuple[list[T], list[T]]:
    """Split ``items`` into ``(labeled, unlabeled)``.

    Args:
        items: names (str) or objects; with objects pass ``key`` (e.g. ``lambda s: s.name``).
            Duplicates (same key) count once.
        fraction: share of items that is labeled, in ``[0, 1]``; ``round(fraction · n)``
            items are labeled, at least one whenever ``fraction > 0``.
        seed: the split seed (``cfg.get("split_seed", 0)``).
        key: sort key naming an item; the identity for strings.

    Returns:
        Two lists, each in key order. The result depends only on the set of keys,
        ``fraction`` and ``seed`` — not on the input order — so the same videos are
        labeled whichever way a caller lists them. (For names this reproduces the
        earlier ``echonet.labeled_split`` exactly.)

    Raises:
        ConfigError: ``fraction`` is not a number in ``[0, 1]``.
    """
    try:
        frac = float(fraction)
    except (TypeError, ValueError):
        raise ConfigError(f"labeled_fraction must be a number in [0, 1], got {fraction!r}") from None
    if not 0.0 <= frac <= 1.0:
        raise ConfigError(f"labeled_fraction must be in [0, 1], got {fraction}")
    key = key or str
    unique: dict[str, T] = {}
    for item in items:
        unique.setdefault(key(item), item)
    names = sorted(unique)
    n = int(round(frac * len(names)))
    if frac > 0 and names:
        n = max(1, n)
    chosen = set(np.random.default_rng(int(seed)).permutation(len(names))[:n].tolist())
    labeled = [unique[nm] for i, nm in enumerate(names) if i in chosen]
    unlabeled = [unique[nm] for i, nm in enumerate(names) if i not in chosen]
    return labeled, unlabeled
