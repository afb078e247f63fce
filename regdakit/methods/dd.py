"""DD (Disparity Discrepancy; Zhang et al., ICML 2019, "Bridging Theory and Algorithm for Domain Adaptation").

DD measures the domain gap through an adversarial hypothesis ``f'``: its
disparity with the main hypothesis ``f`` on the target minus a margin times
its disparity on the source (DD's Eq. 4 and the minimax problem of its
Eq. 8-9). ``f'`` maximises that difference, the features ``psi`` minimise
it. The paper that introduces DD also gives its practical algorithm, MDD
(Margin Disparity Discrepancy): the adversary does not ascend an unbounded
log-loss on the target but descends the saturating ``-log(1 - p')`` of
``f``'s prediction, which stops pushing once ``f'`` disagrees.

The keypoint version. The RegDA paper adapts DD with the heatmap disparity
``L_T = KL(H(ŷ) || f')`` and lists it as the first row of its Table 2 (``f'``
maximises ``L_T``, ``psi`` minimises it). Maximising a KL is unbounded: on
the synthetic hands benchmark step B's loss ran from -2 to -88 in 50
iterations, ``L_T`` on the target reached 104 nats and the source PCK fell
from 24.7 to 3.0 (issue 18). So this method's objectives (:data:`OBJECTIVES`)
are the bounded pair of :mod:`regdakit.disparity`, in the spirit of MDD: with
``m`` the mass of ``softmax(f')`` on the support of ``H(ŷ)``
(:func:`regdakit.disparity.truth_log_masses`),

* step B: ``f'`` minimises ``-log(1 - m)`` (:func:`regdakit.disparity.maximise_truth_bounded`),
  in ``[0, 13.8]``: it moves its mass off ``f``'s prediction and stops there;
* step C: ``psi`` minimises ``-log m`` (:func:`regdakit.disparity.minimise_truth_bounded`),
  in ``[0, 13.8]``: the features bring ``f'``'s mass back onto ``f``'s prediction.

The unbounded pair of the RegDA paper's Table 2 (``-L_T`` / ``L_T``) is the
labelled variant ``--method dd_unbounded`` (:mod:`regdakit.methods.dd_unbounded`),
kept to reproduce that row and its failure, not as a baseline.

One iteration, every step a minimisation:

* A (source, everything trains): ``L_src(f) + margin * trade_off * L_T`` (``f'`` agrees with ``f``
  on the source: the source half of DD's disparity difference, with ``margin`` as DD's ``γ``);
* B (target, ``psi`` and ``f`` fixed): ``f'`` minimises ``trade_off * (-log(1 - m))`` (disagrees);
* C (target, ``f`` and ``f'`` fixed): ``psi`` minimises ``trade_off * (-log m)`` through the
  gradient-scaling layer.

This is RegDA's schedule with DD's pair of objectives, so the step is
:func:`regdakit.methods.regda.iteration` with :data:`OBJECTIVES`, and the
hyper-parameters are RegDA's (same optimisers, fused target pass, warm start,
margin: the run config's ``regda`` section; its ``objective``, which selects
RegDA's own variants, must stay ``"regda"``). Why even the bounded DD learns
less than RegDA (the mean-versus-variance argument, notebook 03): pushing
``f'`` *away* from ``f``'s prediction says nothing about *where* ``f`` errs,
so step C learns little about the plausible wrong places.

>>> OBJECTIVES[0].__name__, OBJECTIVES[1].__name__
('maximise_truth_bounded', 'minimise_truth_bounded')
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from regdakit import disparity
from regdakit.disparity import Objective
from regdakit.methods import recipe, regda
from regdakit.methods.regda import Config, make_optimizers
from regdakit.models import PoseResNet

__all__ = [
    "CONFIG_SECTION",
    "OBJECTIVES",
    "PARTS",
    "RUN_SETTINGS",
    "STEPS",
    "Config",
    "check_config",
    "make_optimizers",
    "step",
]

#: DD's adversarial hypothesis is the head ``f'``.
PARTS = regda.PARTS
#: RegDA's updates, with step B's objective flipped.
STEPS = regda.STEPS
#: The pseudo-label ``H(ŷ)`` of ``L_T`` has the run's heatmap width.
RUN_SETTINGS = regda.RUN_SETTINGS
#: DD's hyper-parameters are RegDA's (``--regda.KEY``).
CONFIG_SECTION = "regda"

#: (step B's loss of ``f'``, step C's loss of ``psi``): the bounded pair, ``-log(1 - m)`` and ``-log m``.
OBJECTIVES: tuple[Objective, Objective] = (disparity.maximise_truth_bounded, disparity.minimise_truth_bounded)


def check_config(cfg: Config) -> None:
    """Refuse a RegDA section that selects one of RegDA's own variants: DD's pair is fixed by the method.

    >>> check_config(Config())  # RegDA's section as it is by default: accepted
    """
    if cfg.objective != "regda":
        raise ValueError(
            "methods 'dd' and 'dd_unbounded' have their own objectives (f' disagrees with f, psi makes it agree); "
            f"regda.objective={cfg.objective!r} selects a variant of --method regda: drop it"
        )


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
    """One DD iteration: :func:`regdakit.methods.regda.iteration` with DD's :data:`OBJECTIVES`.

    Returns:
        ``{"A/source", "A/truth", "B/adversary", "C/features"}`` as RegDA's step; here ``B/adversary`` is
        step B's own objective ``-log(1 - m)`` and ``C/features`` is ``-log m`` on the target, both in
        ``[0, 13.8]``.

    Raises:
        ValueError: ``cfg.objective`` is not ``"regda"`` (:func:`check_config`), or ``batch_t`` carries labels.
    """
    check_config(cfg)
    run = {"sigma": sigma, "adapt_iterations": adapt_iterations}
    return regda.iteration(model, batch_s, batch_t, optimizers, cfg, it, OBJECTIVES, **run)
