"""MCD (Saito et al., CVPR 2018, "Maximum Classifier Discrepancy") adapted to heatmap regression.

MCD trains two classifiers ``F1``, ``F2`` on the features ``G``; on the target,
the classifiers *maximise* their discrepancy and the features *minimise* it,
so target features move where both classifiers agree (MCD Eq. 2-5). For
keypoints the classifiers are the two heads ``f`` and ``f'`` of
:class:`~regdakit.models.PoseResNet` and the "classes" are the ``H·W`` cells
of each keypoint's heatmap. One iteration, every step a minimisation:

* A (source, everything trains): ``L_src(f) + L_src(f')`` (MCD Eq. 2: both heads learn the labels).
* B (``psi`` fixed): the heads minimise ``L_src(f) + L_src(f') - trade_off * d(f(psi_t), f'(psi_t))``
  (MCD Eq. 3-4: keep the source right, disagree on the target).
* C (the heads fixed): ``psi`` minimises ``trade_off * d(f(psi_t), f'(psi_t))`` (MCD Eq. 5),
  ``feature_steps`` times.

Choices the keypoint version forces (the MCD paper has classes, not heatmaps):

* The discrepancy ``d`` (:func:`regdakit.losses.heatmap_discrepancy`, re-exported here) is the L1 distance
  between the two heads' *spatial* softmax distributions, summed over the
  cells and averaged over keypoints and images: MCD's ``|p1 - p2|`` with the
  ``H·W`` cells as classes. MCD averages over its ~10 classes; averaging over
  1024 cells would shrink the term 1000-fold, so the sum is taken (``d`` in
  [0, 2], twice the total-variation distance).
* ``f'`` is applied to ``psi`` directly: in MCD both classifiers are equal
  players, so RegDA's gradient-scaling layer between ``psi`` and ``f'`` is
  not used. ``f'`` starts from random weights after pre-training and learns
  the labels in step A (MCD trains both classifiers on the source).
* ``feature_steps`` (MCD's ``n``, 4 on digits) defaults to 1: the budget of
  the comparison is RegDA's, one target backbone forward and backward per
  iteration. The first C step reuses step B's target forward of ``psi``
  (``psi``'s weights have not changed in between), as RegDA's fused step does;
  later ones recompute it.
* Target batches carry no labels; none are used (checked, as in RegDA).

Shape legend: ``B`` batch, ``K`` keypoints, ``H x W`` heatmap cells.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from regdakit._validation import check_positive
from regdakit.losses import heatmap_discrepancy
from regdakit.methods import recipe
from regdakit.methods.common import check_source_loss, check_unlabelled, minimise, parameters, source_loss
from regdakit.methods.recipe import SGDRecipe
from regdakit.models import PoseResNet

__all__ = [
    "PARTS",
    "STEPS",
    "Config",
    "heatmap_discrepancy",
    "make_optimizers",
    "step",
    "step_a",
    "step_b",
    "step_c",
]

#: MCD's second classifier is the head ``f'`` (the trainer builds the model with it).
PARTS = ("head_adv",)
#: The updates of one iteration (MCD Eq. 2, 3-4 and 5).
STEPS = {
    "A": "psi, f and f' on the source",
    "B": "f and f' on the source and the target, psi fixed",
    "C": "psi on the target, f and f' fixed",
}


@dataclass(frozen=True)
class Config(SGDRecipe):
    """MCD's hyper-parameters; the optimiser is RegDA's (:class:`~regdakit.methods.recipe.SGDRecipe`).

    Attributes:
        trade_off: Weight of the target discrepancy in steps B and C.
        feature_steps: Step C repetitions per iteration (MCD's ``n``).
        source_loss: ``"kl"`` or ``"mse"`` for both heads' supervised term.
    """

    trade_off: float = 1.0
    feature_steps: int = 1
    source_loss: str = "kl"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive("trade_off", self.trade_off, allow_zero=True)
        if self.feature_steps < 1:
            raise ValueError(f"feature_steps must be >= 1, got {self.feature_steps}")
        check_source_loss(self.source_loss)


def make_optimizers(model: PoseResNet, cfg: Config) -> dict[str, torch.optim.Optimizer]:
    """``{"psi", "head", "head_adv"}``: one SGD optimiser per player (RegDA's rates)."""
    return recipe.make_optimizers(model, cfg, ("psi", "head", "head_adv"))


def _both_heads_source(model: PoseResNet, psi_s: torch.Tensor, batch_s: Mapping[str, Any], cfg: Config) -> torch.Tensor:
    heatmap, weight = batch_s["heatmap"], batch_s["weight"]
    return source_loss(model.head(psi_s), heatmap, weight, cfg.source_loss) + source_loss(
        model.head_adv(psi_s), heatmap, weight, cfg.source_loss
    )


def step_a(
    model: PoseResNet, batch_s: Mapping[str, Any], optimizers: Mapping[str, torch.optim.Optimizer], cfg: Config
) -> torch.Tensor:
    """Step A: ``psi``, ``f`` and ``f'`` minimise ``L_src(f) + L_src(f')`` on the source (MCD Eq. 2).

    Returns:
        The detached loss.
    """
    loss = _both_heads_source(model, model.features(batch_s["image"]), batch_s, cfg)
    minimise(loss, optimizers.values())
    return loss.detach()


def step_b(
    model: PoseResNet,
    batch_s: Mapping[str, Any],
    psi_s: torch.Tensor,
    psi_t: torch.Tensor,
    optimizers: Mapping[str, torch.optim.Optimizer],
    cfg: Config,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Step B, ``psi`` fixed: the heads minimise ``L_src(f) + L_src(f') - trade_off * d`` (MCD Eq. 3-4).

    Args:
        model: The detector with ``f'``.
        batch_s: The labelled source batch (``heatmap``, ``weight``).
        psi_s: ``(B, C, H, W)`` source features of the current ``psi`` (no graph needed).
        psi_t: ``(B, C, H, W)`` target features (used detached here; step C may reuse them with their graph).
        optimizers: ``head`` and ``head_adv`` step.
        cfg: Hyper-parameters.

    Returns:
        The detached ``(L_src(f) + L_src(f'), d)`` on this batch before the update.
    """
    loss_src = _both_heads_source(model, psi_s, batch_s, cfg)
    disc = heatmap_discrepancy(model.head(psi_t.detach()), model.head_adv(psi_t.detach()))
    heads = [optimizers["head"], optimizers["head_adv"]]
    minimise(loss_src - cfg.trade_off * disc, heads)
    return loss_src.detach(), disc.detach()


def step_c(
    model: PoseResNet, psi_t: torch.Tensor, optimizers: Mapping[str, torch.optim.Optimizer], cfg: Config
) -> torch.Tensor:
    """Step C, the heads fixed: ``psi`` minimises ``trade_off * d(f(psi_t), f'(psi_t))`` (MCD Eq. 5).

    ``backward(inputs=psi's parameters)``: the heads' gradients are not even computed.

    Args:
        model: The detector with ``f'``.
        psi_t: ``(B, C, H, W)`` target features *with* their graph, computed by the current ``psi``.
        optimizers: ``psi`` steps.
        cfg: Hyper-parameters.

    Returns:
        The detached ``d`` before the update.
    """
    disc = heatmap_discrepancy(model.head(psi_t), model.head_adv(psi_t))
    opt = optimizers["psi"]
    minimise(cfg.trade_off * disc, [opt], inputs=parameters(opt))
    return disc.detach()


def step(
    model: PoseResNet,
    batch_s: Mapping[str, Any],
    batch_t: Mapping[str, Any],
    optimizers: Mapping[str, torch.optim.Optimizer],
    cfg: Config,
    it: int,
) -> dict[str, float]:
    """One MCD iteration: steps A, B and C (``feature_steps`` times).

    Args:
        model: A :class:`PoseResNet` with ``f'``, in train mode.
        batch_s: Labelled source batch: ``image (B, 3, H, W)``, ``heatmap (B, K, H/4, W/4)``, ``weight (B, K)``.
        batch_t: Unlabelled target batch: ``image (B, 3, H, W)``; label keys raise.
        optimizers: From :func:`make_optimizers`.
        cfg: Hyper-parameters.
        it: The iteration (unused: no warm-up; kept for the shared interface).

    Returns:
        ``{"A/source", "B/source", "B/discrepancy", "C/discrepancy"}``: both heads' source loss in A and B,
        the target discrepancy the heads maximised in B, and the one ``psi`` minimised in (the last) C.
    """
    check_unlabelled(batch_t)
    if model.head_adv is None:
        raise ValueError("MCD needs a model with a second head f' (pose_resnet(..., adversarial=True))")
    loss_a = step_a(model, batch_s, optimizers, cfg)
    with torch.no_grad():  # psi is fixed in B: its source features need no graph
        psi_s = model.features(batch_s["image"])
    psi_t = model.features(batch_t["image"])  # (B, C, H, W), with graph: the first step C reuses it
    loss_b, disc_b = step_b(model, batch_s, psi_s, psi_t, optimizers, cfg)
    for k in range(cfg.feature_steps):
        disc_c = step_c(model, psi_t if k == 0 else model.features(batch_t["image"]), optimizers, cfg)
    values = torch.stack([loss_a, loss_b, disc_b, disc_c]).tolist()
    return dict(zip(("A/source", "B/source", "B/discrepancy", "C/discrepancy"), values, strict=True))
