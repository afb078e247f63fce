"""Any dataset in the COCO keypoints JSON format (what most annotation tools export).

Layout: one annotation file and a folder of images named by its ``file_name``
entries. By default, for ``split="train"``::

    annotations/train.json (or annotations/person_keypoints_train.json)
    images/train/<file_name>  (or train/<file_name>, or images/<file_name>)

``ann_file`` and ``image_dir`` override both, for an export with a layout of its own, e.g.
``annotations.json`` beside ``images/`` (``python -m regdakit data check ROOT --dataset coco
--ann_file annotations.json --image_dir images``); relative paths are looked up under ``root``
first, then in the working directory. The file holds ``images``
(``id``, ``file_name``), ``annotations`` (``image_id``, ``category_id``,
``keypoints`` as ``[x1, y1, v1, x2, ...]``, ``bbox`` ``[x, y, w, h]``,
``iscrowd``) and ``categories`` (``keypoints`` names, ``skeleton`` edges
numbered from 1). One sample per non-crowd annotation with at least one
labelled keypoint, cropped to the 1.5x square around its ``bbox`` (or around
its labelled keypoints when it has no box).

Visibility: COCO's ``v`` is 0 (not labelled), 1 (labelled, occluded) or 2
(labelled, visible). A keypoint counts as visible when ``v > 0``: an occluded
keypoint has a labelled position, which is what a heatmap target needs, and
COCO's own evaluation scores ``v > 0`` too. ``occluded_visible=False`` keeps
only ``v == 2``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from regdakit.data.real._base import RealDataset, Record
from regdakit.data.real._io import check_array, read_json, require
from regdakit.keypoints import Skeleton

__all__ = ["COCOKeypoints", "skeleton_from_coco", "detect_flip_pairs"]

_SIDES = (("left_", "right_"), ("l_", "r_"), ("left", "right"))


def detect_flip_pairs(names: Sequence[str]) -> tuple[tuple[int, int], ...]:
    """Left/right pairs found by name: ``left_x``/``right_x``, ``l_x``/``r_x``, or the suffixes ``x_left``/``x_right``.

    >>> detect_flip_pairs(["nose", "left_eye", "right_eye", "l_hip", "r_hip"])
    ((1, 2), (3, 4))
    """
    lookup = {n.lower(): i for i, n in enumerate(names)}
    pairs, used = [], set()
    for i, name in enumerate(names):
        low = name.lower()
        for left, right in _SIDES:
            candidates = []
            if low.startswith(left):
                candidates.append(right + low[len(left) :])
            if low.endswith("_" + left.rstrip("_")):
                candidates.append(low[: -len(left.rstrip("_"))] + right.rstrip("_"))
            for other in candidates:
                j = lookup.get(other)
                if j is not None and j != i and i not in used and j not in used:
                    pairs.append((i, j))
                    used.update((i, j))
    return tuple(pairs)


def skeleton_from_coco(
    category: Mapping[str, Any],
    *,
    groups: Mapping[str, Sequence[int]] | None = None,
    flip_pairs: Sequence[tuple[int, int]] | None = None,
    name: str | None = None,
) -> Skeleton:
    """Build a :class:`~regdakit.keypoints.Skeleton` from a COCO ``categories`` entry.

    Args:
        category: Dict with ``keypoints`` (names) and optionally ``skeleton``
            (edges numbered from 1, as COCO) and ``name``.
        groups: PCK groups, name -> keypoint indices; ``"all"`` defaults to every keypoint.
        flip_pairs: Left/right pairs; by default detected from the names (:func:`detect_flip_pairs`).
        name: Skeleton name (default: the category's name).

    Returns:
        The skeleton, edges numbered from 0.

    >>> sk = skeleton_from_coco({"name": "hand", "keypoints": ["wrist", "tip"], "skeleton": [[1, 2]]})
    >>> sk.edges, sk.num_keypoints
    (((0, 1),), 2)
    """
    names = category.get("keypoints")
    if not isinstance(names, Sequence) or isinstance(names, str) or not names:
        raise ValueError(f"category {category.get('name')!r} has no 'keypoints' list of names")
    edges = []
    for edge in category.get("skeleton") or []:
        if len(edge) != 2 or not all(isinstance(v, int) and 1 <= v <= len(names) for v in edge):
            raise ValueError(
                f"category {category.get('name')!r}: skeleton edge {edge} must be two keypoint numbers "
                f"in 1..{len(names)} (COCO numbers keypoints from 1)"
            )
        edges.append((edge[0] - 1, edge[1] - 1))
    return Skeleton(
        name=name or str(category.get("name", "coco")),
        names=tuple(str(n) for n in names),
        groups={k: tuple(v) for k, v in (groups or {}).items()},
        edges=tuple(edges),
        flip_pairs=tuple(detect_flip_pairs(names) if flip_pairs is None else flip_pairs),
    )


def _under(root: Path, path: str | Path) -> Path:
    """``path`` as given when absolute; a relative one under ``root`` when it exists there, else as given."""
    path = Path(path).expanduser()
    return root / path if not path.is_absolute() and (root / path).exists() else path


class COCOKeypoints(RealDataset):
    """A COCO-format keypoint dataset, one sample per annotated instance.

    Args:
        root: Dataset folder.
        split: Any split name; selects the default annotation file and image folder.
        ann_file: The annotation JSON (default: see the module docstring); relative: under ``root`` if it
            is there, else from the working directory.
        image_dir: Folder the ``file_name`` entries are relative to (relative paths likewise).
        skeleton: The keypoint layout; default built from the file's category.
        category_id: Which category to load when the file has several with keypoints.
        occluded_visible: Count ``v == 1`` (labelled but occluded) as visible.
        **kwargs: See :class:`~regdakit.data.real._base.RealDataset`.
    """

    NAME = "coco"
    RELEASE = "a COCO keypoints JSON export (annotation tools, or COCO's person_keypoints_*.json)"
    SPLITS = ()  # any name

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        *,
        ann_file: str | Path | None = None,
        image_dir: str | Path | None = None,
        skeleton: Skeleton | None = None,
        category_id: int | None = None,
        occluded_visible: bool = True,
        **kwargs: Any,
    ) -> None:
        root = Path(root).expanduser()
        if not re.fullmatch(r"[\w.-]+", split):
            raise ValueError(f"split must be a plain name such as 'train', got {split!r}")
        path = _under(root, ann_file) if ann_file is not None else self._default_ann(root, split)
        require(path, root, self.RELEASE)
        content = read_json(path)
        lists = isinstance(content, dict) and all(isinstance(content.get(k), list) for k in ("images", "annotations"))
        if not lists:
            raise ValueError(f"{path}: expected a dict with 'images' and 'annotations' lists (COCO keypoints format)")
        category = self._category(content, category_id, path)
        self.SKELETON = skeleton or skeleton_from_coco(category)
        super().__init__(root, split, **kwargs)
        folder = _under(root, image_dir) if image_dir is not None else self._default_images(root, split)
        require(folder, root, self.RELEASE, kind="folder")
        self.ann_file = path
        self.records = self._parse(content, int(category["id"]), path, folder, occluded_visible)

    @staticmethod
    def _default_ann(root: Path, split: str) -> Path:
        candidates = [root / "annotations" / f"{split}.json", root / "annotations" / f"person_keypoints_{split}.json"]
        return next((p for p in candidates if p.is_file()), candidates[0])

    @staticmethod
    def _default_images(root: Path, split: str) -> Path:
        candidates = [root / "images" / split, root / split, root / "images"]
        return next((p for p in candidates if p.is_dir()), candidates[0])

    def _category(self, content: dict, category_id: int | None, path: Path) -> dict:
        categories = [c for c in content.get("categories") or [] if isinstance(c, dict) and c.get("keypoints")]
        if category_id is not None:
            categories = [c for c in categories if c.get("id") == category_id]
        if len(categories) != 1:
            found = [(c.get("id"), c.get("name")) for c in content.get("categories") or [] if isinstance(c, dict)]
            raise ValueError(
                f"{path}: need exactly one category with keypoints"
                + (f" and id {category_id}" if category_id is not None else " (pass category_id)")
                + f", found categories {found}"
            )
        return categories[0]

    def _parse(self, content: dict, category: int, path: Path, folder: Path, occluded_visible: bool) -> list[Record]:
        k = self.SKELETON.num_keypoints
        files = {}
        for img in content["images"]:
            if not isinstance(img, dict) or "id" not in img or "file_name" not in img:
                raise ValueError(f"{path}: every entry of 'images' needs 'id' and 'file_name', got {img!r:.80}")
            files[img["id"]] = img["file_name"]
        records = []
        for i, ann in enumerate(content["annotations"]):
            where = f"{path}, annotation {i} (id {ann.get('id') if isinstance(ann, dict) else None})"
            if not isinstance(ann, dict) or ann.get("category_id") != category or ann.get("iscrowd", 0):
                continue
            if "keypoints" not in ann or ann.get("image_id") not in files:
                raise ValueError(f"{where}: needs 'keypoints' and an 'image_id' listed in 'images'")
            raw = check_array(ann["keypoints"], (3 * k,), f"{where}, 'keypoints' (3 x {k} numbers)").reshape(k, 3)
            flags = raw[:, 2]
            if not (flags > 0).any():
                continue  # nothing labelled: no target to learn or score
            bbox = check_array(ann["bbox"], (4,), f"{where}, 'bbox'") if ann.get("bbox") else None
            if bbox is not None and not (bbox[2:] > 0).all():
                raise ValueError(f"{where}: 'bbox' {bbox.tolist()} must have positive width and height")
            records.append(
                Record(
                    image=folder / files[ann["image_id"]],
                    keypoints=raw[:, :2].copy(),
                    visible=flags > (0 if occluded_visible else 1),
                    source=f"{path} annotation {i}",
                    box_points=raw[flags > 0, :2],
                    bbox=bbox,
                    meta={"name": str(files[ann["image_id"]])},
                )
            )
        return records
