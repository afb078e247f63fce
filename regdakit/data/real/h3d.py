"""Hand-3D-Studio (H3D): the real hand target of RHD -> H3D.

Layout (``H3D_crop.tar`` unpacked; ``root`` may contain ``H3D_crop`` or be it)::

    H3D_crop/annotation.json
    H3D_crop/part1/ ... part5/       images, already cropped 1.5x around the hand

``annotation.json`` is a list of ``{"name": path relative to H3D_crop,
"keypoint2d": (21, 2), "keypoint3d": (21, 3), "intrinsic_matrix": (3, 3),
"without_object": 0 or 1}``. The images are used whole (``crop="image"``, as
the reference; non-square ones are letterboxed instead of failing), nothing is
mirrored, and every keypoint counts as visible unless it leaves the frame.

Split as the reference: the samples of the task, shuffled with ``seed``
(42 reproduces the reference's order), test = the first ``min(20%, 3200)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from regdakit.data.real._base import RealDataset, Record
from regdakit.data.real._io import check_array, read_json, require
from regdakit.data.real._split import holdout
from regdakit.keypoints import HAND21

__all__ = ["H3D", "TASKS"]

#: task -> which ``without_object`` values it keeps.
TASKS = {"noobject": (1,), "object": (0,), "all": (0, 1)}


class H3D(RealDataset):
    """Hand-3D-Studio on :data:`~regdakit.keypoints.HAND21` (its order is RHD's after reordering).

    Args:
        root: Folder containing ``H3D_crop`` (or that folder).
        split: ``"train"``, ``"test"`` or ``"all"``.
        task: ``"noobject"`` (default, hands without objects), ``"object"`` or ``"all"``.
        seed: Seed of the split's local RNG (42 gives the reference's split).
        **kwargs: See :class:`~regdakit.data.real._base.RealDataset`.
    """

    NAME = "h3d"
    RELEASE = "H3D_crop.tar (Hand-3D-Studio, the crops distributed with the RegDA code)"
    SKELETON = HAND21
    DEFAULT_CROP = "image"

    def __init__(
        self, root: str | Path, split: str = "train", *, task: str = "noobject", seed: int = 42, **kwargs: Any
    ) -> None:
        super().__init__(root, split, **kwargs)
        if task not in TASKS:
            raise ValueError(f"task must be one of {tuple(TASKS)}, got {task!r}")
        self.task = task
        base = self.root / "H3D_crop"
        base = base if base.is_dir() or not (self.root / "annotation.json").is_file() else self.root
        path = require(base / "annotation.json", self.root, self.RELEASE)
        entries = read_json(path)
        if not isinstance(entries, list):
            raise ValueError(f"{path}: expected a list of annotations, got {type(entries).__name__}")
        records = [r for i, e in enumerate(entries) if (r := self._record(path, base, i, e)) is not None]
        self.records = [records[i] for i in holdout(len(records), split, seed)]

    def _record(self, path: Path, base: Path, i: int, entry: Any) -> Record | None:
        where = f"{path}, record {i}"
        if not isinstance(entry, dict) or not {"name", "keypoint2d", "without_object"} <= set(entry):
            raise ValueError(f"{where}: expected keys 'name', 'keypoint2d', 'without_object', got {entry!r:.80}")
        if int(entry["without_object"]) not in TASKS[self.task]:
            return None
        keypoints = check_array(entry["keypoint2d"], (21, 2), f"{where} ({entry['name']}), 'keypoint2d'")
        return Record(
            image=base / entry["name"],
            keypoints=keypoints,
            visible=np.ones(21, dtype=bool),
            source=f"{path} record {i}",
            meta={"name": str(entry["name"])},
        )
