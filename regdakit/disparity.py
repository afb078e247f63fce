"""Ground-truth and ground-false pseudo-labels and RegDA's two losses.

Shape legend: ``B`` batch, ``K`` keypoints, ``H x W`` heatmap cells.

For the main head's prediction ``ŷ`` (the argmax of each logit map):

* ground truth ``H(ŷ_k)``: the Gaussian at ``ŷ_k`` (same recipe as
  :func:`regdakit.heatmaps.encode`);
* ground false (Eq. 1) ``H_F(ŷ_k) = clip(Σ_{k' != k} H(ŷ_k'), 0, 1)``: the places
  keypoint ``k`` is most likely mistaken for, i.e. the other keypoints;
* ground-false distribution (Eq. 2) ``P_F(ŷ_k) = H_F(ŷ_k) / Σ_{h,w} H_F(ŷ_k)``.

RegDA replaces the minimax game on a disparity by two minimisations:
``L_T = KL(H(ŷ) || f')`` and ``L_F = KL(P_F(ŷ) || f')`` (DESIGN.md §1). The
KL normalises its target, so passing ``H_F`` is the same as passing ``P_F``.

>>> logits = torch.zeros(1, 2, 8, 8)
>>> logits[0, 0, 2, 2] = logits[0, 1, 5, 6] = 1.0
>>> truth, false = pseudo_labels(logits)
>>> torch.allclose(false[:, 0], truth[:, 1]), torch.allclose(false[:, 1], truth[:, 0])
(True, True)
"""

from __future__ import annotations

import torch

from regdakit._validation import check_nonempty, check_positive, check_tensor
from regdakit.heatmaps import _gaussians
from regdakit.losses import kl_heatmap_loss, normalize_heatmaps

__all__ = [
    "pseudo_labels",
    "ground_false_from_truth",
    "ground_false_distribution",
    "ground_truth_loss",
    "ground_false_loss",
]


def ground_false_from_truth(ground_truth: torch.Tensor) -> torch.Tensor:
    """Eq. 1: ``H_F[k] = clip(Σ_{j != k} H[j], 0, 1)`` for every keypoint.

    Computed as ``(Σ_j H[j]) - H[k]``: one sum instead of a ``K x K`` mask.

    Args:
        ground_truth: ``(B, K, H, W)`` ground-truth heatmaps ``H(ŷ)``.

    Returns:
        ``(B, K, H, W)`` ground-false heatmaps in [0, 1].
    """
    check_tensor("ground_truth", ground_truth, ("B", "K", "H", "W"))
    return _ground_false(ground_truth)


def _ground_false(truth: torch.Tensor) -> torch.Tensor:
    total = truth.sum(dim=1, keepdim=True)  # (B, 1, H, W)
    return torch.sub(total, truth).clamp_(0.0, 1.0)


@torch.no_grad()
def pseudo_labels(logits: torch.Tensor, sigma: float = 2.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Ground-truth and ground-false pseudo-labels of a prediction (Eq. 1).

    ``ŷ_k`` is the integer argmax of channel ``k`` (no sub-cell refinement and
    no ``max > 0`` test: under the shift-invariant KL loss the logits' level is
    arbitrary, and the reference's test would send such maps to the corner).
    Runs on the logits' device without leaving it, and never carries gradient.

    Args:
        logits: ``(B, K, H, W)`` main-head outputs.
        sigma: Gaussian standard deviation in heatmap cells.

    Returns:
        ``(ground_truth, ground_false)``, each ``(B, K, H, W)`` in [0, 1].

    Raises:
        ValueError: Not ``(B, K, H, W)``, a size is 0 (no batch, or no cell to take the argmax of), NaN/Inf.
    """
    check_tensor("logits", logits, ("B", "K", "H", "W"))
    check_nonempty("logits", logits, "BKHW", "pseudo-labels need a batch of maps with at least one cell each")
    sigma = check_positive("sigma", sigma)
    b, k, height, width = logits.shape
    index = logits.detach().reshape(b, k, -1).argmax(dim=-1)  # (B, K)
    dtype = torch.promote_types(logits.dtype, torch.float32)
    centers = torch.stack([index % width, torch.div(index, width, rounding_mode="floor")], dim=-1).to(dtype)
    truth = _gaussians(centers, height, width, sigma)
    return truth, _ground_false(truth)


def ground_false_distribution(ground_false: torch.Tensor) -> torch.Tensor:
    """Eq. 2: ``P_F = H_F / Σ_{h,w} H_F``, a distribution per keypoint.

    Args:
        ground_false: ``(B, K, H, W)`` ground-false heatmaps ``H_F``.

    Returns:
        ``(B, K, H, W)``; each map sums to 1, or is all zero where ``H_F`` is
        (a skeleton with a single keypoint has no ground false).
    """
    check_tensor("ground_false", ground_false, ("B", "K", "H", "W"))
    return normalize_heatmaps(ground_false)


def _check_heads(adv_logits: torch.Tensor, main_logits: torch.Tensor) -> None:
    check_tensor("adv_logits", adv_logits, ("B", "K", "H", "W"))
    check_tensor("main_logits", main_logits, ("B", "K", "H", "W"))
    if adv_logits.shape != main_logits.shape:
        raise ValueError(
            f"adv_logits {tuple(adv_logits.shape)} and main_logits {tuple(main_logits.shape)} must have the same shape"
        )


def ground_truth_loss(
    adv_logits: torch.Tensor,
    main_logits: torch.Tensor,
    sigma: float = 2.0,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """``L_T``: KL of the adversarial head against the main head's ``H(ŷ)``.

    The pseudo-label comes from ``main_logits.detach()``: ``L_T`` never trains
    the main head ``f``; only ``f'`` and, through it, the features ``psi``.

    Args:
        adv_logits: ``(B, K, H, W)`` outputs of ``f'``.
        main_logits: ``(B, K, H, W)`` outputs of ``f``.
        sigma: Pseudo-label Gaussian width in heatmap cells.
        weight: Optional ``(B, K)`` weights (source visibility; never target labels).

    Returns:
        Scalar tensor.
    """
    _check_heads(adv_logits, main_logits)
    truth, _ = pseudo_labels(main_logits, sigma)
    return kl_heatmap_loss(adv_logits, truth, weight)


def ground_false_loss(
    adv_logits: torch.Tensor,
    main_logits: torch.Tensor,
    sigma: float = 2.0,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """``L_F``: KL of the adversarial head against ``P_F(ŷ)`` (Eq. 2).

    Minimising it moves ``f'`` towards the places the main head would
    plausibly confuse keypoint ``k`` with: RegDA's replacement for maximising
    a disparity (step B).

    Args:
        adv_logits: ``(B, K, H, W)`` outputs of ``f'``.
        main_logits: ``(B, K, H, W)`` outputs of ``f`` (detached inside).
        sigma: Pseudo-label Gaussian width in heatmap cells.
        weight: Optional ``(B, K)`` weights.

    Returns:
        Scalar tensor.
    """
    _check_heads(adv_logits, main_logits)
    _, false = pseudo_labels(main_logits, sigma)
    return kl_heatmap_loss(adv_logits, false, weight)
