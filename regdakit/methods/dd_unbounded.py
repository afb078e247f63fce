"""DD with the unbounded KL adversary: the RegDA paper's Table-2 row, a labelled variant of :mod:`~regdakit.methods.dd`.

Table 2 of RegDA (Jiang et al., CVPR 2021) adapts Disparity Discrepancy
(Zhang et al., ICML 2019) to heatmaps with ``L_T = KL(H(ŷ) || f')``: ``f'``
maximises ``L_T`` on the target (:func:`regdakit.disparity.maximise_truth`,
i.e. it descends ``-L_T``), ``psi`` minimises it
(:func:`regdakit.disparity.minimise_truth`). ``-L_T`` has no lower bound, so
the adversary never stops: it spreads ``f'`` ever thinner, ``L_T`` grows
without limit, and step C's gradient into ``psi`` with it. On the synthetic
hands benchmark this broke the source domain within 50 iterations (issue
18). Kept to reproduce that row and that failure (notebook 03, Table 2); the
DD *baseline* is :mod:`regdakit.methods.dd`, whose adversary is bounded.

Everything but the pair of objectives is DD's (and so RegDA's schedule and
``regda`` section).

>>> OBJECTIVES[0].__name__, OBJECTIVES[1].__name__
('maximise_truth', 'minimise_truth')
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from regdakit import disparity
from regdakit.disparity import Objective
from regdakit.methods import recipe, regda
from regdakit.methods.dd import CONFIG_SECTION, PARTS, RUN_SETTINGS, STEPS, check_config
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

#: (step B's loss of ``f'``, step C's loss of ``psi``): ``f'`` maximises ``L_T`` (unbounded), ``psi`` minimises it.
OBJECTIVES: tuple[Objective, Objective] = (disparity.maximise_truth, disparity.minimise_truth)


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
    """One iteration of :mod:`~regdakit.methods.dd`'s schedule with the unbounded pair :data:`OBJECTIVES`.

    Returns:
        ``{"A/source", "A/truth", "B/adversary", "C/features"}``; ``B/adversary`` is ``-L_T`` (no lower
        bound) and ``C/features`` is ``L_T`` on the target.

    Raises:
        ValueError: ``cfg.objective`` is not ``"regda"``, or ``batch_t`` carries labels.
    """
    check_config(cfg)
    run = {"sigma": sigma, "adapt_iterations": adapt_iterations}
    return regda.iteration(model, batch_s, batch_t, optimizers, cfg, it, OBJECTIVES, **run)
