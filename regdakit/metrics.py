"""PCK and where wrong predictions land.

Shape legend: ``B`` batch, ``K`` keypoints; positions are ``(B, K, 2)`` as
``(x, y)`` in any one unit (heatmap cells by default), visibility ``(B, K)``.

PCK@alpha counts a keypoint as correct when its predicted position lies
within ``alpha x side`` of the truth. The reference evaluates PCK@0.05 on a
64 x 64 heatmap, i.e. a threshold of ``0.05 x 64 = 3.2`` cells (= 12.8 pixels
of a 256 x 256 crop); that is the default here. Unlike the reference, PCK is
computed over all valid (sample, keypoint) pairs of the whole set, from float
positions, with invisible keypoints ignored everywhere.

:func:`error_landing` measures the paper's *sparse spatial density*: wrong
predictions on the target domain mostly land on *other* keypoints.

>>> gt = torch.tensor([[[10.0, 10.0], [30.0, 10.0]]])
>>> pred = torch.tensor([[[11.0, 10.0], [10.5, 10.0]]])  # keypoint 1 lands on keypoint 0
>>> pck(pred, gt, torch.ones(1, 2)).all
0.5
>>> error_landing(pred, gt, torch.ones(1, 2), radius=3.2).landing.tolist()
[[-1, 0]]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from regdakit._validation import as_size, as_visibility, check_positive, check_same_leading, check_tensor
from regdakit.keypoints import Skeleton

__all__ = ["PCKResult", "LandingResult", "pck", "pck_threshold", "error_landing", "DEFAULT_THRESHOLD"]

#: PCK@0.05 of a 64 x 64 heatmap, in heatmap cells (the reference's setting).
DEFAULT_THRESHOLD = 3.2

#: Codes in :attr:`LandingResult.landing` besides the keypoint indices.
NOT_EVALUATED = -2
CORRECT = -1


def pck_threshold(side: float, alpha: float = 0.05) -> float:
    """Distance threshold of PCK@alpha for a square map or image of ``side``.

    >>> pck_threshold(64)
    3.2
    """
    return round(check_positive("alpha", alpha) * check_positive("side", side), 10)


@dataclass(frozen=True)
class PCKResult:
    """PCK of a set of predictions.

    Attributes:
        per_keypoint: ``(K,)`` fraction correct per keypoint; NaN where a
            keypoint has no visible ground truth.
        per_group: Group name -> fraction correct, pooled over the valid
            pairs of the group's keypoints (empty without a skeleton).
        all: Fraction correct over the valid pairs of the skeleton's
            ``"all"`` group (every keypoint without a skeleton); NaN if none.
        correct: ``(B, K)`` bool, which predictions are correct.
        valid: ``(B, K)`` bool, which pairs were evaluated.
        threshold: The distance threshold used.
    """

    per_keypoint: torch.Tensor
    per_group: Mapping[str, float]
    all: float
    correct: torch.Tensor
    valid: torch.Tensor
    threshold: float


def _check_positions(pred: torch.Tensor, gt: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
    check_tensor("pred", pred, ("B", "K", 2))
    check_tensor("gt", gt, ("B", "K", 2), finite=False)
    check_same_leading(("pred", "gt"), (pred, gt), 2)
    vis = as_visibility("visible", visible, pred.shape[:2])
    if not bool(torch.isfinite(gt[vis]).all()):
        raise ValueError("gt contains NaN or Inf values at visible keypoints")
    return vis


def _check_skeleton(skeleton: Skeleton | None, k: int) -> None:
    if skeleton is not None and skeleton.num_keypoints != k:
        raise ValueError(f"skeleton {skeleton.name!r} has {skeleton.num_keypoints} keypoints, but pred has K={k}")


def _fraction(correct: torch.Tensor, valid: torch.Tensor) -> float:
    n = int(valid.sum())
    return float((correct & valid).sum()) / n if n else float("nan")


def pck(
    pred: torch.Tensor,
    gt: torch.Tensor,
    visible: torch.Tensor,
    threshold: float = DEFAULT_THRESHOLD,
    skeleton: Skeleton | None = None,
) -> PCKResult:
    """Percentage of correct keypoints: ``||pred - gt|| < threshold``.

    Args:
        pred: ``(B, K, 2)`` predicted positions.
        gt: ``(B, K, 2)`` true positions (NaN allowed where invisible).
        visible: ``(B, K)`` visibility; invisible pairs are ignored.
        threshold: Distance in the unit of the positions; the default is
            PCK@0.05 on a 64 x 64 heatmap (see :func:`pck_threshold`).
        skeleton: Gives ``per_group`` and the ``"all"`` set.

    Returns:
        A :class:`PCKResult`.
    """
    vis = _check_positions(pred, gt, visible)
    threshold = check_positive("threshold", threshold)
    _check_skeleton(skeleton, pred.shape[1])
    dist = torch.linalg.vector_norm(pred - torch.nan_to_num(gt), dim=-1)  # (B, K)
    correct = (dist < threshold) & vis
    n_valid = vis.sum(dim=0)  # (K,)
    per_keypoint = correct.sum(dim=0).to(pred.dtype) / n_valid.clamp_min(1).to(pred.dtype)
    per_keypoint = per_keypoint.masked_fill(n_valid == 0, float("nan"))
    groups: dict[str, float] = {}
    overall = _fraction(correct, vis)
    if skeleton is not None:
        for name, members in skeleton.groups.items():
            idx = torch.tensor(members, dtype=torch.long, device=pred.device)
            groups[name] = _fraction(correct[:, idx], vis[:, idx])
        overall = groups["all"]
    return PCKResult(per_keypoint, groups, overall, correct, vis, threshold)


@dataclass(frozen=True)
class LandingResult:
    """Where the wrong predictions land.

    Attributes:
        landing: ``(B, K)`` long: ``-2`` not evaluated (invisible), ``-1``
            correct, ``j`` in ``0..K-1`` landed within ``radius`` of keypoint
            ``j``'s truth (the nearest such keypoint), ``K`` background.
        confusion: ``(K, K + 1)`` counts; row = true keypoint, column = the
            keypoint it landed on, last column = background.
        n_wrong: Number of wrong predictions.
        on_other: Fraction of wrong predictions that land on another keypoint.
        on_background: ``1 - on_other`` (NaN when nothing is wrong).
        chance: Fraction a uniformly placed wrong prediction would land on
            another keypoint, averaged over the same wrong predictions.
        radius: The landing radius used.
    """

    landing: torch.Tensor
    confusion: torch.Tensor
    n_wrong: int
    on_other: float
    on_background: float
    chance: float
    radius: float

    @property
    def ratio_to_chance(self) -> float:
        """``on_other / chance``: how much denser than uniform the errors are."""
        return self.on_other / self.chance if self.chance > 0 else float("nan")


def error_landing(
    pred: torch.Tensor,
    gt: torch.Tensor,
    visible: torch.Tensor,
    radius: float = DEFAULT_THRESHOLD,
    skeleton: Skeleton | None = None,
    *,
    map_size: int | Sequence[int] = 64,
) -> LandingResult:
    """Classify every wrong prediction: on another keypoint, or background.

    A prediction is wrong when it is at least ``radius`` from its own truth
    (the complement of :func:`pck` with ``threshold=radius``). It lands on
    keypoint ``j`` when ``j`` is visible in the same sample and its truth is
    the nearest within ``radius``; otherwise on the background.

    ``chance`` answers "what if wrong predictions were spread uniformly?": for
    each wrong prediction, the share of map cells (centres ``(x, y)`` with
    ``0 <= x < W``, ``0 <= y < H``) that are wrong for it *and* within
    ``radius`` of another visible keypoint, among the cells that are wrong
    for it; averaged over the wrong predictions.

    Args:
        pred: ``(B, K, 2)`` predicted positions.
        gt: ``(B, K, 2)`` true positions (NaN allowed where invisible).
        visible: ``(B, K)`` visibility.
        radius: Landing (and correctness) radius in the unit of positions.
        skeleton: Only checked against ``K``; names for plotting live there.
        map_size: ``H`` or ``(H, W)`` of the area positions live in, for ``chance``.

    Returns:
        A :class:`LandingResult`.
    """
    vis = _check_positions(pred, gt, visible)
    radius = check_positive("radius", radius)
    height, width = as_size("map_size", map_size)
    b, k = pred.shape[:2]
    _check_skeleton(skeleton, k)
    gt = torch.nan_to_num(gt)
    dist = torch.cdist(pred, gt)  # (B, K, K): prediction k to truth j
    own = dist.diagonal(dim1=1, dim2=2)  # (B, K)
    wrong = vis & (own >= radius)
    eye = torch.eye(k, dtype=torch.bool, device=pred.device)
    candidate = vis.unsqueeze(1) & ~eye  # (B, K, K): truth j usable for prediction k
    other_dist = dist.masked_fill(~candidate, float("inf"))
    nearest_dist, nearest = other_dist.min(dim=-1)  # (B, K)
    on_other = wrong & (nearest_dist < radius)

    landing = torch.full((b, k), NOT_EVALUATED, dtype=torch.long, device=pred.device)
    landing = landing.masked_fill(vis, CORRECT)
    landing = torch.where(wrong, torch.full_like(landing, k), landing)
    landing = torch.where(on_other, nearest, landing)

    columns = torch.where(wrong, landing, torch.zeros_like(landing))
    flat = (torch.arange(k, device=pred.device) * (k + 1)).expand(b, k) + columns
    confusion = torch.zeros(k * (k + 1), dtype=torch.long, device=pred.device)
    confusion.scatter_add_(0, flat[wrong], torch.ones_like(flat[wrong]))
    confusion = confusion.reshape(k, k + 1)

    n_wrong = int(wrong.sum())
    frac_other = float(on_other.sum()) / n_wrong if n_wrong else float("nan")
    chance = _chance_on_other(gt, vis, wrong, radius, height, width)
    return LandingResult(landing, confusion, n_wrong, frac_other, 1.0 - frac_other, chance, radius)


def _chance_on_other(
    gt: torch.Tensor, vis: torch.Tensor, wrong: torch.Tensor, radius: float, height: int, width: int
) -> float:
    """Mean over wrong predictions of P(uniform wrong cell lies near another keypoint).

    Vectorised over samples in chunks that keep the ``(chunk, K, H*W)`` masks
    near 16 M entries, so memory stays bounded for large evaluation sets.
    """
    b, k = vis.shape
    ys, xs = torch.meshgrid(
        torch.arange(height, device=gt.device, dtype=gt.dtype),
        torch.arange(width, device=gt.device, dtype=gt.dtype),
        indexing="ij",
    )
    cells = torch.stack([xs.flatten(), ys.flatten()], dim=-1)  # (H*W, 2)
    chunk = max(1, (1 << 24) // max(1, k * height * width))
    total = torch.zeros((), dtype=torch.float64, device=gt.device)
    for start in range(0, b, chunk):
        g, v, w = gt[start : start + chunk], vis[start : start + chunk], wrong[start : start + chunk]
        near = (torch.cdist(g, cells.expand(g.shape[0], -1, -1)) < radius) & v.unsqueeze(-1)  # (n, K, H*W)
        near_count = near.sum(dim=1, keepdim=True)  # (n, 1, H*W): keypoints each cell is near
        near_other = (near_count - near.to(near_count.dtype)) > 0  # near a keypoint other than k
        allowed = ~near  # cells that would count as wrong for keypoint k
        hits = (near_other & allowed).sum(dim=-1).double()  # (n, K)
        room = allowed.sum(dim=-1).double().clamp_min(1)
        total += ((hits / room) * w).sum()
    n_wrong = int(wrong.sum())
    return float(total) / n_wrong if n_wrong else float("nan")
