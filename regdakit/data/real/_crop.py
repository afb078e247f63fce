"""The square crop every real loader applies, computed once per sample.

Boxes are ``(left, top, right, bottom)`` in pixel-edge units, as PIL's
``crop`` and :func:`regdakit.data.transforms.box_matrices` take them: pixel
``(row i, col j)`` is centred at ``(x=j, y=i)`` and spans ``j - 0.5 .. j + 0.5``,
so a keypoint at position ``x`` sits at edge coordinate ``x + 0.5``.

* :func:`keypoint_box`: the reference's ``scale_box``: the square of side
  ``1.5 * max(w, h)`` around the keypoints' bounding box, at most the image's
  shorter side, shifted to lie inside the image. Unlike the reference, the crop
  is exactly that square (the reference's hand loaders crop one pixel less).
* :func:`image_box`: the whole image, padded to a square (letterbox), for
  releases that are already cropped (H3D, SURREAL, Human3.6M) and for LSP.
"""

from __future__ import annotations

import numpy as np
import torch

from regdakit.data.base import Sample
from regdakit.data.transforms import box_matrices, hflip, inside, warp_images, warp_keypoints
from regdakit.keypoints import Skeleton

__all__ = ["keypoint_box", "bbox_box", "image_box", "crop"]

#: The reference crops 1.5x the keypoints' bounding box.
CROP_SCALE = 1.5


def _square(cx: float, cy: float, side: float, width: int, height: int) -> np.ndarray:
    # Never larger than the image, then slid (not shrunk) to lie inside it.
    side = min(max(side, 1.0), float(min(width, height)))
    left = min(max(cx - side / 2, 0.0), width - side)
    top = min(max(cy - side / 2, 0.0), height - side)
    return np.array([left, top, left + side, top + side])


def keypoint_box(keypoints: np.ndarray, width: int, height: int, scale: float = CROP_SCALE) -> np.ndarray:
    """The reference's square box around keypoints.

    Args:
        keypoints: ``(K, 2)`` positions ``(x, y)``; all of them count, visible or not.
        width: Image width W.
        height: Image height H.
        scale: Box side over the longer side of the keypoints' bounding box.

    Returns:
        ``(4,)`` box ``(left, top, right, bottom)`` in edge units, side
        ``min(scale * max(w, h), W, H)`` (at least 1 pixel).

    >>> keypoint_box(np.array([[10.0, 20.0], [30.0, 30.0]]), 100, 100).tolist()
    [5.5, 10.5, 35.5, 40.5]
    """
    lo, hi = keypoints.min(0), keypoints.max(0)
    cx, cy = (lo + hi) / 2 + 0.5  # position -> edge units
    return _square(cx, cy, scale * float((hi - lo).max()), width, height)


def bbox_box(bbox: np.ndarray, width: int, height: int, scale: float = CROP_SCALE) -> np.ndarray:
    """The square box around a COCO ``[x, y, w, h]`` box (already in edge units).

    >>> bbox_box(np.array([10.0, 20.0, 20.0, 10.0]), 100, 100).tolist()
    [5.0, 10.0, 35.0, 40.0]
    """
    x, y, w, h = (float(v) for v in bbox)
    return _square(x + w / 2, y + h / 2, scale * max(w, h), width, height)


def image_box(width: int, height: int) -> np.ndarray:
    """The whole image, padded symmetrically to a square (black borders).

    >>> image_box(200, 100).tolist()
    [0.0, -50.0, 200.0, 150.0]
    """
    side = float(max(width, height))
    left, top = (width - side) / 2, (height - side) / 2
    return np.array([left, top, left + side, top + side])


def crop(
    image: torch.Tensor,
    keypoints: np.ndarray,
    visible: np.ndarray,
    box: np.ndarray,
    size: int,
    *,
    flip: bool = False,
    skeleton: Skeleton | None = None,
    meta: dict | None = None,
) -> Sample:
    """Crop ``box`` out of ``image``, resize it to ``size x size`` and move the keypoints along.

    Args:
        image: ``(3, H, W)`` float.
        keypoints: ``(K, 2)`` positions in ``image``.
        visible: ``(K,)`` bool from the annotation.
        box: ``(4,)`` edge-unit box.
        size: Output side S.
        flip: Mirror the crop left-right afterwards (``x' = S - 1 - x``).
        skeleton: Needed with ``flip`` (its flip pairs are swapped; none for hands).
        meta: Carried into the sample.

    Returns:
        A :class:`Sample` with a ``(3, S, S)`` image; keypoints outside the crop are invisible.
    """
    matrices = box_matrices(torch.as_tensor(box, dtype=torch.float64)[None], size)  # (1, 2, 3)
    images = warp_images(image[None].double(), matrices, size).float().clamp(0, 1)  # (1, 3, S, S)
    kp = warp_keypoints(torch.as_tensor(keypoints, dtype=torch.float64)[None], matrices)  # (1, K, 2)
    vis = torch.as_tensor(np.asarray(visible, dtype=bool))[None] & inside(kp, size)  # (1, K)
    if flip:
        if skeleton is None:
            raise ValueError("flip=True needs the skeleton (for its left/right pairs)")
        images, kp, vis = hflip(images, kp, vis, skeleton)
    return Sample(image=images[0], keypoints=kp[0].float(), visible=vis[0], meta=dict(meta or {}))
