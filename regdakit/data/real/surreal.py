"""SURREAL (processed crops): the synthetic body source of both body benchmarks.

Layout (the processed release ``train0.tgz``, ``train1.tgz``, ``train2.tgz``,
``val.tgz`` and ``test.tgz`` distributed with the RegDA code, unpacked into ``root``)::

    {train,val,test}/run0.json, run1.json, run2.json
    {train,val,test}/run0/<name> ...   images, already cropped around the body

Each JSON is a list of ``{"name", "keypoint2d": (24, 2), "keypoint3d": (24, 3),
"intrinsic_matrix": (3, 3)}`` over the 24 SMPL joints. The images are used
whole (``crop="image"``), every joint counts as visible unless out of frame.

Split as the reference: the items of ``run0..2`` of the split's folder,
shuffled with ``seed`` (42 as the reference), ``train`` drops and ``test``
keeps the first ``min(20%, 3200)``; ``val`` is the whole ``val`` folder. (The
reference's downloader skips ``train2.tgz`` once ``train/run1`` exists: check
that ``train/run2.json`` is there.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from regdakit.data.real._base import RealDataset, Record
from regdakit.data.real._io import check_array, listing, read_json, require
from regdakit.data.real._split import holdout
from regdakit.keypoints import BODY16

__all__ = ["SURREAL", "SMPL24_NAMES", "SURREAL24_TO_BODY16", "SURREAL24_TO_BODY16_SHOULDERS"]

#: SMPL joint names (SMPL's own left/right).
SMPL24_NAMES = (
    "pelvis", "l_hip", "r_hip", "spine1", "l_knee", "r_knee", "spine2", "l_ankle", "r_ankle", "spine3",
    "l_foot", "r_foot", "neck", "l_collar", "r_collar", "head", "l_shoulder", "r_shoulder",
    "l_elbow", "r_elbow", "l_wrist", "r_wrist", "l_hand", "r_hand",
)  # fmt: skip

#: The reference's ``joints_index``: for each BODY16 slot, the SMPL joint that fills it.
#: SMPL's *left* joints fill BODY16's *right* slots. SURREAL users report that
#: SURREAL's 2D joints are left/right-swapped relative to SMPL's names
#: (gulvarol/surreal issue 10), which makes this the anatomically right choice;
#: the swap is reported, not confirmed here. The shoulders are SMPL's collar
#: joints (13, 14), closer to the neck than an annotated shoulder, and the head
#: top is SMPL's head joint (15), the centre of the head.
SURREAL24_TO_BODY16 = (7, 4, 1, 2, 5, 8, 0, 9, 12, 15, 20, 18, 13, 14, 19, 21)

#: The same with SMPL's shoulder joints (16, 17) for BODY16's shoulder slots.
SURREAL24_TO_BODY16_SHOULDERS = (7, 4, 1, 2, 5, 8, 0, 9, 12, 15, 20, 18, 16, 17, 19, 21)

SHOULDERS = {"collar": SURREAL24_TO_BODY16, "shoulder": SURREAL24_TO_BODY16_SHOULDERS}
RUNS = ("run0", "run1", "run2")


class SURREAL(RealDataset):
    """Processed SURREAL crops on :data:`~regdakit.keypoints.BODY16`.

    Args:
        root: Folder with ``train/``, ``val/`` and ``test/``.
        split: ``"train"``, ``"test"`` or ``"val"``.
        seed: Seed of the split (42 as the reference).
        shoulders: ``"collar"`` (SMPL collar joints, as the reference) or ``"shoulder"``.
        **kwargs: See :class:`~regdakit.data.real._base.RealDataset`.
    """

    NAME = "surreal"
    RELEASE = "SURREAL processed crops (train0/1/2.tgz, val.tgz, test.tgz distributed with the RegDA code)"
    SKELETON = BODY16
    SPLITS = ("train", "test", "val")
    DEFAULT_CROP = "image"

    def __init__(
        self, root: str | Path, split: str = "train", *, seed: int = 42, shoulders: str = "collar", **kwargs: Any
    ) -> None:
        super().__init__(root, split, **kwargs)
        if shoulders not in SHOULDERS:
            raise ValueError(f"shoulders must be one of {tuple(SHOULDERS)}, got {shoulders!r}")
        self.joints_index = SHOULDERS[shoulders]
        folder = require(self.root / split, self.root, self.RELEASE, kind="folder")
        runs = [run for run in RUNS if (folder / f"{run}.json").is_file()]
        if not runs:
            raise FileNotFoundError(
                f"expected {folder}/run0.json (and run1, run2) ({listing(folder)}). Unpack the official release "
                f"{self.RELEASE} so that this path exists (see docs/real_datasets.md)"
            )
        records = [rec for run in runs for rec in self._parse(folder, run)]
        if split != "val":
            records = [records[i] for i in holdout(len(records), split, seed)]
        self.records = records

    def _parse(self, folder: Path, run: str) -> list[Record]:
        path = folder / f"{run}.json"
        entries = read_json(path)
        if not isinstance(entries, list):
            raise ValueError(f"{path}: expected a list of annotations, got {type(entries).__name__}")
        records = []
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict) or not {"name", "keypoint2d"} <= set(entry):
                raise ValueError(f"{path}, record {i}: expected keys 'name' and 'keypoint2d', got {entry!r:.80}")
            smpl = check_array(entry["keypoint2d"], (24, 2), f"{path}, record {i} ({entry['name']}), 'keypoint2d'")
            records.append(
                Record(
                    image=folder / run / entry["name"],
                    keypoints=smpl[list(self.joints_index)],
                    visible=np.ones(16, dtype=bool),
                    source=f"{path} record {i}",
                    meta={"name": str(entry["name"])},
                )
            )
        return records
