"""A pickle loader that can rebuild numpy arrays and nothing else.

RHD ships its annotations only as a pickle, and ``pickle.load`` on a file from
the internet can run arbitrary code: a pickle names any importable callable
and the loader calls it. :class:`ArrayUnpickler` resolves only the few names
that a dict of numpy arrays needs and refuses everything else, so a tampered
file fails with an error instead of executing code. Plain containers (dict,
list, tuple, str, int, float) are pickle opcodes and need no names at all.
"""

from __future__ import annotations

import codecs
import pickle
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["ArrayUnpickler", "load_array_pickle"]


def _reconstruct() -> Any:
    try:  # numpy >= 2 moved the private module; pickles name either spelling
        from numpy._core.multiarray import _reconstruct as fn
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import _reconstruct as fn
    return fn


def _scalar() -> Any:
    try:
        from numpy._core.multiarray import scalar as fn
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import scalar as fn
    return fn


def _frombuffer() -> Any:
    try:  # protocol-5 pickles rebuild arrays from a bytes buffer with this
        from numpy._core.numeric import _frombuffer as fn
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.numeric import _frombuffer as fn
    return fn


#: (module, name) as written in the pickle -> the object it may resolve to.
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.multiarray", "scalar"): _scalar,
    ("numpy._core.multiarray", "scalar"): _scalar,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
    # Protocol-2 pickles written by Python 3 store bytes as _codecs.encode(text, "latin1").
    ("_codecs", "encode"): lambda: codecs.encode,
}


class ArrayUnpickler(pickle.Unpickler):
    """Unpickler restricted to numpy array reconstruction."""

    def find_class(self, module: str, name: str) -> Any:
        """Resolve only the allowed names; refuse all others."""
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name}: only numpy arrays and plain containers are allowed"
            )
        return _ALLOWED[(module, name)]()


def load_array_pickle(path: Path) -> Any:
    """Load a pickle of containers and numpy arrays with :class:`ArrayUnpickler`.

    ``encoding="latin1"`` is numpy's documented setting for pickles written by
    Python 2 (the RHD release is one); it does not affect Python 3 pickles.

    Raises:
        ValueError: The file is truncated, corrupt or names a forbidden callable.
    """
    try:
        with open(path, "rb") as f:
            return ArrayUnpickler(f, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as err:
        raise ValueError(f"cannot load the pickle {path} (truncated or tampered download?): {err}") from err
