"""FreiHAND: real green-screen hands, the source of FreiHAND -> RHD.

Layout (``FreiHAND_pub_v2.zip`` unpacked into ``root``)::

    training_K.json      list of N (3, 3) camera matrices   (N = 32,560)
    training_xyz.json    list of N (21, 3) keypoints in camera space (metres)
    training/rgb/00000000.jpg ...   4 N images (224 x 224)

Image ``i + N * v`` shows pose ``i`` with background version ``v`` in the
order ``gs`` (green screen), ``hom``, ``sample``, ``auto``. The 2D keypoints
are the projections ``K @ xyz``; the keypoint order is already
:data:`~regdakit.keypoints.HAND21`'s. Only the training part has labels.

Deviation from the reference: it shuffles the items, so with ``task="all"``
the same pose appears in train (one background) and test (another) and the
source test score is optimistic. Here whole poses are split (test keeps the
reference's size, 3200 items); ``leaky_split=True`` restores the reference's.
FreiHAND shows right hands; the reference mirrors every sample, so by default
(``hand="left"``) all samples are left hands, like RHD's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from regdakit.data.real._base import RealDataset, Record
from regdakit.data.real._io import check_array, read_json, require
from regdakit.data.real._split import holdout
from regdakit.keypoints import HAND21

__all__ = ["FreiHAND", "VERSIONS"]

#: Background versions in the order of the image numbering.
VERSIONS = ("gs", "hom", "sample", "auto")
TEST_ITEMS = 3200  # the reference's test-set cap


class FreiHAND(RealDataset):
    """FreiHAND training set on :data:`~regdakit.keypoints.HAND21`.

    Args:
        root: Folder with ``training_K.json``, ``training_xyz.json`` and ``training/rgb``.
        split: ``"train"``, ``"test"`` or ``"all"``.
        task: One background version of :data:`VERSIONS` or ``"all"`` (default, all four).
        seed: Seed of the split (42 as the reference).
        leaky_split: Split items as the reference does (poses shared across train and test).
        hand: ``"left"`` (mirror all, as the reference), ``"right"`` or ``None`` (both keep the images).
        **kwargs: See :class:`~regdakit.data.real._base.RealDataset`.
    """

    NAME = "freihand"
    RELEASE = "FreiHAND_pub_v2.zip (FreiHAND, University of Freiburg)"
    SKELETON = HAND21

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        *,
        task: str = "all",
        seed: int = 42,
        leaky_split: bool = False,
        hand: str | None = "left",
        **kwargs: Any,
    ) -> None:
        super().__init__(root, split, **kwargs)
        if task not in (*VERSIONS, "all"):
            raise ValueError(f"task must be one of {(*VERSIONS, 'all')}, got {task!r}")
        if hand not in ("left", "right", None):
            raise ValueError(f"hand must be 'left', 'right' or None, got {hand!r}")
        self.task = task
        k_path = require(self.root / "training_K.json", self.root, self.RELEASE)
        xyz_path = require(self.root / "training_xyz.json", self.root, self.RELEASE)
        rgb = require(self.root / "training" / "rgb", self.root, self.RELEASE, kind="folder")
        uv = self._project(read_json(k_path), read_json(xyz_path), k_path, xyz_path)  # (N, 21, 2)
        versions = [VERSIONS.index(task)] if task != "all" else list(range(len(VERSIONS)))
        n = len(uv)
        if leaky_split:
            items = [(i, v) for v in versions for i in range(n)]
            chosen = [items[j] for j in holdout(len(items), split, seed)]
        else:
            poses = holdout(n, split, seed, cap=TEST_ITEMS // len(versions))
            chosen = [(i, v) for i in poses for v in versions]
        self.records = [
            Record(
                image=rgb / f"{i + n * v:08d}.jpg",
                keypoints=uv[i],
                visible=np.ones(21, dtype=bool),
                source=f"{xyz_path} record {i}",
                flip=hand == "left",  # every FreiHAND hand is a right hand
                meta={"pose": i, "version": VERSIONS[v]},
            )
            for i, v in chosen
        ]

    @staticmethod
    def _project(cameras: Any, points: Any, k_path: Path, xyz_path: Path) -> np.ndarray:
        if not isinstance(cameras, list) or not isinstance(points, list):
            raise ValueError(f"{k_path} and {xyz_path} must each hold a list, one entry per pose")
        if len(cameras) != len(points):
            raise ValueError(f"{k_path} has {len(cameras)} cameras but {xyz_path} has {len(points)} poses")
        uv = np.empty((len(points), 21, 2))
        for i, (k, xyz) in enumerate(zip(cameras, points, strict=True)):
            k = check_array(k, (3, 3), f"{k_path}, record {i}")
            xyz = check_array(xyz, (21, 3), f"{xyz_path}, record {i}")
            if not (xyz[:, 2] > 0).all():
                raise ValueError(f"{xyz_path}, record {i}: keypoints must lie in front of the camera (z > 0)")
            proj = xyz @ k.T  # (21, 3) homogeneous pixel positions
            uv[i] = proj[:, :2] / proj[:, 2:]
        return uv
