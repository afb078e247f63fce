"""DAN (Long et al., ICML 2015, "Learning Transferable Features with Deep Adaptation Networks") for heatmaps.

DAN adds to the supervised loss the multi-kernel maximum mean discrepancy
(MK-MMD) between source and target features (DAN Eq. 1-3, 8):

    MMD²_k(p, q) = E k(x, x') + E k(y, y') - 2 E k(x, y),   k = Σ_u β_u k_u  (Gaussian kernels k_u)

and the features minimise ``L_src(f) + trade_off * MMD²``. Nothing is
adversarial: one minimisation per iteration, ``psi`` and ``f`` both step.

Choices the keypoint version forces:

* Which features. DAN aligns the task-specific fully connected layers of a
  classifier; a keypoint detector has none, and ``psi`` is a ``C x H x W``
  map whose positions *should* differ between images (keypoints move). The
  MMD is taken between the spatially average-pooled ``psi`` (``(B, C)``),
  which carries the image's appearance but not its keypoint layout.
* The estimator. The unbiased quadratic-time estimate (Gretton et al., JMLR
  2012, Eq. 3) over the whole batches; DAN's linear-time estimate exists for
  large batches, at batch 32 the quadratic one is cheap and less noisy.
* The kernels. Gaussian kernels ``exp(-|x-y|² / γ_u)`` with bandwidths
  ``γ_u = scale_u x`` the mean squared pairwise distance of the pooled
  features (detached), equal weights ``β_u``. DAN learns ``β`` by a quadratic
  program; equal weights are the usual simplification.
* BatchNorm. Source and target go through ``psi`` as *one* batch, so
  BatchNorm normalises them with shared statistics (the original
  implementations do the same). Separate batches would normalise each domain
  to zero mean per channel and hide from the MMD exactly the shift it must
  see.

Shape legend: ``B`` batch, ``D`` feature dimensions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from regdakit._validation import check_positive, check_tensor
from regdakit.methods import recipe
from regdakit.methods.common import check_source_loss, check_unlabelled, minimise, source_loss
from regdakit.methods.recipe import SGDRecipe
from regdakit.models import PoseResNet

__all__ = [
    "PARTS",
    "STEPS",
    "Config",
    "gaussian_kernel_sum",
    "make_optimizers",
    "mk_mmd",
    "pooled_features",
    "step",
]

#: DAN adds nothing to the detector.
PARTS = ()
#: One update (the schedules are the recipe's shared decay, the contract's default).
STEPS = {"A": "psi and f on source and target (supervised loss + MK-MMD)"}


@dataclass(frozen=True)
class Config(SGDRecipe):
    """DAN's hyper-parameters; the optimiser is RegDA's (:class:`~regdakit.methods.recipe.SGDRecipe`).

    Attributes:
        trade_off: Weight of the MK-MMD term.
        kernel_scales: Bandwidth multipliers ``scale_u`` of the Gaussian kernels (of the mean squared distance).
        source_loss: ``"kl"`` or ``"mse"`` for the supervised term.
    """

    trade_off: float = 1.0
    kernel_scales: tuple[float, ...] = (0.125, 0.25, 0.5, 1.0, 2.0)
    source_loss: str = "kl"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive("trade_off", self.trade_off, allow_zero=True)
        if not self.kernel_scales or any(not 0 < s < math.inf for s in self.kernel_scales):
            raise ValueError(f"kernel_scales must be finite positive numbers, got {self.kernel_scales}")
        check_source_loss(self.source_loss)


def pooled_features(psi: torch.Tensor) -> torch.Tensor:
    """``(B, C, H, W)`` features -> ``(B, C)`` spatial means (what DAN aligns here)."""
    check_tensor("psi", psi, ("B", "C", "H", "W"), finite=False)
    return psi.mean(dim=(2, 3))


def gaussian_kernel_sum(sq_distances: torch.Tensor, bandwidth: torch.Tensor, scales: Sequence[float]) -> torch.Tensor:
    """``Σ_u exp(-d² / (scale_u · bandwidth)) / U``: the multi-kernel of equal weights, elementwise.

    Args:
        sq_distances: Squared distances, any shape.
        bandwidth: Scalar base bandwidth (e.g. the mean squared distance).
        scales: The multipliers ``scale_u``.
    """
    return sum(torch.exp(-sq_distances / (s * bandwidth)) for s in scales) / len(scales)


def mk_mmd(source: torch.Tensor, target: torch.Tensor, scales: Sequence[float] = Config.kernel_scales) -> torch.Tensor:
    """Unbiased MK-MMD² between two samples (Gretton et al. 2012, Eq. 3; DAN Eq. 3).

    ``(1 / (m(m-1))) Σ_{i≠j} k(s_i, s_j) + (1 / (n(n-1))) Σ_{i≠j} k(t_i, t_j) - (2 / (mn)) Σ_{i,j} k(s_i, t_j)``,
    with :func:`gaussian_kernel_sum` as ``k`` and the base bandwidth the mean squared distance over all
    pairs of distinct points of the pooled sample (detached: the features cannot shrink the MMD by
    inflating the bandwidth). Unbiased, so it can be slightly negative when the distributions match.

    Args:
        source: ``(m, D)`` source features, ``m >= 2``.
        target: ``(n, D)`` target features, ``n >= 2``.
        scales: Bandwidth multipliers.

    Returns:
        Scalar tensor.

    >>> x = torch.tensor([[0.0], [1.0]])
    >>> round(float(mk_mmd(x, x)), 4)  # identical samples: the cross term also counts the pairs i = j
    -0.8504
    >>> round(float(mk_mmd(x, x + 10)), 4)  # far apart: within terms near 1, cross term small
    1.6055
    """
    check_tensor("source", source, ("m", "D"), finite=False)
    check_tensor("target", target, ("n", "D"), finite=False)
    m, n = len(source), len(target)
    if source.shape[1] != target.shape[1]:
        raise ValueError(f"source {tuple(source.shape)} and target {tuple(target.shape)} need the same D")
    if m < 2 or n < 2:
        raise ValueError(f"the unbiased MMD needs at least 2 points per domain, got {m} and {n}")
    both = torch.cat([source, target])  # (m + n, D)
    sq = torch.cdist(both, both).pow(2)  # (m + n, m + n)
    off_diagonal = ~torch.eye(m + n, dtype=torch.bool, device=sq.device)
    bandwidth = sq.detach()[off_diagonal].mean().clamp_min(1e-12)
    k = gaussian_kernel_sum(sq, bandwidth, scales)
    k_ss, k_tt, k_st = k[:m, :m], k[m:, m:], k[:m, m:]
    within_s = (k_ss.sum() - k_ss.diagonal().sum()) / (m * (m - 1))
    within_t = (k_tt.sum() - k_tt.diagonal().sum()) / (n * (n - 1))
    return within_s + within_t - 2 * k_st.mean()


def make_optimizers(model: PoseResNet, cfg: Config) -> dict[str, torch.optim.Optimizer]:
    """``{"psi", "head"}``: RegDA's SGD optimisers of the features and ``f``."""
    return recipe.make_optimizers(model, cfg, ("psi", "head"))


def step(
    model: PoseResNet,
    batch_s: Mapping[str, Any],
    batch_t: Mapping[str, Any],
    optimizers: Mapping[str, torch.optim.Optimizer],
    cfg: Config,
    it: int,
) -> dict[str, float]:
    """One DAN iteration: ``psi`` and ``f`` minimise ``L_src(f) + trade_off * MK-MMD²(pool psi_s, pool psi_t)``.

    Args:
        model: A :class:`PoseResNet` in train mode (``f'``, if any, is not used).
        batch_s: Labelled source batch: ``image (B, 3, H, W)``, ``heatmap (B, K, H/4, W/4)``, ``weight (B, K)``.
        batch_t: Unlabelled target batch: ``image (B, 3, H, W)``; label keys raise.
        optimizers: From :func:`make_optimizers`.
        cfg: Hyper-parameters.
        it: The iteration (unused; kept for the shared interface).

    Returns:
        ``{"A/source", "A/mmd"}``.
    """
    check_unlabelled(batch_t)
    m = len(batch_s["image"])
    psi = model.features(torch.cat([batch_s["image"], batch_t["image"]]))  # (m + n, C, H, W): one BatchNorm batch
    loss_src = source_loss(model.head(psi[:m]), batch_s["heatmap"], batch_s["weight"], cfg.source_loss)
    pooled = pooled_features(psi)
    mmd = mk_mmd(pooled[:m], pooled[m:], cfg.kernel_scales)
    loss = loss_src + cfg.trade_off * mmd
    minimise(loss, optimizers.values())
    values = torch.stack([loss_src.detach(), mmd.detach()]).tolist()
    return dict(zip(("A/source", "A/mmd"), values, strict=True))
