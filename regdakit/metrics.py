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
:func:`landing_chance` says how often they would land there by chance, under
three chance models of increasing strength: a keypoint close to others is hit
often even by errors that know nothing about the skeleton.

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

__all__ = [
    "PCKResult",
    "LandingResult",
    "ChanceBaselines",
    "pck",
    "pck_threshold",
    "error_landing",
    "landing_chance",
    "inside_keypoint_box",
    "DEFAULT_THRESHOLD",
]

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
    gt: torch.Tensor,
    vis: torch.Tensor,
    wrong: torch.Tensor,
    radius: float,
    height: int,
    width: int,
    *,
    in_box: bool = False,
) -> float:
    """Mean over wrong predictions of P(uniform wrong cell lies near another keypoint).

    With ``in_box`` the cells are those whose centre lies inside the bounding
    box of the sample's visible keypoints (edges included); a prediction with
    no wrong cell in its box is left out of the mean. Vectorised over samples
    in chunks that keep the ``(chunk, K, H*W)`` masks near 16 M entries, so
    memory stays bounded for large evaluation sets.
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
    counted = 0
    for start in range(0, b, chunk):
        g, v, w = gt[start : start + chunk], vis[start : start + chunk], wrong[start : start + chunk]
        near = (torch.cdist(g, cells.expand(g.shape[0], -1, -1)) < radius) & v.unsqueeze(-1)  # (n, K, H*W)
        near_count = near.sum(dim=1, keepdim=True)  # (n, 1, H*W): keypoints each cell is near
        near_other = (near_count - near.to(near_count.dtype)) > 0  # near a keypoint other than k
        allowed = ~near  # cells that would count as wrong for keypoint k
        if in_box:
            allowed = allowed & _inside_box(g, v, cells).unsqueeze(1)
        hits = (near_other & allowed).sum(dim=-1).double()  # (n, K)
        room = allowed.sum(dim=-1).double()
        w = w & (room > 0)
        total += ((hits / room.clamp_min(1)) * w).sum()
        counted += int(w.sum())
    return float(total) / counted if counted else float("nan")


def _inside_box(gt: torch.Tensor, vis: torch.Tensor, cells: torch.Tensor) -> torch.Tensor:
    """``(n, H*W)`` bool: cells inside the bounding box of each sample's visible keypoints."""
    big = torch.finfo(gt.dtype).max
    low = torch.where(vis.unsqueeze(-1), gt, big).amin(dim=1)  # (n, 2)
    high = torch.where(vis.unsqueeze(-1), gt, -big).amax(dim=1)
    return ((cells.unsqueeze(0) >= low.unsqueeze(1)) & (cells.unsqueeze(0) <= high.unsqueeze(1))).all(dim=-1)


def inside_keypoint_box(
    pred: torch.Tensor, gt: torch.Tensor, visible: torch.Tensor, margin: float = 0.0
) -> torch.Tensor:
    """Whether each prediction lies inside the bounding box of its sample's visible keypoints.

    The box is the one chance model (b) of :func:`landing_chance` draws from, widened by ``margin`` on
    every side (e.g. the landing radius, so that a prediction landing on a keypoint at the box's edge
    counts as inside). It separates errors that stay on the object from those that leave it.

    Args:
        pred: ``(B, K, 2)`` predicted positions.
        gt: ``(B, K, 2)`` true positions (NaN allowed where invisible).
        visible: ``(B, K)`` visibility; a sample without visible keypoints has no box (all False).
        margin: How far outside the box still counts as inside, in the unit of positions (>= 0).

    Returns:
        ``(B, K)`` bool.

    >>> gt = torch.tensor([[[0.0, 0.0], [4.0, 2.0]]])
    >>> inside_keypoint_box(torch.tensor([[[2.0, 1.0], [5.0, 2.0]]]), gt, torch.ones(1, 2), margin=0.5).tolist()
    [[True, False]]
    """
    vis = _check_positions(pred, gt, visible)
    margin = check_positive("margin", margin, allow_zero=True)
    clean = torch.nan_to_num(gt)
    big = torch.finfo(clean.dtype).max
    low = torch.where(vis.unsqueeze(-1), clean, big).amin(dim=1, keepdim=True) - margin  # (B, 1, 2)
    high = torch.where(vis.unsqueeze(-1), clean, -big).amax(dim=1, keepdim=True) + margin
    return ((pred >= low) & (pred <= high)).all(dim=-1)


def _rotated_error_chance(
    pred: torch.Tensor, gt: torch.Tensor, vis: torch.Tensor, wrong: torch.Tensor, radius: float, angles: int
) -> float:
    """Mean over wrong predictions of the share of their error vector's rotations that land near another keypoint.

    Prediction ``(b, k)`` with error ``e = pred - gt_k`` is moved to
    ``gt_k + R(θ) e`` for ``θ = 2π j / angles``, ``j = 0 .. angles-1`` (an
    exact quadrature of a uniformly random direction, no random numbers). Its
    length is kept, so every rotated prediction is still wrong; it may leave
    the map (then it lands on no keypoint).
    """
    b_idx, k_idx = torch.nonzero(wrong, as_tuple=True)
    if b_idx.numel() == 0:
        return float("nan")
    theta = torch.arange(angles, device=pred.device, dtype=torch.float64) * (2 * torch.pi / angles)
    cos, sin = theta.cos().to(pred.dtype), theta.sin().to(pred.dtype)
    k = vis.shape[1]
    chunk = max(1, (1 << 24) // max(1, angles * k))
    hits = torch.zeros((), dtype=torch.float64, device=pred.device)
    for start in range(0, b_idx.numel(), chunk):
        bs, ks = b_idx[start : start + chunk], k_idx[start : start + chunk]
        own = gt[bs, ks]  # (n, 2)
        error = pred[bs, ks] - own
        turned = torch.stack(  # (n, angles, 2): R(θ) e for every angle
            [cos * error[:, :1] - sin * error[:, 1:], sin * error[:, :1] + cos * error[:, 1:]], dim=-1
        )
        moved = own.unsqueeze(1) + turned
        dist = torch.cdist(moved, gt[bs])  # (n, angles, K)
        others = vis[bs] & (torch.arange(k, device=pred.device) != ks.unsqueeze(1))  # (n, K)
        near = ((dist < radius) & others.unsqueeze(1)).any(dim=-1)  # (n, angles)
        hits += near.double().mean(dim=-1).sum()
    return float(hits) / b_idx.numel()


@dataclass(frozen=True)
class ChanceBaselines:
    """How often wrong predictions land on another keypoint, measured and under three chance models.

    Each chance share is a mean over the same wrong predictions of the
    probability that a chance version of that prediction lands within
    ``radius`` of another visible keypoint:

    Attributes:
        on_other: Measured share (:attr:`LandingResult.on_other`).
        uniform_image: (a) a cell uniform over the whole ``H x W`` map, among
            the cells that would be wrong (:attr:`LandingResult.chance`).
        uniform_box: (b) a cell uniform inside the bounding box of the
            sample's visible keypoints, among the cells that would be wrong:
            errors that know where the object is, not where its keypoints are.
        rotated_errors: (c) the prediction's own error vector turned to a
            uniformly random direction around its true keypoint: errors of the
            same length, in no preferred direction.
        n_wrong: Number of wrong predictions.
        radius: The landing radius.
    """

    on_other: float
    uniform_image: float
    uniform_box: float
    rotated_errors: float
    n_wrong: int
    radius: float

    @property
    def strongest(self) -> float:
        """The highest of the three chance shares (NaN only when all are NaN)."""
        shares = [s for s in (self.uniform_image, self.uniform_box, self.rotated_errors) if s == s]
        return max(shares) if shares else float("nan")

    @property
    def ratio(self) -> float:
        """``on_other / strongest``: how much more often errors land on keypoints than the best chance model says."""
        return self.on_other / self.strongest if self.strongest > 0 else float("nan")


def landing_chance(
    pred: torch.Tensor,
    gt: torch.Tensor,
    visible: torch.Tensor,
    radius: float = DEFAULT_THRESHOLD,
    *,
    map_size: int | Sequence[int] = 64,
    angles: int = 360,
    among: torch.Tensor | None = None,
) -> ChanceBaselines:
    """The landing share of :func:`error_landing` beside three chance models of the same wrong predictions.

    The paper's sparse spatial density says errors land on other keypoints
    *more than chance*; which chance matters. Keypoints of a hand lie closer
    together than a typical landing radius, so even errors that ignore the
    skeleton hit one often. See :class:`ChanceBaselines` for the models;
    compare the measured share with :attr:`ChanceBaselines.strongest`.

    Args:
        pred: ``(B, K, 2)`` predicted positions (cells).
        gt: ``(B, K, 2)`` true positions (NaN allowed where invisible).
        visible: ``(B, K)`` visibility.
        radius: Landing (and correctness) radius, as in :func:`error_landing`.
        map_size: ``H`` or ``(H, W)`` of the map, for models (a) and (b).
        angles: Directions of the quadrature of model (c).
        among: Optional ``(B, K)`` bool: measure and model only the wrong predictions where it is True
            (e.g. :func:`inside_keypoint_box`, the errors that stay on the object); ``n_wrong`` counts them.

    Returns:
        A :class:`ChanceBaselines` (NaN shares when nothing is wrong).

    >>> gt = torch.tensor([[[0.0, 0.0], [10.0, 0.0]]])
    >>> pred = torch.tensor([[[0.0, 10.0], [10.0, 0.0]]])  # keypoint 0 is 10 cells off, on background
    >>> result = landing_chance(pred, gt, torch.ones(1, 2), radius=3.0, map_size=16)
    >>> result.on_other, round(result.rotated_errors * 360)  # 35 of 360 directions (|θ| <= 17°) hit keypoint 1
    (0.0, 35)
    """
    landing = error_landing(pred, gt, visible, radius, map_size=map_size)
    if not isinstance(angles, int) or isinstance(angles, bool) or angles < 1:
        raise ValueError(f"angles must be a positive int, got {angles!r}")
    vis = as_visibility("visible", visible, pred.shape[:2])
    height, width = as_size("map_size", map_size)
    clean = torch.nan_to_num(gt)
    wrong = landing.landing >= 0
    on_other, uniform_image, n_wrong = landing.on_other, landing.chance, landing.n_wrong
    if among is not None:
        if not isinstance(among, torch.Tensor) or among.dtype != torch.bool or among.shape != wrong.shape:
            got = f"{among.dtype} {tuple(among.shape)}" if isinstance(among, torch.Tensor) else type(among).__name__
            raise ValueError(f"among must be a bool tensor of shape {tuple(wrong.shape)} (B, K), got {got}")
        wrong = wrong & among.to(wrong.device)
        n_wrong = int(wrong.sum())
        hits = int((wrong & (landing.landing < vis.shape[1])).sum())
        on_other = hits / n_wrong if n_wrong else float("nan")
        uniform_image = _chance_on_other(clean, vis, wrong, float(radius), height, width)
    return ChanceBaselines(
        on_other=on_other,
        uniform_image=uniform_image,
        uniform_box=_chance_on_other(clean, vis, wrong, float(radius), height, width, in_box=True),
        rotated_errors=_rotated_error_chance(pred, clean, vis, wrong, float(radius), angles),
        n_wrong=n_wrong,
        radius=landing.radius,
    )
