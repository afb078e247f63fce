"""Loaders for the real datasets of the paper, and for any COCO-format keypoint dataset.

Each loader reads a release as unpacked from its official archive (see
``docs/real_datasets.md``), validates the layout, applies the reference's
filters, crops and splits (with its defects fixed or behind a flag) and yields
the items of :mod:`regdakit.data.base`, so every method, metric and widget
works on real data unchanged.

>>> sorted(DATASETS)
['coco', 'freihand', 'h3d', 'human36m', 'lsp', 'rhd', 'surreal']
"""

from regdakit.data.real._base import RealDataset, Record
from regdakit.data.real.coco import COCOKeypoints, detect_flip_pairs, skeleton_from_coco
from regdakit.data.real.freihand import FreiHAND
from regdakit.data.real.h3d import H3D
from regdakit.data.real.human36m import Human36M
from regdakit.data.real.lsp import LSP
from regdakit.data.real.rhd import RHD
from regdakit.data.real.surreal import SURREAL, SURREAL24_TO_BODY16

__all__ = [
    "DATASETS",
    "COCOKeypoints",
    "FreiHAND",
    "H3D",
    "Human36M",
    "LSP",
    "RHD",
    "RealDataset",
    "Record",
    "SURREAL",
    "SURREAL24_TO_BODY16",
    "detect_flip_pairs",
    "skeleton_from_coco",
]

#: Name -> loader class, as the CLI's ``--dataset`` and the trainer's ``--source``/``--target`` spell them.
DATASETS: dict[str, type[RealDataset]] = {
    "rhd": RHD,
    "h3d": H3D,
    "freihand": FreiHAND,
    "surreal": SURREAL,
    "lsp": LSP,
    "human36m": Human36M,
    "coco": COCOKeypoints,
}
