"""Ground-truth and ground-false pseudo-labels, RegDA's two disparities and the Table-2 objectives.

Shape legend: ``B`` batch, ``K`` keypoints, ``H x W`` heatmap cells.

For the main head's prediction ``ŷ`` (the argmax of each logit map):

* ground truth ``H(ŷ_k)``: the Gaussian at ``ŷ_k`` (same recipe as
  :func:`regdakit.heatmaps.encode`);
* ground false (Eq. 1) ``H_F(ŷ_k) = clip(Σ_{k' != k} H(ŷ_k'), 0, 1)``: the places
  keypoint ``k`` is most likely mistaken for, i.e. the other keypoints;
* ground-false distribution (Eq. 2) ``P_F(ŷ_k) = H_F(ŷ_k) / Σ_{h,w} H_F(ŷ_k)``.

RegDA (Jiang et al., CVPR 2021) replaces the minimax game on a disparity by
the minimisation of two opposite goals: the ground-truth disparity
``L_T = KL(H(ŷ) || f')`` and the ground-false disparity
``L_F = KL(P_F(ŷ) || f')``, both the spatial KL of
:func:`regdakit.losses.kl_heatmap_loss`. The KL normalises its target, so
passing ``H_F`` is the same as passing ``P_F``.

Each disparity has one implementation, of the pseudo-labels
(:func:`ground_truth_disparity`, :func:`ground_false_disparity`: the trainer
computes the labels once per target batch and reuses them), and a spelling of
the main head's logits on top of it (:func:`ground_truth_loss`,
:func:`ground_false_loss`: the labels are computed inside).

The paper's Table 2 ablates which player minimises what. Each objective below
is ``(adv_logits, truth, false) -> scalar`` that a player *minimises*; a
maximisation is the negated disparity: :func:`minimise_false` (``L_F``),
:func:`minimise_truth` (``L_T``), :func:`maximise_truth` (``-L_T``, DD's
adversary), :func:`maximise_false` (``-L_F``), and :func:`maximise_truth_l1`,
the L1 version of ``-L_T`` that notebook 03 compares.
:data:`regdakit.methods.regda.OBJECTIVES` pairs them into the trainer's
variants and :func:`regdakit.toy.adversary_loss` names them for notebook 03.

The bounded pair (DD's default adversary, :mod:`regdakit.methods.dd`):
``-L_T`` is unbounded below, so an adversary descending it never stops (it
spreads ``f'`` ever thinner and ``L_T`` grows without limit). In the spirit
of MDD (Zhang et al., ICML 2019: "Bridging Theory and Algorithm for Domain
Adaptation", whose adversary descends ``-log(1 - p')``), both players here
read one number per keypoint, the mass ``m`` of ``softmax(f')`` on the
support of ``H(ŷ)`` (:func:`truth_log_masses`): the adversary descends
``-log(1 - m)`` (:func:`maximise_truth_bounded`), the features ``-log m``
(:func:`minimise_truth_bounded`). Each is >= 0, reaches 0 when its player has
won, and saturates there, so neither can run away.

>>> logits = torch.zeros(1, 2, 8, 8)
>>> logits[0, 0, 2, 2] = logits[0, 1, 5, 6] = 1.0
>>> truth, false = pseudo_labels(logits)
>>> torch.allclose(false[:, 0], truth[:, 1]), torch.allclose(false[:, 1], truth[:, 0])
(True, True)
>>> bool(maximise_truth(logits, truth, false) == -ground_truth_loss(logits, logits))
True
>>> 0 <= float(maximise_truth_bounded(logits, truth, false)) <= -math.log(MASS_FLOOR)
True
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from regdakit._validation import check_nonempty, check_positive, check_tensor
from regdakit.heatmaps import _gaussians
from regdakit.losses import kl_heatmap_loss, l1_heatmap_distance, normalize_heatmaps, spatial_softmax

__all__ = [
    "MASS_FLOOR",
    "Objective",
    "pseudo_labels",
    "ground_false_from_truth",
    "ground_false_distribution",
    "ground_truth_disparity",
    "ground_false_disparity",
    "ground_truth_loss",
    "ground_false_loss",
    "minimise_false",
    "minimise_truth",
    "maximise_truth",
    "maximise_false",
    "maximise_truth_l1",
    "maximise_truth_bounded",
    "minimise_truth_bounded",
    "truth_log_masses",
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


def ground_truth_disparity(
    adv_logits: torch.Tensor, truth: torch.Tensor, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """``L_T = KL(H(ŷ) || softmax(f'))``, RegDA's ground-truth disparity, against a given ``H(ŷ)``.

    The one implementation of ``L_T``: :func:`ground_truth_loss`, the trainer's
    step A and the objectives below call it.

    Args:
        adv_logits: ``(B, K, H, W)`` outputs of ``f'``.
        truth: ``(B, K, H, W)`` ground-truth pseudo-labels ``H(ŷ)`` (:func:`pseudo_labels`; any scale).
        weight: Optional ``(B, K)`` weights (source visibility; never target labels).

    Returns:
        Scalar tensor: the KL of each map, times ``weight``, averaged over ``B·K``
        (:func:`regdakit.losses.kl_heatmap_loss`; zero-weight keypoints count in the mean).
    """
    return kl_heatmap_loss(adv_logits, truth, weight)


def ground_false_disparity(
    adv_logits: torch.Tensor, false: torch.Tensor, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """``L_F = KL(P_F(ŷ) || softmax(f'))``, RegDA's ground-false disparity, against a given ``H_F(ŷ)``.

    The one implementation of ``L_F``. Passing ``H_F`` (Eq. 1) is passing
    ``P_F`` (Eq. 2): the KL normalises its target; an all-zero ``H_F`` (a
    single keypoint) gives exactly 0.

    Args:
        adv_logits: ``(B, K, H, W)`` outputs of ``f'``.
        false: ``(B, K, H, W)`` ground-false pseudo-labels ``H_F(ŷ)`` or ``P_F(ŷ)``.
        weight: Optional ``(B, K)`` weights.

    Returns:
        Scalar tensor, averaged over ``B·K`` as :func:`ground_truth_disparity`.
    """
    return kl_heatmap_loss(adv_logits, false, weight)


def ground_truth_loss(
    adv_logits: torch.Tensor,
    main_logits: torch.Tensor,
    sigma: float = 2.0,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """``L_T`` of the main head's logits: :func:`ground_truth_disparity` against ``H(ŷ)`` of ``main_logits``.

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
    return ground_truth_disparity(adv_logits, truth, weight)


def ground_false_loss(
    adv_logits: torch.Tensor,
    main_logits: torch.Tensor,
    sigma: float = 2.0,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """``L_F`` of the main head's logits: :func:`ground_false_disparity` against ``P_F(ŷ)`` of ``main_logits``.

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
    return ground_false_disparity(adv_logits, false, weight)


# --------------------------------------------------------------------------
# Table 2's objectives. Each is what one player minimises, from f''s logits and
# f's pseudo-labels; the unused label is in the signature so that a method can
# swap objectives without knowing which label each one reads.
# --------------------------------------------------------------------------

#: ``(adv_logits, truth, false) -> scalar``, each ``(B, K, H, W)``: the loss a player descends.
Objective = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def minimise_false(adv_logits: torch.Tensor, truth: torch.Tensor, false: torch.Tensor) -> torch.Tensor:
    """``L_F``: RegDA's step B, ``f'`` moves towards ``P_F(ŷ)`` (the other keypoints).

    Args:
        adv_logits: ``(B, K, H, W)`` outputs of ``f'``.
        truth: ``(B, K, H, W)`` ``H(ŷ)`` (unused).
        false: ``(B, K, H, W)`` ``H_F(ŷ)``.

    Returns:
        Scalar tensor.
    """
    return ground_false_disparity(adv_logits, false)


def minimise_truth(adv_logits: torch.Tensor, truth: torch.Tensor, false: torch.Tensor) -> torch.Tensor:
    """``L_T``: RegDA's (and DD's) step C, the features make ``f'`` agree with ``f`` again.

    Args:
        adv_logits: ``(B, K, H, W)`` outputs of ``f'``.
        truth: ``(B, K, H, W)`` ``H(ŷ)``.
        false: ``(B, K, H, W)`` ``H_F(ŷ)`` (unused).

    Returns:
        Scalar tensor.
    """
    return ground_truth_disparity(adv_logits, truth)


def maximise_truth(adv_logits: torch.Tensor, truth: torch.Tensor, false: torch.Tensor) -> torch.Tensor:
    """``-L_T``: DD's adversary, ``f'`` maximises its disagreement with ``f`` (Table 2's first row).

    Args:
        adv_logits: ``(B, K, H, W)`` outputs of ``f'``.
        truth: ``(B, K, H, W)`` ``H(ŷ)``.
        false: ``(B, K, H, W)`` ``H_F(ŷ)`` (unused).

    Returns:
        Scalar tensor, <= 0.
    """
    return -ground_truth_disparity(adv_logits, truth)


def maximise_false(adv_logits: torch.Tensor, truth: torch.Tensor, false: torch.Tensor) -> torch.Tensor:
    """``-L_F``: Table 2's ``ψ max L_F`` row, the features push ``f'`` away from ``P_F(ŷ)``.

    Args:
        adv_logits: ``(B, K, H, W)`` outputs of ``f'``.
        truth: ``(B, K, H, W)`` ``H(ŷ)`` (unused).
        false: ``(B, K, H, W)`` ``H_F(ŷ)``.

    Returns:
        Scalar tensor, <= 0.
    """
    return -ground_false_disparity(adv_logits, false)


def maximise_truth_l1(adv_logits: torch.Tensor, truth: torch.Tensor, false: torch.Tensor) -> torch.Tensor:
    """``-L1(softmax(f'), H(ŷ) / Σ H(ŷ))``: an adversary maximising the L1 disparity MCD uses.

    :func:`regdakit.losses.l1_heatmap_distance` against the normalised
    ground truth; MCD (:func:`regdakit.losses.heatmap_discrepancy`) takes the
    same distance against ``f``'s own softmax instead. Not in the trainer:
    notebook 03 shows that it, like :func:`maximise_truth`, moves the variance
    of ``f'`` and not its mean.

    Args:
        adv_logits: ``(B, K, H, W)`` outputs of ``f'``.
        truth: ``(B, K, H, W)`` ``H(ŷ)``.
        false: ``(B, K, H, W)`` ``H_F(ŷ)`` (unused).

    Returns:
        Scalar tensor in [-2, 0].
    """
    return -l1_heatmap_distance(spatial_softmax(adv_logits), normalize_heatmaps(truth))


# --------------------------------------------------------------------------
# The bounded pair: DD's adversary in the spirit of MDD. Both players read the
# mass m of softmax(f') on the support of H(ŷ); each descends a loss >= 0 that
# is 0 when it has won, so the game has a floor on both sides.
# --------------------------------------------------------------------------

#: The masses ``m`` and ``1 - m`` of the bounded disparities are floored here (in log space), so each
#: loss is at most ``-log(MASS_FLOOR)`` ≈ 13.8 nats even where a support covers the whole map.
MASS_FLOOR = 1e-6


def truth_log_masses(adv_logits: torch.Tensor, truth: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(log m, log(1 - m))`` per keypoint, ``m`` the mass of ``softmax(f')`` on the support of ``H(ŷ)``.

    The support is the cells where ``H(ŷ) > 0`` (the Gaussian is cut below 0.01, so it is a disc of
    about ``3 sigma``). Both logs are computed as differences of log-sum-exps, so a mass near 0 or 1
    loses no precision (``1 - m`` in floating point would round to 0 long before ``log`` sees it),
    and are floored at ``log(MASS_FLOOR)``.

    Args:
        adv_logits: ``(B, K, H, W)`` outputs of ``f'``.
        truth: ``(B, K, H, W)`` ``H(ŷ)``; only where it is > 0 matters.

    Returns:
        Two ``(B, K)`` tensors in ``[log(MASS_FLOOR), 0]``.

    Raises:
        ValueError: Not ``(B, K, H, W)``, or the two shapes differ.
    """
    check_tensor("adv_logits", adv_logits, ("B", "K", "H", "W"))
    check_tensor("truth", truth, ("B", "K", "H", "W"))
    if adv_logits.shape != truth.shape:
        raise ValueError(
            f"adv_logits {tuple(adv_logits.shape)} and truth {tuple(truth.shape)} must have the same shape"
        )
    b, k = adv_logits.shape[:2]
    logits = adv_logits.reshape(b, k, -1)  # (B, K, H*W)
    inside = truth.reshape(b, k, -1) > 0  # (B, K, H*W)
    # A finite "minus infinity": an empty side gives a finite log-sum-exp (then floored) and a finite gradient,
    # where -inf would give NaN in the backward of logsumexp.
    lowest = torch.finfo(logits.dtype).min
    total = logits.logsumexp(dim=-1)  # (B, K)
    log_in = torch.where(inside, logits, lowest).logsumexp(dim=-1) - total
    log_out = torch.where(inside, lowest, logits).logsumexp(dim=-1) - total
    floor = math.log(MASS_FLOOR)
    return log_in.clamp(floor, 0.0), log_out.clamp(floor, 0.0)


def maximise_truth_bounded(adv_logits: torch.Tensor, truth: torch.Tensor, false: torch.Tensor) -> torch.Tensor:
    """``-log(1 - m)``: DD's bounded adversary, ``f'`` moves its mass off the support of ``H(ŷ)``.

    The MDD-style counterpart of :func:`maximise_truth`: the adversary still maximises its disagreement
    with ``f``, but its loss is 0 once it puts no mass where ``f`` predicts and cannot go below, so the
    adversary stops pushing instead of spreading ``f'`` without end (``-L_T`` has no lower bound).

    Args:
        adv_logits: ``(B, K, H, W)`` outputs of ``f'``.
        truth: ``(B, K, H, W)`` ``H(ŷ)``.
        false: ``(B, K, H, W)`` ``H_F(ŷ)`` (unused).

    Returns:
        Scalar tensor in ``[0, -log(MASS_FLOOR)]``, the mean over ``B·K``.
    """
    _, log_out = truth_log_masses(adv_logits, truth)
    return -log_out.mean()


def minimise_truth_bounded(adv_logits: torch.Tensor, truth: torch.Tensor, false: torch.Tensor) -> torch.Tensor:
    """``-log m``: the features' side of the bounded pair, ``f'`` must put its mass back on ``H(ŷ)``.

    A looser ``L_T`` (``-log m <= L_T`` by Jensen's inequality), read off the same ``m`` as
    :func:`maximise_truth_bounded`, so that both players play over one quantity.

    Args:
        adv_logits: ``(B, K, H, W)`` outputs of ``f'``.
        truth: ``(B, K, H, W)`` ``H(ŷ)``.
        false: ``(B, K, H, W)`` ``H_F(ŷ)`` (unused).

    Returns:
        Scalar tensor in ``[0, -log(MASS_FLOOR)]``, the mean over ``B·K``.
    """
    log_in, _ = truth_log_masses(adv_logits, truth)
    return -log_in.mean()
