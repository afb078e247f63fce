"""RegDA (Jiang et al., CVPR 2021): the adaptation steps A, B and C after source-only pre-training.

Notation of the paper: ``psi`` the features (backbone + upsampling), ``f``
the main head, ``f'`` the adversarial head, ``H(ŷ)`` the ground-truth and
``P_F(ŷ)`` the ground-false pseudo-label of ``f``'s prediction ``ŷ`` (Eq. 1-2),
the ground-truth disparity ``L_T = KL(H(ŷ) || f')`` and the ground-false
disparity ``L_F = KL(P_F(ŷ) || f')``, both from :mod:`regdakit.disparity`
(this module holds the schedule, not the math). One iteration:

* A (source, everything trains): ``L_src(f) + margin * trade_off * L_T(f')``.
* B (target, ``psi`` and ``f`` fixed): ``f'`` minimises ``trade_off * L_F``; it
  learns to point where ``f`` would plausibly confuse a keypoint (the
  "maximise the disparity" half of the game, written as a minimisation).
* C (target, ``f`` and ``f'`` fixed): ``psi`` minimises ``trade_off * L_T``
  through the gradient-scaling layer; the features must make ``f'`` agree with
  ``f`` again, i.e. move away from the ground-false places.

Two schedules compute the same update (``Config.fused``):

* ``fused=True`` (default): one grad-enabled target forward of ``psi``. B
  trains ``f'`` on ``psi.detach()`` (only ``f'`` runs backward). C re-applies
  the *updated* ``f'`` to the same ``psi`` and back-propagates into ``psi``
  only, reusing B's pseudo-labels. Saves one backbone forward and one
  backbone backward per iteration.
* ``fused=False``: the reference's three passes (A on source; B a full target
  forward and backward of which only ``f'`` steps; C a second full target
  forward, only ``psi`` steps).

Why they agree: between B and C only ``f'`` changes. ``psi``'s weights are the
same and BatchNorm in train mode normalises with the *batch's* statistics, so
the second forward of the plain schedule recomputes exactly the ``psi`` (and
``f``'s prediction, hence the pseudo-labels) of the first; and its C pass
uses ``f'`` after B's update, as the fused step does. The one difference:
the plain schedule runs the target batch through the BatchNorm layers of
``psi`` and ``f`` twice, so their *running* statistics (used only at
evaluation) take two momentum updates from that batch instead of one, and
``num_batches_tracked`` counts 3 instead of 2 per iteration. ``f'``'s
BatchNorm runs twice in both schedules and matches. ``tests/test_methods.py``
checks all of this.

Target batches carry only ``image``: no target keypoints, visibility or
weights enter any loss (the reference weights ``L_T`` / ``L_F`` on the target
with annotated visibility, a label leak). A target batch with label keys is
rejected, so the rule is enforced by structure.

Shape legend: ``B`` batch, ``K`` keypoints, ``H x W`` heatmap cells (a quarter
of the image side).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from regdakit import disparity
from regdakit._validation import check_positive
from regdakit.disparity import Objective, ground_truth_loss, pseudo_labels
from regdakit.methods import recipe
from regdakit.methods.erm import source_loss
from regdakit.methods.recipe import SGDRecipe, minimise
from regdakit.models import PoseResNet

__all__ = [
    "ADVERSARIAL_HEAD",
    "LABEL_KEYS",
    "OBJECTIVES",
    "Config",
    "TargetPass",
    "make_optimizers",
    "make_schedulers",
    "step",
    "step_a",
    "step_b",
    "step_b_plain",
    "step_c",
    "step_c_plain",
    "target_pass",
]

#: RegDA's adversary is the head ``f'`` (the trainer builds the model with it).
ADVERSARIAL_HEAD = True

#: Keys of a labelled batch; none may appear in a target batch.
LABEL_KEYS = ("keypoints", "visible", "heatmap", "weight")


# --------------------------------------------------------------------------
# The target objectives. Table 2 of the paper ablates RegDA's pair; each
# variant is one entry of OBJECTIVES, selected by Config.objective:
#   "regda":     f' minimises L_F, psi minimises L_T (the paper's);
#   "dd":        f' maximises L_T, psi minimises L_T (Disparity Discrepancy; Table 2, 65.2 on RHD -> H3D);
#   "false_max": f' minimises L_F, psi maximises L_F (Table 2, 66.5).
# The objectives are regdakit.disparity's: a maximisation is the negated
# disparity, so every step minimises.
# --------------------------------------------------------------------------

#: name -> (step B's loss of ``f'``, step C's loss of ``psi``), each ``(y_t_adv, truth, false) -> loss``
#: (:data:`regdakit.disparity.Objective`). The step functions return these values, so for a variant
#: ``B_false`` / ``C_truth`` hold its own objective (e.g. ``-L_T`` in step B of ``"dd"``).
OBJECTIVES: dict[str, tuple[Objective, Objective]] = {
    "regda": (disparity.minimise_false, disparity.minimise_truth),
    "dd": (disparity.maximise_truth, disparity.minimise_truth),
    "false_max": (disparity.minimise_false, disparity.maximise_false),
}


@dataclass(frozen=True)
class Config(SGDRecipe):
    """RegDA's hyper-parameters, the reference's defaults.

    The optimiser fields (``lr``, ``head_lr``, ``momentum``, ``weight_decay``,
    ``nesterov``, ``lr_gamma``, ``lr_decay``) come from
    :class:`~regdakit.methods.recipe.SGDRecipe`, shared with the baselines.
    The warm-start schedule of the gradient-scaling layer (``lo`` 0, ``hi``
    0.1, ``alpha`` 1, ``N`` 1000) belongs to the model
    (:class:`regdakit.models.GradientScale`); ``step`` passes it the iteration.

    Attributes:
        margin: Weight of ``L_T`` on the source in step A (times ``trade_off``).
        trade_off: Weight of the target objectives (steps B and C).
        sigma: Width of the pseudo-label Gaussians, heatmap cells.
        warmup_iterations: ``N`` of the gradient-scaling layer's warm start ``λ = hi·tanh(α·i / (2N))``
            (the reference's 1000, for 15000 adaptation iterations). The trainer builds ``f'``'s
            :class:`~regdakit.models.GradientScale` with it; a short schedule should shorten it in
            proportion, or ``λ`` stays near 0 and the game never reaches ``psi``.
        source_loss: ``"kl"`` (the reference) or ``"mse"`` for the supervised source term.
        fused: One shared target forward for B and C (``True``) or the reference's three passes.
        objective: A key of :data:`OBJECTIVES`: ``"regda"``, or the Table-2 variants ``"dd"`` and ``"false_max"``.
    """

    margin: float = 4.0
    trade_off: float = 1.0
    sigma: float = 2.0
    warmup_iterations: int = 1000
    source_loss: str = "kl"
    fused: bool = True
    objective: str = "regda"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {sorted(OBJECTIVES)}, got {self.objective!r}")
        if self.source_loss not in ("kl", "mse"):
            raise ValueError(f"source_loss must be 'kl' or 'mse', got {self.source_loss!r}")
        for name in ("margin", "trade_off"):
            check_positive(name, getattr(self, name), allow_zero=True)
        if self.warmup_iterations < 1:
            raise ValueError(f"warmup_iterations must be >= 1, got {self.warmup_iterations}")
        check_positive("sigma", self.sigma)


def make_optimizers(
    model: PoseResNet, cfg: Config, players: tuple[str, ...] = ("psi", "head", "head_adv")
) -> dict[str, torch.optim.Optimizer]:
    """Three SGD optimisers, one per player: ``{"psi", "head", "head_adv"}``.

    Separate optimisers because each step updates a different subset: the
    alternating game has no single objective. ``players``
    picks a subset with the same recipe (the control has no ``f'``).

    Raises:
        ValueError: ``f'`` is asked for and the model has no adversarial head.
    """
    if "head_adv" in players and model.head_adv is None:
        raise ValueError("RegDA needs a model with an adversarial head f' (pose_resnet(..., adversarial=True))")
    return recipe.make_optimizers(model, cfg, players)


def make_schedulers(optimizers: Mapping[str, torch.optim.Optimizer], cfg: Config) -> dict[str, Any]:
    """Per-iteration decay ``(1 + lr_gamma * i) ** -lr_decay`` of every optimiser (the trainer steps them).

    The multiplier is 1.0 at 0, 0.738 at 5k and 0.503 at 15k iterations.
    """
    return recipe.make_schedulers(optimizers, cfg)


def _check_unlabelled(batch_t: Mapping[str, Any]) -> None:
    leaked = [key for key in LABEL_KEYS if key in batch_t]
    if leaked:
        raise ValueError(
            f"batch_t carries target labels {leaked}: RegDA never sees target labels; "
            "build the target stream without labels (labels=False)"
        )
    if "image" not in batch_t:
        raise ValueError(f"batch_t needs 'image', has {sorted(batch_t)}")


def _minimise(loss: torch.Tensor, optimizer: torch.optim.Optimizer, inputs: list[torch.Tensor] | None = None) -> None:
    """One optimiser's update (:func:`regdakit.methods.recipe.minimise` of a single player)."""
    minimise(loss, [optimizer], inputs)


def _params(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    return [p for group in optimizer.param_groups for p in group["params"]]


# --------------------------------------------------------------------------
# Step A: the source.
# --------------------------------------------------------------------------


def step_a(
    model: PoseResNet,
    batch_s: Mapping[str, Any],
    optimizers: Mapping[str, torch.optim.Optimizer],
    cfg: Config,
    it: int,
) -> dict[str, torch.Tensor]:
    """Step A: ``psi``, ``f``, ``f'`` minimise ``L_src(f) + margin * trade_off * L_T(f')`` on the source.

    ``L_T`` teaches ``f'`` to agree with ``f`` where ``f`` is trained, so that
    a disagreement on the target means "unfamiliar". Its pseudo-label comes
    from ``y_s.detach()`` (inside :func:`~regdakit.disparity.ground_truth_loss`):
    ``f`` learns only from the labels, never from ``f'``. The source visibility
    weights are labels we are allowed to use, so they weight both terms (as in
    the reference).

    Returns:
        Detached losses ``{"A_source", "A_truth"}``.
    """
    y_s, y_s_adv = model(batch_s["image"], step=it)  # (B, K, H, W) each
    loss_src = source_loss(y_s, batch_s["heatmap"], batch_s["weight"], cfg.source_loss)
    loss_truth = ground_truth_loss(y_s_adv, y_s, cfg.sigma, batch_s["weight"])
    loss = loss_src + cfg.margin * cfg.trade_off * loss_truth
    minimise(loss, optimizers.values())
    return {"A_source": loss_src.detach(), "A_truth": loss_truth.detach()}


# --------------------------------------------------------------------------
# Steps B and C, fused: one target forward.
# --------------------------------------------------------------------------


@dataclass
class TargetPass:
    """What steps B and C share in the fused schedule.

    Attributes:
        psi: ``(B, C, H, W)`` target features, grad-enabled (step C back-propagates into them).
        truth: ``(B, K, H, W)`` ground-truth pseudo-labels ``H(ŷ)`` of ``f``.
        false: ``(B, K, H, W)`` ground-false pseudo-labels ``H_F(ŷ)``.
    """

    psi: torch.Tensor
    truth: torch.Tensor
    false: torch.Tensor


def target_pass(model: PoseResNet, x_t: torch.Tensor, sigma: float = 2.0) -> TargetPass:
    """The single target forward of the fused schedule: ``psi(x_t)`` and ``f``'s pseudo-labels.

    ``f`` runs without a graph: no target loss trains ``f`` (B and C hold it
    fixed and the pseudo-labels are constants), so its backward would be waste.
    """
    psi = model.features(x_t)  # (B, C, H, W), with graph: step C needs it
    with torch.no_grad():
        y_t = model.head(psi.detach())  # (B, K, H, W)
    truth, false = pseudo_labels(y_t, sigma)
    return TargetPass(psi, truth, false)


def step_b(
    model: PoseResNet, target: TargetPass, optimizers: Mapping[str, torch.optim.Optimizer], cfg: Config
) -> torch.Tensor:
    """Step B, fused: ``f'`` minimises ``trade_off * L_F`` on ``psi.detach()``; only ``f'`` steps.

    Why detach: ``psi`` is fixed in B. The reference back-propagates B's loss
    through the whole backbone and then zeroes that gradient in C; detaching
    gives the same update of ``f'`` without the backbone backward. (Detached,
    the gradient-scaling layer would have nothing to scale, so ``f'`` is
    applied directly; the layer is the identity forward.)

    Returns:
        The detached loss ``L_F`` (without ``trade_off``).
    """
    loss_b, _ = OBJECTIVES[cfg.objective]
    y_t_adv = model.head_adv(target.psi.detach())  # (B, K, H, W)
    loss = loss_b(y_t_adv, target.truth, target.false)
    _minimise(cfg.trade_off * loss, optimizers["head_adv"])
    return loss.detach()


def step_c(
    model: PoseResNet, target: TargetPass, optimizers: Mapping[str, torch.optim.Optimizer], cfg: Config, it: int
) -> torch.Tensor:
    """Step C, fused: ``psi`` minimises ``trade_off * L_T`` through the *updated* ``f'``; only ``psi`` steps.

    ``f'`` must be re-applied after B's update (the reference's second forward
    uses it too), but ``psi`` need not be recomputed: its weights did not
    change since :func:`target_pass`. The pseudo-labels of B are reused:
    ``f``'s prediction is unchanged as well. ``backward(inputs=psi's
    parameters)`` skips the gradient of ``f'``'s weights, which nothing uses
    (the reference computes it and zeroes it at the next step A). The gradient
    into ``psi`` passes the gradient-scaling layer with ``λ(it)``, the same
    ``λ`` as in steps A and B of this iteration (the reference advances its
    counter once, after C).

    Returns:
        The detached loss ``L_T`` (without ``trade_off``).
    """
    _, loss_c = OBJECTIVES[cfg.objective]
    y_t_adv = model.head_adv(model.gradient_scale(target.psi, it))  # (B, K, H, W)
    loss = loss_c(y_t_adv, target.truth, target.false)
    opt = optimizers["psi"]
    _minimise(cfg.trade_off * loss, opt, inputs=_params(opt))
    return loss.detach()


# --------------------------------------------------------------------------
# Steps B and C, plain: the reference's two full target passes.
# --------------------------------------------------------------------------


def _plain_target(model: PoseResNet, x_t: torch.Tensor, cfg: Config, it: int) -> tuple[torch.Tensor, ...]:
    y_t, y_t_adv = model(x_t, step=it)  # full forward: backbone, upsampling, both heads
    truth, false = pseudo_labels(y_t, cfg.sigma)  # from y_t.detach(): f gets no gradient
    return y_t_adv, truth, false


def step_b_plain(
    model: PoseResNet, x_t: torch.Tensor, optimizers: Mapping[str, torch.optim.Optimizer], cfg: Config, it: int
) -> torch.Tensor:
    """Step B as the reference runs it: full forward and backward, only ``f'`` steps.

    The backward also fills ``psi``'s gradients (scaled by ``λ``); they are
    discarded by step C's ``zero_grad``. Kept as the reference for the
    equivalence test and the step-time benchmark.
    """
    loss_b, _ = OBJECTIVES[cfg.objective]
    y_t_adv, truth, false = _plain_target(model, x_t, cfg, it)
    loss = loss_b(y_t_adv, truth, false)
    _minimise(cfg.trade_off * loss, optimizers["head_adv"])
    return loss.detach()


def step_c_plain(
    model: PoseResNet, x_t: torch.Tensor, optimizers: Mapping[str, torch.optim.Optimizer], cfg: Config, it: int
) -> torch.Tensor:
    """Step C as the reference runs it: a second full target forward, only ``psi`` steps."""
    _, loss_c = OBJECTIVES[cfg.objective]
    y_t_adv, truth, false = _plain_target(model, x_t, cfg, it)
    loss = loss_c(y_t_adv, truth, false)
    _minimise(cfg.trade_off * loss, optimizers["psi"])
    return loss.detach()


def step(
    model: PoseResNet,
    batch_s: Mapping[str, Any],
    batch_t: Mapping[str, Any],
    optimizers: Mapping[str, torch.optim.Optimizer],
    cfg: Config,
    it: int,
) -> dict[str, float]:
    """One RegDA iteration: steps A, B and C.

    Args:
        model: A :class:`PoseResNet` with ``f'``, in train mode.
        batch_s: Labelled source batch: ``image (B, 3, H, W)``, ``heatmap (B, K, H/4, W/4)``, ``weight (B, K)``.
        batch_t: Unlabelled target batch: ``image (B, 3, H, W)`` (and ``meta``); label keys raise.
        optimizers: From :func:`make_optimizers`.
        cfg: Hyper-parameters; ``cfg.fused`` picks the schedule.
        it: The iteration, 0-based; sets the warm-start ``λ`` of all three passes.

    Returns:
        ``{"A_source", "A_truth", "B_false", "C_truth"}``: the supervised loss, ``L_T`` on the
        source, ``L_F`` and ``L_T`` on the target (unweighted by ``margin`` / ``trade_off``).

    Raises:
        ValueError: ``batch_t`` carries labels.
    """
    _check_unlabelled(batch_t)
    losses = step_a(model, batch_s, optimizers, cfg, it)
    x_t = batch_t["image"]
    if cfg.fused:
        target = target_pass(model, x_t, cfg.sigma)
        losses["B_false"] = step_b(model, target, optimizers, cfg)
        losses["C_truth"] = step_c(model, target, optimizers, cfg, it)
    else:
        losses["B_false"] = step_b_plain(model, x_t, optimizers, cfg, it)
        losses["C_truth"] = step_c_plain(model, x_t, optimizers, cfg, it)
    # One device-to-host copy for all losses: a single sync per iteration.
    values = torch.stack([v.to(torch.float64) for v in losses.values()]).tolist()
    return dict(zip(losses, values, strict=True))
