"""DD (Disparity Discrepancy; Zhang et al., ICML 2019, "Bridging Theory and Algorithm for Domain Adaptation").

DD measures the domain gap through an adversarial hypothesis ``f'``: its
disparity with the main hypothesis ``f`` on the target minus a margin times
its disparity on the source (DD's Eq. 4 and the minimax problem of its
Eq. 8-9). ``f'`` maximises that difference, the features ``psi`` minimise
it. The RegDA paper adapts DD to keypoints with the heatmap disparity
``L_T = KL(H(ŷ) || f')`` (:func:`regdakit.disparity.ground_truth_disparity`) and
lists it as the first row of its Table 2: ``f'`` maximises ``L_T``
(:func:`regdakit.disparity.maximise_truth`), ``psi`` minimises ``L_T``
(:func:`regdakit.disparity.minimise_truth`). One iteration, every step a minimisation:

* A (source, everything trains): ``L_src(f) + margin * trade_off * L_T`` (``f'`` agrees with ``f``
  on the source: the source half of DD's disparity difference, with ``margin`` as DD's ``γ``);
* B (target, ``psi`` and ``f`` fixed): ``f'`` minimises ``-trade_off * L_T`` (maximises the disparity);
* C (target, ``f`` and ``f'`` fixed): ``psi`` minimises ``trade_off * L_T`` through the gradient-scaling layer.

This is RegDA's schedule with step B's objective flipped, so the module reuses
:mod:`regdakit.methods.regda` with ``objective="dd"`` (same optimisers,
fused target pass, warm start). What the keypoint version forces and why it
fails (the mean-versus-variance argument, notebook 03): maximising a KL
between heatmaps is unbounded and mostly *spreads* ``f'``'s distribution
instead of moving its mass to plausible wrong places, so step C learns
little about where ``f`` errs.

>>> cfg = make_config()
>>> cfg.objective, cfg.margin
('dd', 4.0)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import torch

from regdakit.methods import regda
from regdakit.methods.regda import Config, make_optimizers, make_schedulers
from regdakit.models import PoseResNet

__all__ = ["ADVERSARIAL_HEAD", "Config", "make_config", "make_optimizers", "make_schedulers", "step"]

#: DD's adversarial hypothesis is the head ``f'``.
ADVERSARIAL_HEAD = True


def make_config(**changes: Any) -> Config:
    """RegDA's :class:`~regdakit.methods.regda.Config` with ``objective="dd"`` (and any other changes)."""
    return dataclasses.replace(Config(objective="dd"), **changes)


def step(
    model: PoseResNet,
    batch_s: Mapping[str, Any],
    batch_t: Mapping[str, Any],
    optimizers: Mapping[str, torch.optim.Optimizer],
    cfg: Config,
    it: int,
) -> dict[str, float]:
    """One DD iteration: :func:`regdakit.methods.regda.step` with ``objective="dd"``.

    Returns:
        ``{"A_source", "A_truth", "B_false", "C_truth"}`` as RegDA's step; here ``B_false`` holds
        step B's own objective ``-L_T``.

    Raises:
        ValueError: ``cfg.objective`` is not ``"dd"`` (build the config with :func:`make_config`).
    """
    if cfg.objective != "dd":
        raise ValueError(f"DD runs RegDA's steps with objective='dd', got objective={cfg.objective!r}")
    return regda.step(model, batch_s, batch_t, optimizers, cfg, it)
