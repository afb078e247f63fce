"""Rendered Hand Pose (RHD): the synthetic hand source of RHD -> H3D.

Layout (the official ``RHD_v1-1.zip`` unpacked; ``root`` may be the folder
that contains ``RHD_published_v2`` or that folder itself)::

    RHD_published_v2/training/anno_training.pickle
    RHD_published_v2/training/color/00000.png ...       (320 x 320)
    RHD_published_v2/evaluation/anno_evaluation.pickle
    RHD_published_v2/evaluation/color/00000.png ...

Each pickle is a dict ``sample id -> {"uv_vis": (42, 3), "xyz": (42, 3), "K": (3, 3)}``;
rows 0-20 are the left hand, 21-41 the right hand, each as wrist then every
finger from tip to MCP, and ``uv_vis[:, 2]`` is 1 where the keypoint is visible.

As the reference: every hand is a candidate sample (so up to two per image),
kept if its 1.5x square is wider than 64 px, more than 16 of its 21 keypoints
are visible and the other hand's bounding box covers less than 30% of the
square. Handedness: the reference mirrors right hands, which makes every
sample look like a *left* hand (its comment says the opposite); ``hand="left"``
(default) does the same, ``"right"`` mirrors the left hands instead, ``None``
keeps the images as rendered.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from regdakit.data.real._base import RealDataset, Record
from regdakit.data.real._crop import keypoint_box
from regdakit.data.real._io import check_array, require
from regdakit.data.real._pickle import load_array_pickle
from regdakit.keypoints import HAND21

__all__ = ["RHD", "RHD_TO_HAND21", "FOLDERS"]

#: split -> RHD folder(s).
FOLDERS = {"train": ("training",), "test": ("evaluation",), "all": ("training", "evaluation")}

#: RHD lists each finger tip -> MCP; HAND21 wants MCP -> tip: reverse each group of 4.
RHD_TO_HAND21 = (0,) + tuple(4 * f + j for f in range(5) for j in (4, 3, 2, 1))

IMAGE_SIDE = 320  # all RHD renders are 320 x 320
MIN_SIDE = 64.0  # the reference's "box side > 64 px"
MIN_VISIBLE = 16  # "more than 16 visible keypoints"
MAX_OVERLAP = 0.3  # "the other hand covers less than 30% of the box"
HANDS = ("left", "right")


def _overlap(other: np.ndarray, box: np.ndarray) -> float:
    """Fraction of ``box`` covered by the bounding box of the ``other`` keypoints."""
    lo, hi = other.min(0) + 0.5, other.max(0) + 0.5  # positions -> edge units, as the box
    w = max(0.0, min(hi[0], box[2]) - max(lo[0], box[0]))
    h = max(0.0, min(hi[1], box[3]) - max(lo[1], box[1]))
    return w * h / float((box[2] - box[0]) * (box[3] - box[1]))


class RHD(RealDataset):
    """Rendered Hand Pose, one sample per kept hand, on :data:`~regdakit.keypoints.HAND21`.

    Args:
        root: Folder containing ``RHD_published_v2`` (or that folder).
        split: ``"train"`` (training), ``"test"`` (evaluation) or ``"all"``.
        hand: Handedness every sample is mirrored to: ``"left"`` (as the reference), ``"right"`` or ``None``.
        **kwargs: ``image_size``, ``heatmap_size``, ``sigma``, ``transform``, ``labels``, ``crop``
            of :class:`~regdakit.data.real._base.RealDataset`.
    """

    NAME = "rhd"
    RELEASE = "RHD_v1-1.zip (Rendered Hand Pose Dataset, University of Freiburg)"
    SKELETON = HAND21

    def __init__(self, root: str | Path, split: str = "train", *, hand: str | None = "left", **kwargs: Any) -> None:
        super().__init__(root, split, **kwargs)
        if hand not in (*HANDS, None):
            raise ValueError(f"hand must be 'left', 'right' or None, got {hand!r}")
        self.hand = hand
        base = self.root / "RHD_published_v2"
        base = base if base.is_dir() or not (self.root / "training").is_dir() else self.root
        for folder in FOLDERS[split]:
            pickle_path = require(base / folder / f"anno_{folder}.pickle", self.root, self.RELEASE)
            require(base / folder / "color", self.root, self.RELEASE, kind="folder")
            self.records += self._parse(pickle_path, base / folder / "color")

    def _parse(self, path: Path, color: Path) -> list[Record]:
        annotations = load_array_pickle(path)
        if not isinstance(annotations, dict):
            raise ValueError(f"{path}: expected a dict sample id -> annotation, got {type(annotations).__name__}")
        records = []
        for sample_id in sorted(annotations):
            entry = annotations[sample_id]
            if not isinstance(entry, dict) or "uv_vis" not in entry:
                raise ValueError(f"{path}, record {sample_id!r}: expected a dict with 'uv_vis', got {entry!r:.80}")
            uv_vis = check_array(entry["uv_vis"], (42, 3), f"{path}, record {sample_id!r}, 'uv_vis'")
            for h, side in enumerate(HANDS):
                rec = self._hand(uv_vis, h, side, color / f"{int(sample_id):05d}.png", f"{path} record {sample_id}")
                if rec is not None:
                    records.append(rec)
        return records

    def _hand(self, uv_vis: np.ndarray, h: int, side: str, image: Path, source: str) -> Record | None:
        rows = uv_vis[21 * h : 21 * h + 21]
        other = uv_vis[21 * (1 - h) : 21 * (1 - h) + 21, :2]
        box = keypoint_box(rows[:, :2], IMAGE_SIDE, IMAGE_SIDE)
        visible = rows[:, 2] > 0.5
        if box[2] - box[0] <= MIN_SIDE or visible.sum() <= MIN_VISIBLE or _overlap(other, box) >= MAX_OVERLAP:
            return None
        order = list(RHD_TO_HAND21)
        return Record(
            image=image,
            keypoints=rows[order, :2].copy(),
            visible=visible[order],
            source=f"{source} ({side} hand)",
            flip=self.hand is not None and side != self.hand,
            meta={"hand": side},
        )
