"""Datasets and keypoint-aware transforms.

:mod:`regdakit.data.base` defines the item contract every dataset follows;
:mod:`regdakit.data.transforms` the batched keypoint-aware augmentation.
:mod:`~regdakit.data.synthetic` (the synthetic domains), :mod:`~regdakit.data.real` (the
real-dataset loaders) and :mod:`~regdakit.data.streams` load on first attribute access,
as the subpackages of :mod:`regdakit` do: ``rk.data.synthetic`` needs no import of its own.
"""

from regdakit.data.base import KeypointDataset, Sample
from regdakit.data.transforms import Augment

__all__ = ["Augment", "KeypointDataset", "Sample"]

# Imported on first attribute access (the renderer and the loaders only when wanted).
_LAZY = ("real", "streams", "synthetic")


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        module = importlib.import_module(f"regdakit.data.{name}")
        globals()[name] = module  # the import binds it too; later lookups skip this hook
        return module
    raise AttributeError(f"module 'regdakit.data' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
