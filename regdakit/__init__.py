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
"""

from regdakit import density, disparity, heatmaps, keypoints, losses, metrics, runtime
from regdakit._validation import value_checks
from regdakit.keypoints import BODY16, HAND21, Skeleton

__version__ = "0.1.0"

_LAZY = ("viz", "toy")  # import matplotlib only when a figure is wanted


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        return importlib.import_module(f"regdakit.{name}")
    raise AttributeError(f"module 'regdakit' has no attribute {name!r}")


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
