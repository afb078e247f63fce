"""The control of the synthetic benchmark: RegDA's schedule with its adversarial terms switched off.

RegDA's adaptation phase differs from the end of source-only training in three
ways at once: the adversarial game, *more iterations* with another optimiser
(SGD at RegDA's rates after the pre-training), and target batches forwarded
in train mode, so that BatchNorm's running statistics drift towards the
target (AdaBN-like). The paper compares RegDA with the source-only model only,
which credits all three to the game. This control keeps the last two:

* the same iterations, optimisers, learning rates and schedule as
  :mod:`regdakit.methods.regda` (its :class:`~regdakit.methods.regda.Config`);
* the same supervised source loss ``L_src(f)`` (step A without ``margin *
  L_T``: the ``L_T`` term exists only to train ``f'`` for the game);
* one forward of every target batch through ``psi`` and ``f`` in train mode,
  without a graph: BatchNorm sees the target exactly as often as in the fused
  RegDA step, and nothing is learnt from it.

So RegDA minus the control is the effect of the adversarial game alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from regdakit.methods import recipe
from regdakit.methods.common import check_unlabelled, minimise, source_loss
from regdakit.methods.regda import Config
from regdakit.models import PoseResNet

__all__ = ["CONFIG_SECTION", "PARTS", "STEPS", "Config", "make_optimizers", "step"]

#: The control has no game, so no ``f'``.
PARTS = ()
#: One update; the target batch only passes through BatchNorm.
STEPS = {"A": "psi and f on the source (the target batch is forwarded without a graph, for BatchNorm)"}
#: The control's hyper-parameters are RegDA's (``--regda.KEY``): same optimisers, rates and source loss.
CONFIG_SECTION = "regda"


def make_optimizers(model: PoseResNet, cfg: Config) -> dict[str, torch.optim.Optimizer]:
    """RegDA's SGD optimisers of ``psi`` and ``f`` (same rates, momentum, decay); no ``f'``."""
    return recipe.make_optimizers(model, cfg, ("psi", "head"))


def step(
    model: PoseResNet,
    batch_s: Mapping[str, Any],
    batch_t: Mapping[str, Any],
    optimizers: Mapping[str, torch.optim.Optimizer],
    cfg: Config,
    it: int,
) -> dict[str, float]:
    """One control iteration: a supervised source step, then a gradient-free target forward in train mode.

    Args:
        model: A :class:`PoseResNet` in train mode (``f'``, if present, is not used).
        batch_s: Labelled source batch: ``image (B, 3, H, W)``, ``heatmap (B, K, H/4, W/4)``, ``weight (B, K)``.
        batch_t: Unlabelled target batch: ``image (B, 3, H, W)``; label keys raise.
        optimizers: From :func:`make_optimizers`.
        cfg: RegDA's hyper-parameters; ``source_loss``, ``lr``, ``head_lr``... are used, the game's are not.
        it: The iteration (unused: no gradient-scaling layer is involved; kept for the shared interface).

    Returns:
        ``{"A/source": L_src}``.
    """
    check_unlabelled(batch_t)
    y_s = model.heatmaps(batch_s["image"])  # (B, K, H/4, W/4), f only
    loss = source_loss(y_s, batch_s["heatmap"], batch_s["weight"], cfg.source_loss)
    minimise(loss, optimizers.values())
    with torch.no_grad():  # BatchNorm running statistics of psi and f see the target batch
        model.heatmaps(batch_t["image"])
    return {"A/source": loss.item()}
