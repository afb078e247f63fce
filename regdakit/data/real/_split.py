"""Splits drawn from a local RNG, never the global one.

The reference calls ``random.seed(42)`` and then ``random.shuffle`` in its
constructors, which also resets the training script's global RNG.
``random.Random(seed).shuffle`` gives the *same* permutation without that
side effect, so with ``seed=42`` these splits equal the reference's (given the
same sample order).
"""

from __future__ import annotations

import random

__all__ = ["holdout", "subsample"]


def holdout(n: int, split: str, seed: int, fraction: float = 0.2, cap: int = 3200) -> list[int]:
    """Indices of a shuffled hold-out split: test is the first ``min(int(fraction * n), cap)``.

    Args:
        n: Number of samples.
        split: ``"train"``, ``"test"`` or ``"all"`` (all indices, unshuffled).
        seed: Seed of the local RNG.
        fraction: Test fraction.
        cap: Largest test set.

    Returns:
        Sample indices.

    >>> sorted(holdout(10, "test", 42) + holdout(10, "train", 42)) == list(range(10))
    True
    """
    if split == "all":
        return list(range(n))
    order = list(range(n))
    random.Random(seed).shuffle(order)
    n_test = min(int(fraction * n), cap)
    return order[:n_test] if split == "test" else order[n_test:]


def subsample(n: int, k: int, seed: int) -> list[int]:
    """``min(k, n)`` distinct indices, in the order drawn (sampling *without* replacement).

    >>> len(set(subsample(100, 30, 0)))
    30
    """
    return random.Random(seed).sample(range(n), min(k, n))
