"""DANN (Ganin et al., JMLR 2016, "Domain-Adversarial Training of Neural Networks") for heatmaps.

A domain discriminator ``D`` learns to tell source features from target
features; a gradient-reversal layer between the features and ``D`` makes the
features learn to fool it (DANN Eq. 9-10 and Algorithm 1). One backward
serves both players: every parameter minimises

    L_src(f) + trade_off * BCE(D(R_λ(pool psi)), domain)

where ``R_λ`` is the identity forward and multiplies the gradient by ``-λ``
backward, so ``D`` descends the domain loss and ``psi`` ascends it.

Choices the keypoint version forces:

* Where ``D`` sits. On the spatially average-pooled ``psi`` (``(B, C)``): an
  image-level domain classifier, as DANN's on its bottleneck features. A
  per-cell discriminator on the ``H x W`` map would also see *where* the
  keypoints are, which differs between images and is not domain shift.
  ``D`` is ``Linear -> BatchNorm -> ReLU`` twice and a linear logit
  (``hidden`` units), attached to the model as ``model.domain_discriminator``
  (:func:`prepare`) so checkpoints and resume carry it.
* The reversal schedule. DANN's ``λ_p = 2 / (1 + exp(-10 p)) - 1 = tanh(5 p)``
  over training progress ``p`` (:func:`reversal_lambda`): ``p = it / T``, the
  horizon ``T`` the whole adaptation run by default (:func:`reversal_horizon`:
  :data:`REVERSAL_SHARE` of the run's ``adapt_iterations``, which the trainer
  passes to :func:`step`), as DANN's ``p`` runs over its whole training; so
  ``λ`` passes 0.9 at 30 % of the run whatever its length.
  ``Config.reversal_iterations`` fixes ``T`` instead.
* The weight. ``trade_off`` defaults to 0.1, not DANN's 1: adapting the
  shipped hands model for 200 iterations, trade-off 1 took the source PCK
  from 24.7 to 5.3 by iteration 50 (0.1: 19.8; 0: 23.5; issue 18): the
  adaptation starts from a converged source model, and a full-weight domain
  loss overwhelms its small supervised gradient. The comparison tunes it on a
  small grid without target labels (:mod:`regdakit.tuning`).
* BatchNorm. Source and target go through ``psi`` as one batch (shared
  statistics), as in the original implementation; see :mod:`regdakit.methods.dan`.
* Optimiser. RegDA's SGD and decay for ``psi`` and ``f``; ``D`` learns at
  ``head_lr``. DANN's own learning-rate annealing is replaced by RegDA's, so
  that only the objective differs from the other methods.

Shape legend: ``B`` batch, ``C`` feature channels.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from regdakit._validation import check_positive
from regdakit.methods import recipe
from regdakit.methods.common import check_source_loss, check_unlabelled, minimise, source_loss
from regdakit.methods.dan import pooled_features
from regdakit.methods.recipe import SGDRecipe
from regdakit.models import PoseResNet, reverse_gradient

__all__ = [
    "PARTS",
    "STEPS",
    "Config",
    "DomainDiscriminator",
    "make_optimizers",
    "prepare",
    "reverse_gradient",
    "REVERSAL_SHARE",
    "RUN_SETTINGS",
    "reversal_horizon",
    "reversal_lambda",
    "step",
]

#: DANN's adversary is the domain discriminator, which :func:`prepare` attaches (no second head).
PARTS = ("domain_discriminator",)
#: One update: one backward serves every player through the reversal layer.
STEPS = {"A": "psi, f and the domain discriminator on source and target (through gradient reversal)"}
#: The reversal schedule's horizon is a share of the run's length: :func:`step` takes it as ``adapt_iterations=``.
RUN_SETTINGS = ("adapt_iterations",)
#: The reversal schedule's horizon as a share of the adaptation run: all of it (DANN's ``p`` is the progress
#: of its whole training).
REVERSAL_SHARE = 1.0


@dataclass(frozen=True)
class Config(SGDRecipe):
    """DANN's hyper-parameters; the optimiser is RegDA's (:class:`~regdakit.methods.recipe.SGDRecipe`).

    Attributes:
        trade_off: Weight of the domain loss (0.1: DANN's 1 breaks a converged source model within a short
            adaptation; see the module docstring).
        hidden: Hidden units of the discriminator's two layers.
        reversal_iterations: ``T`` of ``λ = tanh(5 it / T)``. ``None`` (default): the run's ``adapt_iterations``
            (:func:`reversal_horizon`), so the schedule spans the adaptation whatever its length; a number
            fixes ``T``.
        reversal_max: ``λ``'s limit (DANN's 1).
        source_loss: ``"kl"`` or ``"mse"`` for the supervised term.
    """

    trade_off: float = 0.1
    hidden: int = 256
    reversal_iterations: int | None = None
    reversal_max: float = 1.0
    source_loss: str = "kl"

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("trade_off", "reversal_max"):
            check_positive(name, getattr(self, name), allow_zero=True)
        if self.hidden < 1:
            raise ValueError(f"hidden must be >= 1, got {self.hidden}")
        if self.reversal_iterations is not None and self.reversal_iterations < 1:
            raise ValueError(
                f"reversal_iterations must be >= 1 (or None: the run's length), got {self.reversal_iterations}"
            )
        check_source_loss(self.source_loss)


def reversal_horizon(cfg: Config, adapt_iterations: int = recipe.REFERENCE_ADAPT_ITERATIONS) -> int:
    """``T`` of the reversal schedule: ``cfg.reversal_iterations``, or :data:`REVERSAL_SHARE` of ``adapt_iterations``.

    >>> reversal_horizon(Config(), 200), reversal_horizon(Config(reversal_iterations=50), 200)
    (200, 50)
    """
    if cfg.reversal_iterations is not None:
        return cfg.reversal_iterations
    return recipe.horizon(REVERSAL_SHARE, adapt_iterations)


def reversal_lambda(it: int, cfg: Config, adapt_iterations: int = recipe.REFERENCE_ADAPT_ITERATIONS) -> float:
    """DANN's schedule ``λ = reversal_max * (2 / (1 + exp(-10 p)) - 1)``, ``p = it / T`` (:func:`reversal_horizon`).

    >>> round(reversal_lambda(100, Config(reversal_iterations=200)), 4)  # tanh(2.5)
    0.9866
    >>> round(reversal_lambda(60, Config(), adapt_iterations=200), 4)  # tanh(1.5): 30 % of any run
    0.9051
    """
    p = it / reversal_horizon(cfg, adapt_iterations)
    return cfg.reversal_max * (2.0 / (1.0 + math.exp(-10.0 * p)) - 1.0)


class DomainDiscriminator(nn.Sequential):
    """``(B, C)`` pooled features -> ``(B,)`` logits of "this image is from the source".

    ``Linear(C, hidden) -> BatchNorm -> ReLU -> Linear(hidden, hidden) -> BatchNorm -> ReLU -> Linear(hidden, 1)``.
    """

    def __init__(self, in_features: int, hidden: int = 256):
        super().__init__(
            nn.Linear(in_features, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(),
            nn.Linear(hidden, 1),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """``(B, C)`` -> ``(B,)`` logits."""
        return super().forward(features).squeeze(-1)


def prepare(model: PoseResNet, cfg: Config) -> PoseResNet:
    """Attach a fresh :class:`DomainDiscriminator` as ``model.domain_discriminator`` (idempotent); returns ``model``."""
    if getattr(model, "domain_discriminator", None) is None:
        channels = model.head[0].in_channels
        device = next(model.parameters()).device
        model.add_module("domain_discriminator", DomainDiscriminator(channels, cfg.hidden).to(device))
    return model


def make_optimizers(model: PoseResNet, cfg: Config) -> dict[str, torch.optim.Optimizer]:
    """``{"psi", "head", "domain_discriminator"}``: RegDA's SGD; ``D`` at ``head_lr``.

    Raises:
        ValueError: The model has no discriminator (call :func:`prepare` first).
    """
    if getattr(model, "domain_discriminator", None) is None:
        raise ValueError("DANN needs model.domain_discriminator: call regdakit.methods.dann.prepare(model, cfg)")
    return recipe.make_optimizers(model, cfg, ("psi", "head", "domain_discriminator"))


def step(
    model: PoseResNet,
    batch_s: Mapping[str, Any],
    batch_t: Mapping[str, Any],
    optimizers: Mapping[str, torch.optim.Optimizer],
    cfg: Config,
    it: int,
    *,
    adapt_iterations: int = recipe.REFERENCE_ADAPT_ITERATIONS,
) -> dict[str, float]:
    """One DANN iteration: one backward of ``L_src(f) + trade_off * L_domain`` through the reversal layer.

    Args:
        model: A :class:`PoseResNet` with ``domain_discriminator`` (:func:`prepare`), in train mode.
        batch_s: Labelled source batch: ``image (B, 3, H, W)``, ``heatmap (B, K, H/4, W/4)``, ``weight (B, K)``.
        batch_t: Unlabelled target batch: ``image (B, 3, H, W)``; label keys raise.
        optimizers: From :func:`make_optimizers`.
        cfg: Hyper-parameters.
        it: The iteration; sets ``λ`` (:func:`reversal_lambda`).
        adapt_iterations: The run's length, the reversal schedule's default horizon (the reference's 15000
            when not given; the trainer passes the run's).

    Returns:
        ``{"A/source", "A/domain", "metric/domain_accuracy"}``: the supervised loss, the discriminator's
        binary cross-entropy, and (a metric, not a loss) its accuracy on this batch (0.5 = the features
        fool it).
    """
    check_unlabelled(batch_t)
    m, n = len(batch_s["image"]), len(batch_t["image"])
    psi = model.features(torch.cat([batch_s["image"], batch_t["image"]]))  # (m + n, C, H, W): one BatchNorm batch
    loss_src = source_loss(model.head(psi[:m]), batch_s["heatmap"], batch_s["weight"], cfg.source_loss)
    logits = model.domain_discriminator(
        reverse_gradient(pooled_features(psi), reversal_lambda(it, cfg, adapt_iterations))
    )  # (m + n,)
    is_source = torch.cat([logits.new_ones(m), logits.new_zeros(n)])
    loss_domain = nn.functional.binary_cross_entropy_with_logits(logits, is_source)
    loss = loss_src + cfg.trade_off * loss_domain
    minimise(loss, optimizers.values())
    accuracy = ((logits.detach() > 0).float() == is_source).float().mean()
    values = torch.stack([loss_src.detach(), loss_domain.detach(), accuracy]).tolist()
    return dict(zip(("A/source", "A/domain", "metric/domain_accuracy"), values, strict=True))
