"""regdakit: Regressive Domain Adaptation (RegDA) for keypoint detection.

Teaches, implements and benchmarks RegDA (Jiang et al., CVPR 2021). Import it
as ``import regdakit as rk``; the math lives in small modules of plain tensor
functions:

* :mod:`regdakit.keypoints` — skeletons (``HAND21``, ``BODY16``)
* :mod:`regdakit.heatmaps` — ``encode`` / ``decode`` Gaussian heatmaps
* :mod:`regdakit.losses` — heatmap MSE and KL losses
* :mod:`regdakit.disparity` — ground-truth / ground-false pseudo-labels, ``L_T``, ``L_F``
* :mod:`regdakit.metrics` — PCK and where wrong predictions land
* :mod:`regdakit.density` — maps of where they land, and how much of it ``P_F`` covers
* :mod:`regdakit.viz` — figures
* :mod:`regdakit.toy` — the exact mean-versus-variance experiment

The heavier modules load on first use, so ``rk.models``, ``rk.train``,
``rk.pretrained``, ``rk.widgets`` ... work after ``import regdakit as rk``
without importing matplotlib or the trainer up front:

* :mod:`regdakit.models`, :mod:`regdakit.pretrained` — networks and the shipped source-only models
* :mod:`regdakit.inference` — ``predict``: a detector's heatmaps over a set of images, the one prediction loop
* :mod:`regdakit.data`, :mod:`regdakit.methods`, :mod:`regdakit.train` (the trainer's API; its parts in
  :mod:`regdakit.training`), :mod:`regdakit.distributed` — training
* :mod:`regdakit.selection`, :mod:`regdakit.tuning`, :mod:`regdakit.stats`, :mod:`regdakit.comparison`,
  :mod:`regdakit.runs`, :mod:`regdakit.diagrams` — analysis
* :mod:`regdakit.widgets`, :mod:`regdakit.exercises` — notebook explorers and exercises
* :mod:`regdakit.resources` — the files that ship with the package (models, results)
"""

from regdakit import density, disparity, heatmaps, keypoints, losses, metrics, runtime
from regdakit._validation import value_checks
from regdakit.keypoints import BODY16, HAND21, Skeleton

__version__ = "0.1.0"

# Public submodules imported on first attribute access (matplotlib, the trainer and ipywidgets
# only when wanted). tests/test_packaging.py fails when a public module is in neither this
# tuple nor the eager imports above.
_LAZY = (
    "comparison",
    "data",
    "diagrams",
    "distributed",
    "exercises",
    "inference",
    "methods",
    "models",
    "pretrained",
    "resources",
    "runs",
    "selection",
    "stats",
    "toy",
    "train",
    "training",
    "tuning",
    "viz",
    "widgets",
)


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        module = importlib.import_module(f"regdakit.{name}")
        globals()[name] = module  # the import binds it too; later lookups skip this hook
        return module
    raise AttributeError(f"module 'regdakit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "BODY16",
    "HAND21",
    "Skeleton",
    "density",
    "disparity",
    "heatmaps",
    "keypoints",
    "losses",
    "metrics",
    "runtime",
    "value_checks",
    "__version__",
]
