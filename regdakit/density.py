"""Where wrong predictions go, as maps: the sparse spatial density and how well ``P_F`` anticipates it.

Shape legend: ``B`` batch, ``K`` keypoints, ``N`` points or maps, ``H x W``
heatmap cells. Positions are ``(x, y)`` in heatmap cells, and cell ``(row i,
col j)`` is centred at ``(x=j, y=i)``, as in :mod:`regdakit.heatmaps`; a
position belongs to the cell it rounds to.

The paper observes (Fig. 1, Fig. 3) that a source-only model's *wrong*
predictions on the target domain are not spread over the image: they pile up
on the other keypoints. This module turns that into arrays a notebook can draw
and a test can check:

* :func:`error_density`: the smoothed histogram of one keypoint's wrong
  predictions over a test set, an ``(H, W)`` map that sums to 1 (Fig. 3);
* :func:`twin_share`: how often a left joint is mistaken for its right twin
  (and vice versa), from the landing confusion of
  :func:`regdakit.metrics.error_landing` (Fig. 1), and :func:`twin_chance`,
  the same share for uniformly placed mistakes;
* :func:`highest_density_region`, :func:`coverage` and
  :func:`ground_false_coverage`: how much of that error mass falls where the
  ground-false distribution ``P_F`` (Eq. 2) puts its mass, against what a
  uniform distribution over the same area would catch;
  :func:`ground_false_discrimination`: the same for wrong *and* correct
  predictions, since a region that covers every prediction anticipates nothing.

>>> counts = position_histogram(torch.tensor([[1.2, 0.4], [0.6, 0.8], [3.0, 3.0]]), 3)
>>> counts.tolist()  # (x=1.2, y=0.4) and (0.6, 0.8) fall in row 0 and row 1 of column 1; (3, 3) is off the map
[[0.0, 1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]
>>> p_f = torch.tensor([[[0.5, 0.3], [0.2, 0.0]]])  # one (2, 2) distribution
>>> highest_density_region(p_f, 0.5).int().tolist()
[[[1, 0], [0, 0]]]
>>> result = coverage(p_f, torch.tensor([[0.0, 0.0]]), mass=0.5)
>>> result.share, result.uniform
(1.0, 0.25)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from regdakit import _validation
from regdakit._validation import as_size, check_positive, check_tensor

__all__ = [
    "Coverage",
    "TwinShare",
    "position_histogram",
    "smooth",
    "position_density",
    "error_density",
    "mean_image",
    "predict",
    "highest_density_region",
    "coverage",
    "ground_false_coverage",
    "GroundFalseDiscrimination",
    "ground_false_discrimination",
    "twin_share",
    "twin_chance",
]


def _cells(positions: torch.Tensor) -> torch.Tensor:
    """Integer ``(x, y)`` cell of each position: the nearest cell centre (ties go up, as in ``encode``)."""
    return torch.floor(positions + 0.5).long()


def position_histogram(positions: torch.Tensor, map_size: int | Sequence[int]) -> torch.Tensor:
    """Count positions per heatmap cell.

    Args:
        positions: ``(N, 2)`` positions ``(x, y)`` in heatmap cells.
        map_size: ``H`` or ``(H, W)``.

    Returns:
        ``(H, W)`` float64 counts; positions whose cell lies off the map are dropped.
    """
    check_tensor("positions", positions, ("N", 2))
    height, width = as_size("map_size", map_size)
    cells = _cells(positions)
    x, y = cells[:, 0], cells[:, 1]
    inside = (x >= 0) & (x < width) & (y >= 0) & (y < height)
    counts = torch.zeros(height * width, dtype=torch.float64)
    counts.index_add_(0, (y[inside] * width + x[inside]).cpu(), torch.ones(int(inside.sum()), dtype=torch.float64))
    return counts.reshape(height, width)


def smooth(grid: torch.Tensor, sigma: float) -> torch.Tensor:
    """Blur an ``(H, W)`` map with a Gaussian of ``sigma`` cells (zero outside the map).

    The kernel is normalised and truncated at 3 sigma, so mass is kept except
    what spills over the border. ``sigma = 0`` returns a copy.

    Args:
        grid: ``(H, W)`` map.
        sigma: Standard deviation in cells, ``>= 0``.

    Returns:
        ``(H, W)`` map of ``grid``'s dtype.
    """
    check_tensor("grid", grid, ("H", "W"))
    sigma = check_positive("sigma", sigma, allow_zero=True)
    if sigma == 0:
        return grid.clone()
    radius = max(1, int(3 * sigma + 0.5))
    offsets = torch.arange(-radius, radius + 1, dtype=grid.dtype)
    kernel = torch.exp(-(offsets**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    # Separable: one 1-D convolution along x, then one along y.
    out = torch.nn.functional.conv2d(grid[None, None], kernel.view(1, 1, 1, -1), padding=(0, radius))
    out = torch.nn.functional.conv2d(out, kernel.view(1, 1, -1, 1), padding=(radius, 0))
    return out[0, 0]


def position_density(
    positions: torch.Tensor,
    mask: torch.Tensor,
    keypoint: int | None,
    map_size: int | Sequence[int],
    sigma: float = 1.0,
) -> torch.Tensor:
    """Spatial density of the selected positions of one keypoint over a set of samples.

    The histogram of ``positions[b, keypoint]`` over the samples ``b`` where
    ``mask[b, keypoint]`` holds, smoothed by a Gaussian of ``sigma`` cells
    and normalised to sum 1. With the true positions and the visibility as
    the mask it shows where a keypoint *is*; :func:`error_density` applies it
    to the wrong predictions.

    Args:
        positions: ``(B, K, 2)`` positions in heatmap cells.
        mask: ``(B, K)`` bool, which positions count.
        keypoint: Index of the keypoint; ``None`` pools all keypoints.
        map_size: ``H`` or ``(H, W)``.
        sigma: Smoothing in cells (0: the raw normalised histogram).

    Returns:
        ``(H, W)`` float64 map summing to 1, or all zero when no selected
        position lies on the map.

    Raises:
        ValueError: Shapes disagree, ``keypoint`` is out of range, NaN positions.
    """
    check_tensor("positions", positions, ("B", "K", 2))
    check_tensor("mask", mask, ("B", "K"), floating=False)
    if mask.shape != positions.shape[:2]:
        raise ValueError(f"mask must have shape {tuple(positions.shape[:2])} (B, K), got {tuple(mask.shape)}")
    k = positions.shape[1]
    if keypoint is not None and not 0 <= keypoint < k:
        raise ValueError(f"keypoint must be in 0..{k - 1} or None, got {keypoint}")
    chosen = mask.bool()
    if keypoint is not None:
        chosen = chosen & (torch.arange(k, device=chosen.device) == keypoint)
    counts = smooth(position_histogram(positions[chosen], map_size), sigma)
    total = counts.sum()
    return counts / total if total > 0 else counts


def error_density(
    pred: torch.Tensor,
    wrong: torch.Tensor,
    keypoint: int | None,
    map_size: int | Sequence[int],
    sigma: float = 1.0,
) -> torch.Tensor:
    """Spatial density of the wrong predictions of one keypoint (the paper's Fig. 3).

    The histogram of the positions where keypoint ``keypoint`` was predicted
    *wrongly*, over all samples, smoothed by a Gaussian of ``sigma`` cells and
    normalised to sum 1: the probability that a wrong prediction of that
    keypoint falls in each cell (:func:`position_density` of the wrong predictions).

    Args:
        pred: ``(B, K, 2)`` predicted positions in heatmap cells.
        wrong: ``(B, K)`` bool, which predictions are wrong (e.g.
            ``landing.landing >= 0`` of :func:`regdakit.metrics.error_landing`).
        keypoint: Index of the keypoint; ``None`` pools all keypoints.
        map_size: ``H`` or ``(H, W)``.
        sigma: Smoothing in cells (0: the raw normalised histogram).

    Returns:
        ``(H, W)`` float64 map summing to 1, or all zero when the keypoint has
        no wrong prediction on the map.

    Raises:
        ValueError: Shapes disagree, ``keypoint`` is out of range, NaN positions.
    """
    check_tensor("pred", pred, ("B", "K", 2))
    check_tensor("wrong", wrong, ("B", "K"), floating=False)
    if wrong.shape != pred.shape[:2]:
        raise ValueError(f"wrong must have shape {tuple(pred.shape[:2])} (B, K) like pred, got {tuple(wrong.shape)}")
    return position_density(pred, wrong, keypoint, map_size, sigma)


def mean_image(images: torch.Tensor) -> torch.Tensor:
    """The pixel-wise mean of a set of images, the backdrop of the paper's Fig. 3.

    Args:
        images: ``(N, C, H, W)`` images.

    Returns:
        ``(C, H, W)``.
    """
    check_tensor("images", images, ("N", "C", "H", "W"))
    if images.shape[0] == 0:
        raise ValueError("images must hold at least one image, got N=0")
    return images.mean(dim=0)


def predict(model: torch.nn.Module, images: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """The main head's logits ``f(psi(x))``: :func:`regdakit.inference.predict` under the notebooks' name.

    Args:
        model: A :class:`regdakit.models.PoseResNet` (run in eval mode; its mode is restored after).
        images: ``(N, 3, S, S)`` in [0, 1].
        batch_size: Images per forward pass.

    Returns:
        ``(N, K, S/4, S/4)`` float32 logits on the CPU.
    """
    from regdakit.inference import predict as run  # the model layer, loaded on first use

    return run(model, images, batch_size=batch_size)


def highest_density_region(distribution: torch.Tensor, mass: float) -> torch.Tensor:
    """The smallest set of cells holding at least ``mass`` of each map: its highest-density region.

    Cells are taken in decreasing order of value until the taken mass reaches
    ``mass`` of the map's total; then every cell whose value equals the last
    one taken is added too, so the region is unique when values tie (it may
    then hold more than ``mass``). A cell with value 0 is never in it.

    Args:
        distribution: ``(..., H, W)`` non-negative maps, each with a positive sum
            (need not be normalised).
        mass: Fraction in ``(0, 1]``.

    Returns:
        ``(..., H, W)`` bool mask.

    Raises:
        ValueError: Negative or NaN values, an all-zero map, ``mass`` outside ``(0, 1]``.
    """
    if isinstance(distribution, torch.Tensor) and distribution.ndim < 2:
        raise ValueError(f"distribution must have shape (..., H, W), got {tuple(distribution.shape)}")
    ndim = distribution.ndim if isinstance(distribution, torch.Tensor) else 2
    check_tensor("distribution", distribution, ("N",) * (ndim - 2) + ("H", "W"))
    mass = check_positive("mass", mass)
    if mass > 1:
        raise ValueError(f"mass must be in (0, 1], got {mass}")
    height, width = distribution.shape[-2:]
    flat = distribution.reshape(-1, height * width).double()  # (N, H*W)
    if _validation._CHECK_VALUES and bool((flat < 0).any()):
        raise ValueError("distribution must be non-negative")
    total = flat.sum(dim=-1, keepdim=True)  # (N, 1)
    if bool((total <= 0).any()):
        raise ValueError("every map of distribution must have a positive sum (got an all-zero map)")
    values, _ = flat.sort(dim=-1, descending=True)
    taken = values.cumsum(dim=-1) / total  # (N, H*W): mass of the first j+1 cells
    # First position at which the mass is reached. The tolerance absorbs rounding of the input's own
    # precision (float32 maps of 0.5 / 0.3 / 0.2 hold 0.49999999 in the first cell).
    tolerance = max(16 * torch.finfo(distribution.dtype).eps, 1e-12)
    last = (taken < mass - tolerance).sum(dim=-1, keepdim=True).clamp_max(height * width - 1)
    threshold = values.gather(-1, last)  # (N, 1)
    region = (flat >= threshold) & (flat > 0)
    return region.reshape(distribution.shape)


@dataclass(frozen=True)
class Coverage:
    """How many points fall inside the highest-density regions of their maps.

    Attributes:
        share: Fraction of the points inside their map's region.
        uniform: Mean fraction of the map the regions cover: the share a point
            placed uniformly at random would land in (a uniform distribution
            over a region of the same area, placed anywhere).
        n: Number of points.
        mass: The mass each region holds.
    """

    share: float
    uniform: float
    n: int
    mass: float

    @property
    def ratio(self) -> float:
        """``share / uniform``: how many times better than a uniform region of the same size."""
        return self.share / self.uniform if self.uniform > 0 else float("nan")


def coverage(distributions: torch.Tensor, positions: torch.Tensor, mass: float = 0.5) -> Coverage:
    """Share of points that fall inside the ``mass`` highest-density region of their own map.

    Point ``i`` is covered when the cell it rounds to lies in
    ``highest_density_region(distributions[i], mass)``; off-map points are not
    covered. The baseline ``uniform`` is the mean over ``i`` of the region's
    area divided by ``H · W``.

    Args:
        distributions: ``(N, H, W)`` non-negative maps, one per point.
        positions: ``(N, 2)`` positions ``(x, y)`` in cells.
        mass: Mass of each region, in ``(0, 1]``.

    Returns:
        A :class:`Coverage` (NaN shares when ``N = 0``).
    """
    check_tensor("distributions", distributions, ("N", "H", "W"))
    check_tensor("positions", positions, ("N", 2))
    if positions.shape[0] != distributions.shape[0]:
        raise ValueError(
            f"positions {tuple(positions.shape)} and distributions {tuple(distributions.shape)} "
            "must have the same N (one map per point)"
        )
    n, height, width = distributions.shape
    if n == 0:
        return Coverage(float("nan"), float("nan"), 0, float(mass))
    region = highest_density_region(distributions, mass).reshape(n, height * width)  # (N, H*W)
    cells = _cells(positions)
    x, y = cells[:, 0], cells[:, 1]
    inside = (x >= 0) & (x < width) & (y >= 0) & (y < height)
    index = (y.clamp(0, height - 1) * width + x.clamp(0, width - 1)).unsqueeze(-1)
    covered = region.gather(-1, index.to(region.device)).squeeze(-1) & inside.to(region.device)
    area = region.double().mean(dim=-1)
    return Coverage(float(covered.double().mean()), float(area.mean()), n, float(mass))


def ground_false_coverage(
    ground_false: torch.Tensor,
    pred: torch.Tensor,
    wrong: torch.Tensor,
    mass: float = 0.5,
    keypoint: int | None = None,
) -> Coverage:
    """How much of the error mass falls where the ground-false distribution ``P_F`` puts its mass.

    For every wrong prediction ``pred[b, k]``, the ground-false map of the
    same sample and keypoint gives a highest-density region holding ``mass``
    of ``P_F(ŷ_k)`` (Eq. 2); the result is the share of wrong predictions
    inside their region, beside the share a uniform region of the same area
    would catch (:func:`coverage`). A region does not change when its map is
    scaled, so ``H_F`` (Eq. 1) and ``P_F`` give the same answer.

    The maps decide what is tested: from the main head's own predictions
    (``pseudo_labels(logits)[1]``, what RegDA trains with, no labels), or from
    the true positions (``ground_false_from_truth(encode(...)[0])``, labels,
    for analysis only).

    Args:
        ground_false: ``(B, K, H, W)`` ``H_F`` or ``P_F`` maps. Pairs whose
            map is all zero (no other keypoint visible) are left out.
        pred: ``(B, K, 2)`` predicted positions in cells (the points tested).
        wrong: ``(B, K)`` bool, which predictions are wrong (target labels:
            an analysis, never a training signal).
        mass: Mass of each region, in ``(0, 1]``.
        keypoint: Only this keypoint's wrong predictions; ``None`` for all.

    Returns:
        A :class:`Coverage` over the wrong predictions that have a map.

    >>> maps = torch.zeros(1, 2, 4, 4)
    >>> maps[0, 0, 1, 2] = maps[0, 1, 3, 3] = 1.0  # keypoint 0's ground false sits at (x=2, y=1)
    >>> pred = torch.tensor([[[2.2, 0.9], [0.0, 0.0]]])  # keypoint 0 predicted there, keypoint 1 elsewhere
    >>> result = ground_false_coverage(maps, pred, torch.tensor([[True, True]]), mass=0.5)
    >>> result.share, result.uniform  # one of two covered; each region is 1 of 16 cells
    (0.5, 0.0625)
    """
    check_tensor("ground_false", ground_false, ("B", "K", "H", "W"))
    check_tensor("pred", pred, ("B", "K", 2))
    check_tensor("wrong", wrong, ("B", "K"), floating=False)
    if pred.shape[:2] != ground_false.shape[:2] or wrong.shape != ground_false.shape[:2]:
        raise ValueError(
            f"ground_false {tuple(ground_false.shape)}, pred {tuple(pred.shape)} and wrong {tuple(wrong.shape)} "
            "must agree on (B, K)"
        )
    k = ground_false.shape[1]
    if keypoint is not None and not 0 <= keypoint < k:
        raise ValueError(f"keypoint must be in 0..{k - 1} or None, got {keypoint}")
    mask = wrong.bool() & (ground_false.sum(dim=(-2, -1)) > 0)
    if keypoint is not None:
        mask = mask & (torch.arange(k, device=mask.device) == keypoint)
    return coverage(ground_false[mask], pred[mask], mass)


@dataclass(frozen=True)
class GroundFalseDiscrimination:
    """Coverage by ``P_F`` of wrong predictions beside that of correct ones.

    Attributes:
        wrong: :class:`Coverage` of the wrong predictions.
        correct: :class:`Coverage` of the correct predictions.
    """

    wrong: Coverage
    correct: Coverage

    @property
    def gap(self) -> float:
        """``wrong.share - correct.share``: > 0 when ``P_F`` singles out the mistakes."""
        return self.wrong.share - self.correct.share


def ground_false_discrimination(
    ground_false: torch.Tensor, pred: torch.Tensor, wrong: torch.Tensor, visible: torch.Tensor, mass: float = 0.5
) -> GroundFalseDiscrimination:
    """Does ``P_F`` cover where ``f`` goes wrong more than where it is right?

    :func:`ground_false_coverage` of the wrong predictions alone can be high
    for a useless ``P_F``: a plateau over the whole object covers every
    prediction, right or wrong. This measures both sets with the same maps and
    region mass; only a positive :attr:`GroundFalseDiscrimination.gap` says
    that ``P_F`` marks likely mistakes.

    Args:
        ground_false: ``(B, K, H, W)`` ``H_F`` or ``P_F`` maps (all-zero maps are left out).
        pred: ``(B, K, 2)`` predicted positions in cells.
        wrong: ``(B, K)`` bool, which predictions are wrong (labels: an analysis only).
        visible: ``(B, K)`` bool, which predictions were evaluated; correct = visible and not wrong.
        mass: Mass of each region, in ``(0, 1]``.

    Returns:
        A :class:`GroundFalseDiscrimination`.

    >>> maps = torch.zeros(1, 2, 4, 4)
    >>> maps[0, :, 0, 0] = 1.0  # both keypoints' ground false sits at cell (x=0, y=0)
    >>> pred = torch.tensor([[[0.0, 0.0], [3.0, 3.0]]])  # keypoint 0 there, keypoint 1 far away
    >>> wrong, visible = torch.tensor([[True, False]]), torch.ones(1, 2, dtype=torch.bool)
    >>> result = ground_false_discrimination(maps, pred, wrong, visible)
    >>> result.wrong.share, result.correct.share, result.gap
    (1.0, 0.0, 1.0)
    """
    check_tensor("visible", visible, ("B", "K"), floating=False)
    if visible.shape != wrong.shape:
        raise ValueError(f"visible {tuple(visible.shape)} and wrong {tuple(wrong.shape)} must have the same shape")
    wrong = wrong.bool() & visible.bool()
    correct = visible.bool() & ~wrong
    return GroundFalseDiscrimination(
        wrong=ground_false_coverage(ground_false, pred, wrong, mass),
        correct=ground_false_coverage(ground_false, pred, correct, mass),
    )


@dataclass(frozen=True)
class TwinShare:
    """How often a keypoint with a left/right twin is mistaken for that twin.

    Attributes:
        per_keypoint: ``(K,)`` share of each keypoint's wrong predictions that
            land on its twin; NaN for keypoints without a twin or without errors.
        overall: The same, pooled over all keypoints that have a twin.
        among_on_other: Of the paired keypoints' wrong predictions that land on
            *another keypoint*, the share that land on the twin.
        n_wrong: Wrong predictions of the paired keypoints.
    """

    per_keypoint: torch.Tensor
    overall: float
    among_on_other: float
    n_wrong: int


def twin_share(confusion: torch.Tensor, flip_pairs: Sequence[tuple[int, int]]) -> TwinShare:
    """Left/right confusion: the share of wrong predictions that land on the keypoint's mirror twin.

    Args:
        confusion: ``(K, K + 1)`` landing counts of
            :func:`regdakit.metrics.error_landing` (row = true keypoint, column =
            keypoint landed on, last column = background).
        flip_pairs: Left/right pairs, e.g. ``BODY16.flip_pairs``.

    Returns:
        A :class:`TwinShare`.

    >>> confusion = torch.tensor([[0, 3, 1], [1, 0, 1]])  # keypoint 0: 3 on its twin, 1 on the background
    >>> result = twin_share(confusion, [(0, 1)])
    >>> result.per_keypoint.tolist(), result.overall, result.among_on_other
    ([0.75, 0.5], 0.6666666666666666, 1.0)
    """
    check_tensor("confusion", confusion, ("K", "K + 1"), floating=False, finite=False)
    k = confusion.shape[0]
    if confusion.shape[1] != k + 1:
        raise ValueError(f"confusion must have shape (K, K + 1), got {tuple(confusion.shape)}")
    if bool((confusion < 0).any()):
        raise ValueError("confusion must hold non-negative counts")
    twin = _twins(flip_pairs, k)
    counts = confusion.double().cpu()
    paired = twin >= 0
    rows = counts.sum(dim=1)  # (K,) wrong predictions per keypoint
    on_twin = torch.where(paired, counts[torch.arange(k), twin.clamp_min(0)], torch.zeros(k, dtype=torch.float64))
    per_keypoint = torch.where(paired & (rows > 0), on_twin / rows.clamp_min(1), torch.full((k,), float("nan")))
    n_wrong = float(rows[paired].sum())
    on_other = float(counts[paired, :k].sum())
    overall = float(on_twin[paired].sum()) / n_wrong if n_wrong else float("nan")
    among = float(on_twin[paired].sum()) / on_other if on_other else float("nan")
    return TwinShare(per_keypoint, overall, among, int(n_wrong))


def _twins(flip_pairs: Sequence[tuple[int, int]], k: int) -> torch.Tensor:
    twin = torch.full((k,), -1, dtype=torch.long)
    for a, b in flip_pairs:
        if not (0 <= a < k and 0 <= b < k) or a == b:
            raise ValueError(f"flip pair {(a, b)} is not a pair of distinct keypoints in 0..{k - 1}")
        twin[a], twin[b] = b, a
    return twin


def twin_chance(
    gt: torch.Tensor,
    visible: torch.Tensor,
    wrong: torch.Tensor,
    flip_pairs: Sequence[tuple[int, int]],
    radius: float,
    map_size: int | Sequence[int],
) -> float:
    """The twin share chance would give: :attr:`TwinShare.overall` for wrong predictions placed uniformly.

    For each wrong prediction of a keypoint with a twin, the share of map
    cells that are wrong for it (at least ``radius`` from its own truth) and
    that :func:`regdakit.metrics.error_landing` would assign to the twin (the
    twin is the nearest visible other keypoint, within ``radius``), among
    the cells that are wrong for it; averaged over those wrong predictions (0
    where the twin is invisible).

    Args:
        gt: ``(B, K, 2)`` true positions in cells (NaN allowed where invisible).
        visible: ``(B, K)`` visibility.
        wrong: ``(B, K)`` bool, which predictions are wrong.
        flip_pairs: Left/right pairs, e.g. ``BODY16.flip_pairs``.
        radius: The landing radius of :func:`regdakit.metrics.error_landing`.
        map_size: ``H`` or ``(H, W)``.

    Returns:
        The chance share; NaN when no paired keypoint is wrong.

    >>> gt = torch.tensor([[[2.0, 2.0], [10.0, 2.0]]])
    >>> chance = twin_chance(gt, torch.ones(1, 2), torch.tensor([[True, False]]), [(0, 1)], 1.0, 16)
    >>> round(chance * 255, 6)  # 1 cell within radius 1 of the twin, of 255 cells away from its own truth
    1.0
    """
    check_tensor("gt", gt, ("B", "K", 2), finite=False)
    check_tensor("wrong", wrong, ("B", "K"), floating=False)
    vis = visible.bool() if isinstance(visible, torch.Tensor) else visible
    if not isinstance(vis, torch.Tensor) or vis.shape != gt.shape[:2] or wrong.shape != gt.shape[:2]:
        raise ValueError(f"visible and wrong must have shape {tuple(gt.shape[:2])} (B, K) like gt")
    radius = check_positive("radius", radius)
    height, width = as_size("map_size", map_size)
    b, k = vis.shape
    twin = _twins(flip_pairs, k)
    ys, xs = torch.meshgrid(torch.arange(height, dtype=gt.dtype), torch.arange(width, dtype=gt.dtype), indexing="ij")
    cells = torch.stack([xs.flatten(), ys.flatten()], dim=-1)  # (H*W, 2)
    dist = torch.cdist(torch.nan_to_num(gt), cells.expand(b, -1, -1))  # (B, K, H*W)
    dist = dist.masked_fill(~vis.unsqueeze(-1), float("inf"))  # invisible keypoints attract nothing
    total, count = 0.0, 0
    for j in range(k):
        if twin[j] < 0:
            continue
        rows = wrong[:, j].bool() & vis[:, j]
        if not bool(rows.any()):
            continue
        d = dist[rows]  # (n, K, H*W)
        allowed = d[:, j] >= radius  # (n, H*W): cells that are wrong for keypoint j
        others = d.clone()
        others[:, j] = float("inf")
        nearest_dist, nearest = others.min(dim=1)  # (n, H*W)
        on_twin = allowed & (nearest == twin[j]) & (nearest_dist < radius)
        total += float((on_twin.sum(-1).double() / allowed.sum(-1).clamp_min(1).double()).sum())
        count += int(rows.sum())
    return total / count if count else float("nan")
