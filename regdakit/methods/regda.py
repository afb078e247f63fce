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

The gradient-scaling layer between ``psi`` and ``f'`` multiplies the gradient
by the warm-start ``λ(it) = 0.1·tanh(it / (2N))`` (:func:`warm_start`): the
schedule is RegDA's, applied by its steps (:func:`regdakit.models.scale_gradient`);
the model keeps no state about it. The horizon ``N`` scales with the run
(:func:`warmup_horizon`): the reference's ``N`` = 1000 for its 15000
adaptation iterations is the share :data:`WARMUP_SHARE` = 1/15 of the run,
so ``N`` = 13 for 200 iterations and 133 for 2000 (a fixed 1000 would leave
``λ`` < 0.01 through a 200-iteration run: the game would never reach
``psi``); ``Config.warmup_iterations`` fixes ``N`` instead. The
pseudo-labels are Gaussians of the run's heatmap width ``sigma`` (the width of
the training targets). Both run-level values, ``sigma`` and
``adapt_iterations``, are passed to :func:`step` (:data:`RUN_SETTINGS`).

The objectives of steps B and C are a pair of :data:`regdakit.disparity.Objective`;
:func:`iteration` runs the schedule with any pair: RegDA's own and its Table-2
variant ``false_max`` (:data:`OBJECTIVES`, ``Config.objective``), and DD's
(:mod:`regdakit.methods.dd`).

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
rejected (:func:`regdakit.methods.common.check_unlabelled`), so the rule is
enforced by structure.

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
from regdakit.methods.common import check_source_loss, check_unlabelled, minimise, parameters, source_loss
from regdakit.methods.recipe import SGDRecipe
from regdakit.models import PoseResNet, scale_gradient, warm_start_lambda

__all__ = [
    "OBJECTIVES",
    "PARTS",
    "RUN_SETTINGS",
    "STEPS",
    "Config",
    "TargetPass",
    "WARMUP_SHARE",
    "iteration",
    "make_optimizers",
    "step",
    "step_a",
    "step_b",
    "step_b_plain",
    "step_c",
    "step_c_plain",
    "target_pass",
    "warm_start",
    "warmup_horizon",
]

#: RegDA's adversary is the head ``f'`` (the trainer builds the model with it).
PARTS = ("head_adv",)

#: The updates of one iteration (the keys of what :func:`step` returns start with these letters).
STEPS = {
    "A": "psi, f and f' on the source",
    "B": "f' on the target, psi and f fixed",
    "C": "psi on the target through the gradient-scaling layer, f and f' fixed",
}

#: The run-level settings :func:`step` takes as keywords: the pseudo-labels are Gaussians of the run's heatmap
#: width ``sigma``, and the warm start's horizon is a share of the run's ``adapt_iterations``.
RUN_SETTINGS = ("sigma", "adapt_iterations")

#: The warm start's horizon ``N`` as a share of the adaptation run: the reference's 1000 of 15000 iterations.
WARMUP_SHARE = 1000 / recipe.REFERENCE_ADAPT_ITERATIONS


# --------------------------------------------------------------------------
# The target objectives. Table 2 of the paper ablates RegDA's pair; RegDA's
# variants are entries of OBJECTIVES, selected by Config.objective:
#   "regda":     f' minimises L_F, psi minimises L_T (the paper's);
#   "false_max": f' minimises L_F, psi maximises L_F (Table 2, 66.5).
# Table 2's first row, f' maximises L_T (Disparity Discrepancy, 65.2 on
# RHD -> H3D), is its own method: regdakit.methods.dd_unbounded; the
# keypoint DD baseline, regdakit.methods.dd, bounds its adversary.
# The objectives are regdakit.disparity's: a maximisation is the negated
# disparity, so every step minimises.
# --------------------------------------------------------------------------

#: name -> (step B's loss of ``f'``, step C's loss of ``psi``), each ``(y_t_adv, truth, false) -> loss``
#: (:data:`regdakit.disparity.Objective`). The steps return these values, so ``"B/adversary"`` /
#: ``"C/features"`` hold the variant's own objective (e.g. ``-L_F`` in step C of ``"false_max"``).
OBJECTIVES: dict[str, tuple[Objective, Objective]] = {
    "regda": (disparity.minimise_false, disparity.minimise_truth),
    "false_max": (disparity.minimise_false, disparity.maximise_false),
}


@dataclass(frozen=True)
class Config(SGDRecipe):
    """RegDA's hyper-parameters, the reference's defaults.

    The optimiser fields (``lr``, ``head_lr``, ``momentum``, ``weight_decay``,
    ``nesterov``, ``lr_gamma``, ``lr_decay``) come from
    :class:`~regdakit.methods.recipe.SGDRecipe`, shared with the baselines.
    The pseudo-labels' width is the run's heatmap ``sigma`` (one setting for
    the training targets and the pseudo-labels), not a field here.

    Attributes:
        margin: Weight of ``L_T`` on the source in step A (times ``trade_off``).
        trade_off: Weight of the target objectives (steps B and C).
        warmup_iterations: ``N`` of the gradient-scaling layer's warm start ``λ = hi·tanh(α·i / (2N))``
            (``hi`` 0.1, ``α`` 1), applied by the steps (:func:`warm_start`). ``None`` (default): the
            reference's share of the run, ``round(adapt_iterations / 15)`` (:func:`warmup_horizon`: 1000 for
            the reference's 15000 iterations, 13 for 200), so the warm start scales with the budget; a number
            fixes ``N`` whatever the run's length.
        source_loss: ``"kl"`` (the reference) or ``"mse"`` for the supervised source term.
        fused: One shared target forward for B and C (``True``) or the reference's three passes.
        objective: RegDA's pair of target objectives, a key of :data:`OBJECTIVES`: ``"regda"`` (the paper's)
            or the Table-2 variant ``"false_max"``. Table 2's DD row is ``--method dd_unbounded`` (the
            bounded DD baseline: ``--method dd``).
    """

    margin: float = 4.0
    trade_off: float = 1.0
    warmup_iterations: int | None = None
    source_loss: str = "kl"
    fused: bool = True
    objective: str = "regda"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.objective == "dd":
            raise ValueError(
                "objective 'dd' is not a RegDA variant: Disparity Discrepancy is its own method, "
                "run --method dd (bounded adversary) or --method dd_unbounded (Table 2's row)"
            )
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {sorted(OBJECTIVES)}, got {self.objective!r}")
        check_source_loss(self.source_loss)
        for name in ("margin", "trade_off"):
            check_positive(name, getattr(self, name), allow_zero=True)
        if self.warmup_iterations is not None and self.warmup_iterations < 1:
            raise ValueError(
                f"warmup_iterations must be >= 1 (or None: scaled to the run), got {self.warmup_iterations}"
            )


def warmup_horizon(cfg: Config, adapt_iterations: int = recipe.REFERENCE_ADAPT_ITERATIONS) -> int:
    """The warm start's ``N``: ``cfg.warmup_iterations``, or :data:`WARMUP_SHARE` of ``adapt_iterations``.

    >>> warmup_horizon(Config(), 15000), warmup_horizon(Config(), 200), warmup_horizon(Config(warmup_iterations=7), 200)
    (1000, 13, 7)
    """
    if cfg.warmup_iterations is not None:
        return cfg.warmup_iterations
    return recipe.horizon(WARMUP_SHARE, adapt_iterations)


def warm_start(cfg: Config, it: int, adapt_iterations: int = recipe.REFERENCE_ADAPT_ITERATIONS) -> float:
    """``λ`` of the gradient-scaling layer at iteration ``it``: ``0.1·tanh(it / (2N))``, ``N`` = :func:`warmup_horizon`.

    >>> round(warm_start(Config(), 1000), 4), round(warm_start(Config(), 13, adapt_iterations=200), 4)
    (0.0462, 0.0462)
    """
    return warm_start_lambda(it, max_steps=warmup_horizon(cfg, adapt_iterations))


def make_optimizers(
    model: PoseResNet, cfg: Config, players: tuple[str, ...] = ("psi", "head", "head_adv")
) -> dict[str, torch.optim.Optimizer]:
    """Three SGD optimisers, one per player: ``{"psi", "head", "head_adv"}``.

    Separate optimisers because each step updates a different subset: the
    alternating game has no single objective. ``players``
    picks a subset with the same recipe (the control has no ``f'``).
    The schedules are the recipe's shared decay (the contract's default).

    Raises:
        ValueError: ``f'`` is asked for and the model has no adversarial head.
    """
    if "head_adv" in players and model.head_adv is None:
        raise ValueError("RegDA needs a model with an adversarial head f' (pose_resnet(..., adversarial=True))")
    return recipe.make_optimizers(model, cfg, players)


def _both_heads(model: PoseResNet, psi: torch.Tensor, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(f(psi), f'(scale_λ(psi)))``: the gradient from ``f'`` reaches ``psi`` times ``λ``, ``f``'s in full."""
    return model.head(psi), model.head_adv(scale_gradient(psi, lam))


# --------------------------------------------------------------------------
# Step A: the source.
# --------------------------------------------------------------------------


def step_a(
    model: PoseResNet,
    batch_s: Mapping[str, Any],
    optimizers: Mapping[str, torch.optim.Optimizer],
    cfg: Config,
    it: int,
    *,
    sigma: float = 2.0,
    adapt_iterations: int = recipe.REFERENCE_ADAPT_ITERATIONS,
) -> dict[str, torch.Tensor]:
    """Step A: ``psi``, ``f``, ``f'`` minimise ``L_src(f) + margin * trade_off * L_T(f')`` on the source.

    ``L_T`` teaches ``f'`` to agree with ``f`` where ``f`` is trained, so that
    a disagreement on the target means "unfamiliar". Its pseudo-label comes
    from ``y_s.detach()`` (inside :func:`~regdakit.disparity.ground_truth_loss`):
    ``f`` learns only from the labels, never from ``f'``. The source visibility
    weights are labels we are allowed to use, so they weight both terms (as in
    the reference).

    Returns:
        Detached losses ``{"A/source", "A/truth"}``.
    """
    psi_s = model.features(batch_s["image"])  # (B, C, H, W)
    y_s, y_s_adv = _both_heads(model, psi_s, warm_start(cfg, it, adapt_iterations))  # (B, K, H, W) each
    loss_src = source_loss(y_s, batch_s["heatmap"], batch_s["weight"], cfg.source_loss)
    loss_truth = ground_truth_loss(y_s_adv, y_s, sigma, batch_s["weight"])
    loss = loss_src + cfg.margin * cfg.trade_off * loss_truth
    minimise(loss, optimizers.values())
    return {"A/source": loss_src.detach(), "A/truth": loss_truth.detach()}


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
    """The single target forward of the fused schedule: ``psi(x_t)`` and ``f``'s pseudo-labels of width ``sigma``.

    ``f`` runs without a graph: no target loss trains ``f`` (B and C hold it
    fixed and the pseudo-labels are constants), so its backward would be waste.
    """
    psi = model.features(x_t)  # (B, C, H, W), with graph: step C needs it
    with torch.no_grad():
        y_t = model.head(psi.detach())  # (B, K, H, W)
    truth, false = pseudo_labels(y_t, sigma)
    return TargetPass(psi, truth, false)


def step_b(
    model: PoseResNet,
    target: TargetPass,
    optimizers: Mapping[str, torch.optim.Optimizer],
    cfg: Config,
    objective: Objective,
) -> torch.Tensor:
    """Step B, fused: ``f'`` minimises ``trade_off * objective`` on ``psi.detach()``; only ``f'`` steps.

    ``objective`` is the first of a pair (RegDA's ``L_F``). Why detach: ``psi``
    is fixed in B. The reference back-propagates B's loss through the whole
    backbone and then zeroes that gradient in C; detaching gives the same
    update of ``f'`` without the backbone backward. (Detached, the
    gradient-scaling layer would have nothing to scale, so ``f'`` is applied
    directly; the layer is the identity forward.)

    Returns:
        The detached objective (without ``trade_off``).
    """
    y_t_adv = model.head_adv(target.psi.detach())  # (B, K, H, W)
    loss = objective(y_t_adv, target.truth, target.false)
    minimise(cfg.trade_off * loss, [optimizers["head_adv"]])
    return loss.detach()


def step_c(
    model: PoseResNet,
    target: TargetPass,
    optimizers: Mapping[str, torch.optim.Optimizer],
    cfg: Config,
    it: int,
    objective: Objective,
    *,
    adapt_iterations: int = recipe.REFERENCE_ADAPT_ITERATIONS,
) -> torch.Tensor:
    """Step C, fused: ``psi`` minimises ``trade_off * objective`` through the *updated* ``f'``; only ``psi`` steps.

    ``objective`` is the second of a pair (RegDA's ``L_T``). ``f'`` must be
    re-applied after B's update (the reference's second forward uses it too),
    but ``psi`` need not be recomputed: its weights did not change since
    :func:`target_pass`. The pseudo-labels of B are reused: ``f``'s prediction
    is unchanged as well. ``backward(inputs=psi's parameters)`` skips the
    gradient of ``f'``'s weights, which nothing uses (the reference computes it
    and zeroes it at the next step A). The gradient into ``psi`` passes the
    gradient-scaling layer with ``λ(it)``, the same ``λ`` as in steps A and B
    of this iteration (the reference advances its counter once, after C).

    Returns:
        The detached objective (without ``trade_off``).
    """
    y_t_adv = model.head_adv(scale_gradient(target.psi, warm_start(cfg, it, adapt_iterations)))  # (B, K, H, W)
    loss = objective(y_t_adv, target.truth, target.false)
    opt = optimizers["psi"]
    minimise(cfg.trade_off * loss, [opt], inputs=parameters(opt))
    return loss.detach()


# --------------------------------------------------------------------------
# Steps B and C, plain: the reference's two full target passes.
# --------------------------------------------------------------------------


def _plain_target(
    model: PoseResNet, x_t: torch.Tensor, cfg: Config, it: int, sigma: float, adapt_iterations: int
) -> tuple[torch.Tensor, ...]:
    psi = model.features(x_t)  # full forward: backbone, upsampling, both heads
    y_t, y_t_adv = _both_heads(model, psi, warm_start(cfg, it, adapt_iterations))
    truth, false = pseudo_labels(y_t, sigma)  # from y_t.detach(): f gets no gradient
    return y_t_adv, truth, false


def step_b_plain(
    model: PoseResNet,
    x_t: torch.Tensor,
    optimizers: Mapping[str, torch.optim.Optimizer],
    cfg: Config,
    it: int,
    objective: Objective,
    *,
    sigma: float = 2.0,
    adapt_iterations: int = recipe.REFERENCE_ADAPT_ITERATIONS,
) -> torch.Tensor:
    """Step B as the reference runs it: full forward and backward, only ``f'`` steps.

    The backward also fills ``psi``'s gradients (scaled by ``λ``); they are
    discarded by step C's ``zero_grad``. Kept as the reference for the
    equivalence test and the step-time benchmark.
    """
    y_t_adv, truth, false = _plain_target(model, x_t, cfg, it, sigma, adapt_iterations)
    loss = objective(y_t_adv, truth, false)
    minimise(cfg.trade_off * loss, [optimizers["head_adv"]])
    return loss.detach()


def step_c_plain(
    model: PoseResNet,
    x_t: torch.Tensor,
    optimizers: Mapping[str, torch.optim.Optimizer],
    cfg: Config,
    it: int,
    objective: Objective,
    *,
    sigma: float = 2.0,
    adapt_iterations: int = recipe.REFERENCE_ADAPT_ITERATIONS,
) -> torch.Tensor:
    """Step C as the reference runs it: a second full target forward, only ``psi`` steps."""
    y_t_adv, truth, false = _plain_target(model, x_t, cfg, it, sigma, adapt_iterations)
    loss = objective(y_t_adv, truth, false)
    minimise(cfg.trade_off * loss, [optimizers["psi"]])
    return loss.detach()


def iteration(
    model: PoseResNet,
    batch_s: Mapping[str, Any],
    batch_t: Mapping[str, Any],
    optimizers: Mapping[str, torch.optim.Optimizer],
    cfg: Config,
    it: int,
    objectives: tuple[Objective, Objective],
    *,
    sigma: float = 2.0,
    adapt_iterations: int = recipe.REFERENCE_ADAPT_ITERATIONS,
) -> dict[str, float]:
    """Steps A, B and C with the given pair of target objectives: the schedule RegDA and DD share.

    Args:
        model: A :class:`PoseResNet` with ``f'``, in train mode.
        batch_s: Labelled source batch: ``image (B, 3, H, W)``, ``heatmap (B, K, H/4, W/4)``, ``weight (B, K)``.
        batch_t: Unlabelled target batch: ``image (B, 3, H, W)`` (and ``meta``); label keys raise.
        optimizers: From :func:`make_optimizers`.
        cfg: Hyper-parameters; ``cfg.fused`` picks the schedule (``cfg.objective`` is not read here).
        it: The iteration, 0-based; sets the warm-start ``λ`` of all three passes.
        objectives: ``(step B's loss of f', step C's loss of psi)``.
        sigma: Width of the pseudo-labels' Gaussians, heatmap cells (the run's ``sigma``).
        adapt_iterations: The run's length, which sets the warm start's horizon (:func:`warmup_horizon`);
            the reference's 15000 when not given.

    Returns:
        ``{"A/source", "A/truth", "B/adversary", "C/features"}``: the supervised loss, ``L_T`` on the
        source, and the two target objectives (unweighted by ``margin`` / ``trade_off``).

    Raises:
        ValueError: ``batch_t`` carries labels.
    """
    check_unlabelled(batch_t)
    loss_b, loss_c = objectives
    run = {"adapt_iterations": adapt_iterations}
    losses = step_a(model, batch_s, optimizers, cfg, it, sigma=sigma, **run)
    x_t = batch_t["image"]
    if cfg.fused:
        target = target_pass(model, x_t, sigma)
        losses["B/adversary"] = step_b(model, target, optimizers, cfg, loss_b)
        losses["C/features"] = step_c(model, target, optimizers, cfg, it, loss_c, **run)
    else:
        losses["B/adversary"] = step_b_plain(model, x_t, optimizers, cfg, it, loss_b, sigma=sigma, **run)
        losses["C/features"] = step_c_plain(model, x_t, optimizers, cfg, it, loss_c, sigma=sigma, **run)
    # One device-to-host copy for all losses: a single sync per iteration.
    values = torch.stack([v.to(torch.float64) for v in losses.values()]).tolist()
    return dict(zip(losses, values, strict=True))


def step(
    model: PoseResNet,
    batch_s: Mapping[str, Any],
    batch_t: Mapping[str, Any],
    optimizers: Mapping[str, torch.optim.Optimizer],
    cfg: Config,
    it: int,
    *,
    sigma: float = 2.0,
    adapt_iterations: int = recipe.REFERENCE_ADAPT_ITERATIONS,
) -> dict[str, float]:
    """One RegDA iteration: :func:`iteration` with the pair ``OBJECTIVES[cfg.objective]``.

    Returns:
        ``{"A/source", "A/truth", "B/adversary", "C/features"}``; for RegDA's own pair ``B/adversary`` is
        ``L_F`` and ``C/features`` is ``L_T`` on the target.
    """
    pair = OBJECTIVES[cfg.objective]
    return iteration(model, batch_s, batch_t, optimizers, cfg, it, pair, sigma=sigma, adapt_iterations=adapt_iterations)
