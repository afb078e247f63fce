"""The optimisation recipe every adaptation method shares: RegDA's SGD, rates and decay.

A fair comparison of adaptation methods changes the objective and nothing
else: same starting model, iterations, optimiser, learning rates and decay.
So :mod:`regdakit.methods.regda` and the baselines (:mod:`~regdakit.methods.dan`,
:mod:`~regdakit.methods.dann`, :mod:`~regdakit.methods.mcd`, :mod:`~regdakit.methods.dd`)
all build their optimisers from one :class:`SGDRecipe` (their ``Config`` classes
inherit it), one SGD optimiser per *player* (a part of the model that some
step updates on its own).

>>> from regdakit.models import pose_resnet
>>> model = pose_resnet("tiny", 5)
>>> opts = make_optimizers(model, SGDRecipe(), players=("psi", "head"))
>>> sorted(opts), [g["lr"] for g in opts["psi"].param_groups]
(['head', 'psi'], [0.01, 0.01])

The schedules inside a method (RegDA's warm start, DANN's reversal weight)
rise over a *share* of the adaptation run, not over a fixed number of
iterations: :func:`horizon` turns the share into iterations for the run's
``adapt_iterations`` (the trainer passes it to the steps that take it, their
``RUN_SETTINGS``), so a shorter or longer budget keeps each schedule's shape.
A step called without it schedules for the reference's run,
:data:`REFERENCE_ADAPT_ITERATIONS`.

>>> horizon(1000 / 15000, 15000), horizon(1000 / 15000, 200), horizon(1000 / 15000, 2)
(1000, 13, 1)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from regdakit._validation import check_positive
from regdakit.models import PoseResNet, parameter_groups

__all__ = [
    "PLAYERS",
    "REFERENCE_ADAPT_ITERATIONS",
    "SGDRecipe",
    "check_sgd_momentum",
    "horizon",
    "make_optimizers",
    "make_schedulers",
    "sgd",
]

#: The players a recipe can build optimisers for: ``psi`` (backbone + upsampling), ``f``, ``f'``, and any
#: extra module a method attaches to the model (e.g. DANN's ``domain_discriminator``).
PLAYERS = ("psi", "head", "head_adv")

#: The reference's adaptation run, 30 epochs of 500 iterations: the length its schedules were set for
#: (RegDA's warm start ``N`` = 1000), and the length a step assumes when it is not given the run's.
REFERENCE_ADAPT_ITERATIONS = 15000


def horizon(share: float, adapt_iterations: int) -> int:
    """A schedule's length in iterations: ``max(1, round(share * adapt_iterations))``.

    Args:
        share: The schedule's length as a share of the adaptation run (> 0).
        adapt_iterations: The run's adaptation iterations (>= 0; a run of 0 still gets a horizon of 1).

    Raises:
        ValueError: ``share`` is not > 0, or ``adapt_iterations`` is negative or not an int.
    """
    check_positive("share", share)
    if isinstance(adapt_iterations, bool) or not isinstance(adapt_iterations, int) or adapt_iterations < 0:
        raise ValueError(f"adapt_iterations must be an int >= 0, got {adapt_iterations!r}")
    return max(1, round(share * adapt_iterations))


@dataclass(frozen=True)
class SGDRecipe:
    """SGD and its per-iteration decay, the reference's RegDA defaults.

    Attributes:
        lr: Learning rate of ``psi``: backbone *and* upsampling (the reference
            gives both 0.1 x its base 0.1 in the adaptation phase).
        head_lr: Learning rate of the heads (and of any module a method adds, e.g. DANN's discriminator).
        momentum: SGD momentum.
        weight_decay: SGD weight decay.
        nesterov: Nesterov momentum.
        lr_gamma: Learning rates decay as ``(1 + lr_gamma * i) ** -lr_decay`` per iteration ``i``.
        lr_decay: See ``lr_gamma``.
        lr_warmup: Share of the adaptation run (:func:`horizon`) over which every rate rises linearly from
            ``1 / W`` of its value to all of it (``W`` the warm-up's iterations); 0, the reference's, for none.
            An adaptation that starts from a model trained with another optimiser (the shipped models: Adam
            at 1e-4 by the end) takes SGD's full momentum and rates at once otherwise: docs/training.md.
    """

    lr: float = 0.01
    head_lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    nesterov: bool = True
    lr_gamma: float = 1e-4
    lr_decay: float = 0.75
    lr_warmup: float = 0.0

    def __post_init__(self) -> None:
        for name in ("lr", "head_lr"):
            check_positive(name, getattr(self, name))
        for name in ("momentum", "weight_decay", "lr_gamma", "lr_decay", "lr_warmup"):
            check_positive(name, getattr(self, name), allow_zero=True)
        if self.lr_warmup > 1:
            raise ValueError(f"lr_warmup is a share of the adaptation run, in [0, 1]; got {self.lr_warmup}")
        check_sgd_momentum(self.momentum, self.nesterov)


def check_sgd_momentum(momentum: float, nesterov: bool) -> None:
    """SGD's momentum must lie in [0, 1) (1 never forgets a gradient), and Nesterov needs one > 0.

    Raises:
        ValueError: Naming the setting (``torch.optim.SGD`` would only fail when the optimiser is built).
    """
    if not 0 <= momentum < 1:
        raise ValueError(f"momentum must be in [0, 1), got {momentum}")
    if nesterov and momentum == 0:
        raise ValueError("nesterov=True needs momentum > 0 (or set nesterov=False)")


def sgd(params: Iterable[Any], lr: float, recipe: SGDRecipe) -> torch.optim.SGD:
    """An SGD optimiser with the recipe's momentum, weight decay and Nesterov flag."""
    return torch.optim.SGD(
        params, lr=lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay, nesterov=recipe.nesterov
    )


def make_optimizers(
    model: PoseResNet, recipe: SGDRecipe, players: tuple[str, ...] = PLAYERS
) -> dict[str, torch.optim.Optimizer]:
    """One SGD optimiser per player: ``psi`` at ``lr``, heads at ``head_lr``.

    A player that is not one of :data:`PLAYERS` names a submodule the method
    attached to the model (``model.<name>``); it learns at ``head_lr``.

    Raises:
        ValueError: A player the model does not have (e.g. ``head_adv`` on a model built without ``f'``).
    """
    groups = parameter_groups(model)
    out: dict[str, torch.optim.Optimizer] = {}
    for name in players:
        if name == "psi":
            out[name] = sgd([{"params": groups["backbone"]}, {"params": groups["upsampling"]}], recipe.lr, recipe)
        elif name in groups:
            out[name] = sgd(groups[name], recipe.head_lr, recipe)
        elif name == "head_adv":
            raise ValueError(
                "this method needs a model with an adversarial head f' (pose_resnet(..., adversarial=True))"
            )
        elif isinstance(getattr(model, name, None), nn.Module):
            out[name] = sgd(getattr(model, name).parameters(), recipe.head_lr, recipe)
        else:
            raise ValueError(f"the model has no player {name!r} (known: psi, {', '.join(groups)})")
    return out


def make_schedulers(
    optimizers: Mapping[str, torch.optim.Optimizer],
    recipe: SGDRecipe,
    adapt_iterations: int = REFERENCE_ADAPT_ITERATIONS,
) -> dict[str, Any]:
    """Per-iteration decay ``(1 + lr_gamma * i) ** -lr_decay`` of every optimiser (the trainer steps them).

    The multiplier is 1.0 at 0, 0.738 at 5k and 0.503 at 15k iterations. With ``recipe.lr_warmup`` > 0 it
    is also multiplied by ``min(1, (i + 1) / W)``, ``W = horizon(lr_warmup, adapt_iterations)``: a linear
    warm-up over that share of the run.

    >>> opt = sgd([torch.zeros(1, requires_grad=True)], 0.1, SGDRecipe())
    >>> warm = make_schedulers({"psi": opt}, SGDRecipe(lr_gamma=0.0, lr_warmup=0.1), adapt_iterations=40)["psi"]
    >>> rates = []
    >>> for _ in range(5):
    ...     rates.append(round(opt.param_groups[0]["lr"], 3))
    ...     opt.step()
    ...     warm.step()
    >>> rates  # W = 4 iterations: 1/4, 2/4, 3/4, then all of the rate
    [0.025, 0.05, 0.075, 0.1, 0.1]
    """
    warmup = horizon(recipe.lr_warmup, adapt_iterations) if recipe.lr_warmup > 0 else 0

    def factor(i: int) -> float:
        rise = min(1.0, (i + 1) / warmup) if warmup else 1.0
        return rise * (1 + recipe.lr_gamma * i) ** -recipe.lr_decay

    return {name: torch.optim.lr_scheduler.LambdaLR(opt, factor) for name, opt in optimizers.items()}
