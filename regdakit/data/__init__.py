"""Datasets and keypoint-aware transforms.

:mod:`regdakit.data.base` defines the item contract every dataset follows;
:mod:`regdakit.data.transforms` the batched keypoint-aware augmentation.
"""

from regdakit.data.base import KeypointDataset, Sample
from regdakit.data.transforms import Augment

__all__ = ["Augment", "KeypointDataset", "Sample"]
