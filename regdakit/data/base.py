"""The dataset contract shared by the synthetic domains and the real loaders.

Every dataset in regdakit yields items as dictionaries:

================  ==================  =============================================
key               shape / type        meaning
================  ==================  =============================================
``image``         ``(3, H, W)`` float RGB in [0, 1] (normalisation is the model's job)
``keypoints``     ``(K, 2)`` float    ``(x, y)`` in pixels of ``image``
``visible``       ``(K,)`` bool       labelled, unoccluded and inside the image
``heatmap``       ``(K, h, w)`` float ``H(y_k)`` targets (only with ``heatmap_size``)
``weight``        ``(K,)`` float      1 where the heatmap is defined, else 0
``meta``          dict                ``domain``, ``index``, and dataset-specific
================  ==================  =============================================

A dataset built with ``labels=False`` (unlabelled target training data)
yields only ``image`` and ``meta``: target labels cannot reach a training step
by construction. The default ``torch.utils.data.default_collate`` batches
items into ``(B, ...)`` tensors.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch.utils.data import Dataset

from regdakit._validation import as_size, check_positive
from regdakit.heatmaps import encode
from regdakit.keypoints import Skeleton

__all__ = ["Sample", "KeypointDataset", "Transform"]


@dataclass(frozen=True)
class Sample:
    """One image with its keypoints, before heatmap encoding.

    Attributes:
        image: ``(3, H, W)`` float in [0, 1].
        keypoints: ``(K, 2)`` float ``(x, y)`` in pixels; any value where invisible.
        visible: ``(K,)`` bool.
        meta: Free-form information carried into the item's ``meta``.
    """

    image: torch.Tensor
    keypoints: torch.Tensor
    visible: torch.Tensor
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.image.ndim != 3 or self.image.shape[0] != 3:
            raise ValueError(f"image must have shape (3, H, W), got {tuple(self.image.shape)}")
        if self.keypoints.ndim != 2 or self.keypoints.shape[1] != 2:
            raise ValueError(f"keypoints must have shape (K, 2), got {tuple(self.keypoints.shape)}")
        if tuple(self.visible.shape) != (self.keypoints.shape[0],):
            raise ValueError(
                f"visible must have shape ({self.keypoints.shape[0]},) to match keypoints, "
                f"got {tuple(self.visible.shape)}"
            )
        if self.visible.dtype != torch.bool:
            object.__setattr__(self, "visible", self.visible > 0.5)

    def with_(self, **changes: Any) -> Sample:
        """A copy with some fields replaced (``dataclasses.replace``)."""
        return replace(self, **changes)


#: A keypoint-aware transform: ``(sample, generator) -> sample``.
Transform = Callable[[Sample, "torch.Generator | None"], Sample]


class KeypointDataset(Dataset):
    """Base class: subclasses implement ``__len__`` and :meth:`load`.

    Args:
        skeleton: The keypoint layout of the items.
        domain: A name carried in ``meta`` (e.g. ``"rendered"``, ``"H3D"``).
        heatmap_size: ``h`` or ``(h, w)``: also yield ``heatmap`` and ``weight``.
        sigma: Heatmap Gaussian width in heatmap cells.
        transform: Applied to every loaded :class:`Sample`.
        labels: ``False`` yields only ``image`` and ``meta``.
    """

    def __init__(
        self,
        skeleton: Skeleton,
        *,
        domain: str = "",
        heatmap_size: int | Sequence[int] | None = None,
        sigma: float = 2.0,
        transform: Transform | None = None,
        labels: bool = True,
    ) -> None:
        self.skeleton = skeleton
        self.domain = domain
        self.heatmap_size = None if heatmap_size is None else as_size("heatmap_size", heatmap_size)
        self.sigma = check_positive("sigma", sigma)
        self.transform = transform
        self.labels = labels

    def __len__(self) -> int:
        raise NotImplementedError

    def load(self, index: int) -> Sample:
        """The untransformed sample at ``index`` (subclasses implement this)."""
        raise NotImplementedError

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} is out of range for a dataset of {len(self)} items")
        index = index % len(self)
        sample = self.load(index)
        if sample.keypoints.shape[0] != self.skeleton.num_keypoints:
            raise ValueError(
                f"{type(self).__name__}.load({index}) returned {sample.keypoints.shape[0]} keypoints, "
                f"skeleton {self.skeleton.name} has {self.skeleton.num_keypoints}"
            )
        if self.transform is not None:
            sample = self.transform(sample, None)
        meta = {"domain": self.domain, "index": index, **sample.meta}
        if not self.labels:
            return {"image": sample.image, "meta": meta}
        item: dict[str, Any] = {
            "image": sample.image,
            "keypoints": sample.keypoints,
            "visible": sample.visible,
            "meta": meta,
        }
        if self.heatmap_size is not None:
            item["heatmap"], item["weight"] = self.encode(sample)
        return item

    def encode(self, sample: Sample) -> tuple[torch.Tensor, torch.Tensor]:
        """Heatmap targets ``(K, h, w)`` and weights ``(K,)`` for a sample."""
        assert self.heatmap_size is not None
        height, width = sample.image.shape[-2:]
        h, w = self.heatmap_size
        if height / h != width / w:
            raise ValueError(f"image {height}x{width} and heatmap {h}x{w} must share one stride")
        maps, weights = encode(
            sample.keypoints[None].float(), sample.visible[None], (h, w), stride=height / h, sigma=self.sigma
        )
        return maps[0], weights[0]
