"""DD (Disparity Discrepancy; Zhang et al., ICML 2019, "Bridging Theory and Algorithm for Domain Adaptation").

DD measures the domain gap through an adversarial hypothesis ``f'``: its
disparity with the main hypothesis ``f`` on the target minus a margin times
its disparity on the source (DD's Eq. 4 and the minimax problem of its
Eq. 8-9). ``f'`` maximises that difference, the features ``psi`` minimise
it. The RegDA paper adapts DD to keypoints with the heatmap disparity
``L_T = KL(H(ŷ) || f')`` (:func:`regdakit.disparity.ground_truth_disparity`) and
lists it as the first row of its Table 2: ``f'`` maximises ``L_T``
(:func:`regdakit.disparity.maximise_truth`), ``psi`` minimises ``L_T``
(:func:`regdakit.disparity.minimise_truth`): :data:`OBJECTIVES`. One iteration, every step a minimisation:

* A (source, everything trains): ``L_src(f) + margin * trade_off * L_T`` (``f'`` agrees with ``f``
  on the source: the source half of DD's disparity difference, with ``margin`` as DD's ``γ``);
* B (target, ``psi`` and ``f`` fixed): ``f'`` minimises ``-trade_off * L_T`` (maximises the disparity);
* C (target, ``f`` and ``f'`` fixed): ``psi`` minimises ``trade_off * L_T`` through the gradient-scaling layer.

This is RegDA's schedule with DD's pair of objectives, so the step is
:func:`regdakit.methods.regda.iteration` with :data:`OBJECTIVES`, and the
hyper-parameters are RegDA's (same optimisers, fused target pass, warm start,
margin: the run config's ``regda`` section; its ``objective``, which selects
RegDA's own variants, must stay ``"regda"``). What the keypoint version
forces and why it fails (the mean-versus-variance argument, notebook 03):
maximising a KL between heatmaps is unbounded and mostly *spreads* ``f'``'s
distribution instead of moving its mass to plausible wrong places, so step C
learns little about where ``f`` errs.

>>> OBJECTIVES[0].__name__, OBJECTIVES[1].__name__
('maximise_truth', 'minimise_truth')
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from regdakit import disparity
from regdakit.disparity import Objective
from regdakit.methods import regda
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

#: (step B's loss of ``f'``, step C's loss of ``psi``): ``f'`` maximises ``L_T``, ``psi`` minimises it.
OBJECTIVES: tuple[Objective, Objective] = (disparity.maximise_truth, disparity.minimise_truth)


def check_config(cfg: Config) -> None:
    """Refuse a RegDA section that selects one of RegDA's own variants: DD's pair is :data:`OBJECTIVES`.

    >>> check_config(Config())  # RegDA's section as it is by default: accepted
    """
    if cfg.objective != "regda":
        raise ValueError(
            "method 'dd' has its own objectives (f' maximises L_T, psi minimises it); "
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
) -> dict[str, float]:
    """One DD iteration: :func:`regdakit.methods.regda.iteration` with DD's :data:`OBJECTIVES`.

    Returns:
        ``{"A/source", "A/truth", "B/adversary", "C/features"}`` as RegDA's step; here ``B/adversary`` is
        step B's own objective ``-L_T`` and ``C/features`` is ``L_T`` on the target.

    Raises:
        ValueError: ``cfg.objective`` is not ``"regda"`` (:func:`check_config`), or ``batch_t`` carries labels.
    """
    check_config(cfg)
    return regda.iteration(model, batch_s, batch_t, optimizers, cfg, it, OBJECTIVES, sigma=sigma)
