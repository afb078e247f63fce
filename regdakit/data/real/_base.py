"""What every real loader shares: records parsed up front, one crop per load.

A loader's constructor validates the layout, parses and checks all
annotations into :class:`Record` objects (so a corrupt file fails at once, not
after an hour of training) and applies the split; :meth:`RealDataset.load`
then reads one image and crops it. Subclasses set the class attributes and
build ``self.records``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from regdakit.data.base import KeypointDataset, Sample, Transform
from regdakit.data.real._crop import bbox_box, crop, image_box, keypoint_box
from regdakit.data.real._io import read_image
from regdakit.keypoints import Skeleton

__all__ = ["Record", "RealDataset", "CROPS"]

#: How a loader frames a sample: the 1.5x square around the keypoints (or the
#: annotated box), or the whole (already cropped) image.
CROPS = ("keypoints", "image")


@dataclass
class Record:
    """One sample, before its image is read.

    Attributes:
        image: Path of the image file.
        keypoints: ``(K, 2)`` positions on the skeleton, in pixels of the file.
        visible: ``(K,)`` bool from the annotation.
        source: ``"file, record"`` for messages and ``meta``.
        box_points: ``(N, 2)`` positions that define the crop (default: ``keypoints``).
        bbox: COCO ``[x, y, w, h]`` box that defines the crop instead, if given.
        flip: Mirror the crop (handedness normalisation).
        meta: Extra entries for the item's ``meta``.
    """

    image: Path
    keypoints: np.ndarray
    visible: np.ndarray
    source: str
    box_points: np.ndarray | None = None
    bbox: np.ndarray | None = None
    flip: bool = False
    meta: dict[str, Any] = field(default_factory=dict)


class RealDataset(KeypointDataset):
    """Base of the real loaders.

    Args:
        root: Folder of the unpacked release.
        split: One of the class's ``SPLITS``.
        image_size: Side S of the square output images.
        heatmap_size: Also yield heatmaps of this size (e.g. 64).
        sigma: Heatmap Gaussian width in heatmap cells.
        transform: Applied to every loaded sample.
        labels: ``False`` yields images and meta only (unlabelled target data).
        crop: ``"keypoints"`` (1.5x square) or ``"image"`` (whole image, letterboxed).
    """

    NAME: ClassVar[str] = ""
    RELEASE: ClassVar[str] = ""
    SPLITS: ClassVar[tuple[str, ...]] = ("train", "test", "all")  # empty: any name
    SKELETON: ClassVar[Skeleton]
    DEFAULT_CROP: ClassVar[str] = "keypoints"

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        *,
        image_size: int = 256,
        heatmap_size: int | Sequence[int] | None = None,
        sigma: float = 2.0,
        transform: Transform | None = None,
        labels: bool = True,
        crop: str | None = None,
    ) -> None:
        super().__init__(
            self.SKELETON,
            domain=self.NAME,
            heatmap_size=heatmap_size,
            sigma=sigma,
            transform=transform,
            labels=labels,
        )
        if self.SPLITS and split not in self.SPLITS:
            raise ValueError(f"split must be one of {self.SPLITS} for {self.NAME}, got {split!r}")
        crop = self.DEFAULT_CROP if crop is None else crop
        if crop not in CROPS:
            raise ValueError(f"crop must be one of {CROPS}, got {crop!r}")
        if not isinstance(image_size, int) or isinstance(image_size, bool) or image_size <= 0:
            raise ValueError(f"image_size must be a positive int, got {image_size!r}")
        self.root = Path(root).expanduser()
        self.split = split
        self.image_size = image_size
        self.crop = crop
        self.records: list[Record] = []

    def __len__(self) -> int:
        return len(self.records)

    def load(self, index: int) -> Sample:
        """Read record ``index``, crop it to ``image_size`` and map visibility."""
        rec = self.records[index]
        image = read_image(rec.image, rec.source)
        height, width = image.shape[-2:]
        if self.crop == "image":
            box = image_box(width, height)
        elif rec.bbox is not None:
            box = bbox_box(rec.bbox, width, height)
        else:
            box = keypoint_box(rec.keypoints if rec.box_points is None else rec.box_points, width, height)
        meta = {"dataset": self.NAME, "file": str(rec.image), "source": rec.source, "flipped": rec.flip, **rec.meta}
        return crop(
            image, rec.keypoints, rec.visible, box, self.image_size, flip=rec.flip, skeleton=self.skeleton, meta=meta
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(root={str(self.root)!r}, split={self.split!r}, items={len(self)})"
