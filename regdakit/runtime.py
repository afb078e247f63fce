"""Run-time settings shared by notebooks, tests and scripts.

>>> isinstance(fast_mode(), bool)
True
"""

from __future__ import annotations

import os

__all__ = ["fast_mode", "pick"]

_TRUE = {"1", "true", "yes", "on"}


def fast_mode() -> bool:
    """Whether to run small: ``REGDAKIT_FAST`` or ``CI`` is set to a true value.

    CI sets ``CI=true`` and ``make test`` sets ``REGDAKIT_FAST=1``, so
    notebooks stay small under test and full-size for a person.
    ``REGDAKIT_FAST=0`` forces full size even under CI.
    """
    explicit = os.environ.get("REGDAKIT_FAST")
    if explicit is not None and explicit.strip() != "":
        return explicit.strip().lower() in _TRUE
    return os.environ.get("CI", "").strip().lower() in _TRUE


def pick(full: object, fast: object) -> object:
    """Choose a size by mode: ``fast`` in fast mode, else ``full``.

    >>> steps = pick(2000, 200)
    """
    return fast if fast_mode() else full
