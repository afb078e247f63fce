"""Heatmap losses: mean squared error, the spatial KL divergence and the L1 distance of distributions.

Shape legend: ``B`` batch, ``K`` keypoints, ``H x W`` heatmap cells.
``weight`` is ``(B, K)``, typically the visibility from
:func:`regdakit.heatmaps.encode`.

The KL loss treats each keypoint's map as a distribution over the ``H·W``
cells: the prediction is ``softmax`` of the logits, the target is the target
map normalised to sum 1. It is the loss the paper trains with and the basis of
``L_T`` and ``L_F`` (:mod:`regdakit.disparity`). The L1 distance between two
such distributions is MCD's discrepancy on heatmaps
(:func:`heatmap_discrepancy`) and the toy's L1 disparity (:mod:`regdakit.toy`).

>>> logits = torch.zeros(1, 1, 2, 2)
>>> target = torch.full((1, 1, 2, 2), 0.25)
>>> float(kl_heatmap_loss(logits, target))  # softmax(0) is uniform = target
0.0
"""

from __future__ import annotations

import torch

from regdakit._validation import check_nonempty, check_same_leading, check_tensor

__all__ = [
    "mse_heatmap_loss",
    "kl_heatmap_loss",
    "kl_per_keypoint",
    "normalize_heatmaps",
    "spatial_softmax",
    "l1_heatmap_distance",
    "heatmap_discrepancy",
]


def _check_weight(weight: torch.Tensor | None, pred: torch.Tensor) -> torch.Tensor | None:
    if weight is None:
        return None
    check_tensor("weight", weight, ("B", "K"))
    check_same_leading(("pred", "weight"), (pred, weight), 2)
    return weight.to(pred.dtype)


def _check_pair(pred_name: str, pred: torch.Tensor, target: torch.Tensor) -> None:
    check_tensor(pred_name, pred, ("B", "K", "H", "W"))
    check_tensor("target", target, ("B", "K", "H", "W"))
    if pred.shape != target.shape:
        raise ValueError(f"{pred_name} {tuple(pred.shape)} and target {tuple(target.shape)} must have the same shape")
    check_nonempty(pred_name, pred, "BKHW", "a heatmap loss averages over B·K maps of H·W cells and needs one of each")


def mse_heatmap_loss(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Weighted mean squared error between heatmaps, ``0.5 (pred - target)^2``.

    The factor 0.5 and the mean over all ``B·K·H·W`` entries follow the
    reference's ``JointsMSELoss``, so loss values are comparable.

    Args:
        pred: ``(B, K, H, W)`` predicted heatmaps.
        target: ``(B, K, H, W)`` target heatmaps.
        weight: ``(B, K)`` per-keypoint weights, or None for all ones.

    Returns:
        Scalar tensor.

    Raises:
        ValueError: Shapes differ, a size is 0 (an empty batch has no mean), or NaN/Inf values.
    """
    _check_pair("pred", pred, target)
    w = _check_weight(weight, pred)
    sq = 0.5 * (pred - target) ** 2
    if w is not None:
        sq = sq * w[..., None, None]
    return sq.mean()


def normalize_heatmaps(heatmaps: torch.Tensor, epsilon: float = 0.0) -> torch.Tensor:
    """Normalise each ``(H, W)`` map to sum 1; all-zero maps stay all zero.

    Args:
        heatmaps: ``(B, K, H, W)`` non-negative maps.
        epsilon: Added to every cell before normalising (the reference adds
            1e-7 to pseudo-labels); with 0, all-zero maps remain zero instead
            of becoming NaN.

    Returns:
        ``(B, K, H, W)`` maps that sum to 1 (or 0 where the input was all zero).
    """
    maps = heatmaps + epsilon if epsilon else heatmaps
    total = maps.sum(dim=(-2, -1), keepdim=True)
    return maps / torch.where(total > 0, total, torch.ones_like(total))


def kl_per_keypoint(logits: torch.Tensor, target: torch.Tensor, epsilon: float = 0.0) -> torch.Tensor:
    """``KL(q || softmax(logits))`` per keypoint, ``q`` the normalised target.

    ``KL = sum_hw q log q - q log_softmax(logits)``. Written out rather than via
    ``torch.nn.functional.kl_div`` so that an all-zero target gives exactly 0
    (and a zero gradient): ``xlogy(0, 0) = 0``, ``0 · log p = 0``. The
    reference's ``JointsKLLoss`` gives NaN there on current PyTorch.

    Args:
        logits: ``(B, K, H, W)`` raw head outputs.
        target: ``(B, K, H, W)`` non-negative target maps (any scale).
        epsilon: See :func:`normalize_heatmaps`.

    Returns:
        ``(B, K)`` KL divergences (nats), >= 0.

    Raises:
        ValueError: Shapes differ, a size is 0 (an empty batch or map), or NaN/Inf values.
    """
    _check_pair("logits", logits, target)
    b, k = logits.shape[:2]
    # Compute in at least fp32: under autocast a bf16 log-softmax over 4096
    # cells loses the small probabilities the KL is made of.
    dtype = torch.promote_types(logits.dtype, torch.float32)
    log_p = torch.log_softmax(logits.reshape(b, k, -1).to(dtype), dim=-1)  # (B, K, H*W)
    q = normalize_heatmaps(target.to(dtype), epsilon).reshape(b, k, -1)  # (B, K, H*W)
    return (torch.special.xlogy(q, q) - q * log_p).sum(dim=-1)


def kl_heatmap_loss(
    logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None, epsilon: float = 0.0
) -> torch.Tensor:
    """Spatial KL loss, the reference's ``JointsKLLoss`` semantics.

    For each keypoint, ``KL(target / sum(target) || softmax over H·W of logits)``,
    times ``weight``, averaged over ``B·K`` (zero-weight keypoints count in the
    denominator, as in the reference). Finite for all-zero targets.

    Args:
        logits: ``(B, K, H, W)`` raw head outputs.
        target: ``(B, K, H, W)`` non-negative target maps.
        weight: ``(B, K)`` weights, or None for all ones.
        epsilon: Smoothing added to the target before normalising.

    Returns:
        Scalar tensor.
    """
    kl = kl_per_keypoint(logits, target, epsilon)
    w = _check_weight(weight, logits)
    if w is not None:
        kl = kl * w.to(kl.dtype)
    return kl.mean()


def spatial_softmax(logits: torch.Tensor) -> torch.Tensor:
    """Each keypoint's distribution over the ``H·W`` cells: ``softmax`` of its logit map.

    Computed in the logits' dtype (unlike :func:`kl_per_keypoint`, which
    promotes to fp32 for its logarithms): MCD's discrepancy has always been so.

    Args:
        logits: ``(B, K, H, W)`` raw head outputs (``-inf`` allowed: a cell with no mass).

    Returns:
        ``(B, K, H, W)`` maps that each sum to 1.
    """
    return torch.softmax(logits.flatten(2), dim=-1).reshape(logits.shape)


def l1_heatmap_distance(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """``mean_{b,k} sum_{h,w} |p - q|``: the L1 distance of two distributions per map, averaged over ``B·K``.

    In [0, 2] for distributions (twice the total-variation distance): 0 when
    they are equal, 2 when they do not overlap. Summed over the cells, not
    averaged: with 1024 cells as "classes" a mean would shrink it 1000-fold.

    Args:
        p: ``(B, K, H, W)`` distributions (e.g. :func:`spatial_softmax` of a head).
        q: ``(B, K, H, W)`` distributions (another head, or a normalised target).

    Returns:
        Scalar tensor.

    Raises:
        ValueError: Not ``(B, K, H, W)`` or the shapes differ.
    """
    check_tensor("p", p, ("B", "K", "H", "W"), finite=False)
    check_tensor("q", q, ("B", "K", "H", "W"), finite=False)
    if p.shape != q.shape:
        raise ValueError(f"p {tuple(p.shape)} and q {tuple(q.shape)} must have the same shape")
    return (p - q).flatten(2).abs().sum(dim=-1).mean()


def heatmap_discrepancy(logits_1: torch.Tensor, logits_2: torch.Tensor) -> torch.Tensor:
    """MCD's discrepancy on heatmaps: the L1 distance between two heads' spatial distributions.

    ``d = mean_{b,k} sum_{h,w} |softmax(logits_1[b, k]) - softmax(logits_2[b, k])|`` in [0, 2]
    (Saito et al., CVPR 2018, Eq. 1, with the ``H·W`` cells as classes; see
    :mod:`regdakit.methods.mcd` for why the cells are summed).

    Args:
        logits_1: ``(B, K, H, W)`` heatmap logits of one head.
        logits_2: ``(B, K, H, W)`` of the other.

    Returns:
        Scalar tensor.

    Raises:
        ValueError: Not ``(B, K, H, W)`` or the shapes differ.

    >>> a = torch.tensor([[[[0.0, 0.0]]]])                # uniform over 2 cells
    >>> b = torch.tensor([[[[0.0, -float("inf")]]]])      # all mass on cell 0
    >>> float(heatmap_discrepancy(a, b))                  # |0.5 - 1| + |0.5 - 0|
    1.0
    """
    check_tensor("logits_1", logits_1, ("B", "K", "H", "W"), finite=False)
    check_tensor("logits_2", logits_2, ("B", "K", "H", "W"), finite=False)
    if logits_1.shape != logits_2.shape:
        raise ValueError(f"logits_1 {tuple(logits_1.shape)} and logits_2 {tuple(logits_2.shape)} must match")
    return l1_heatmap_distance(spatial_softmax(logits_1), spatial_softmax(logits_2))
