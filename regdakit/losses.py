"""Heatmap losses: mean squared error and the spatial KL divergence.

Shape legend: ``B`` batch, ``K`` keypoints, ``H x W`` heatmap cells.
``weight`` is ``(B, K)``, typically the visibility from
:func:`regdakit.heatmaps.encode`.

The KL loss treats each keypoint's map as a distribution over the ``H·W``
cells: the prediction is ``softmax`` of the logits, the target is the target
map normalised to sum 1. It is the loss the paper trains with and the basis of
``L_T`` and ``L_F`` (:mod:`regdakit.disparity`).

>>> logits = torch.zeros(1, 1, 2, 2)
>>> target = torch.full((1, 1, 2, 2), 0.25)
>>> float(kl_heatmap_loss(logits, target))  # softmax(0) is uniform = target
0.0
"""

from __future__ import annotations

import torch

from regdakit._validation import check_nonempty, check_same_leading, check_tensor

__all__ = ["mse_heatmap_loss", "kl_heatmap_loss", "kl_per_keypoint", "normalize_heatmaps"]


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
