"""Continue-ERM: the source-only model trained further on the source alone, for the adaptation's budget.

Registered as ``"continue"`` (a Python keyword cannot name the module). An
adaptation method changes the source-only model in two ways at once: it
applies its objective, and it simply trains *longer* (``adapt_iterations``
more, with RegDA's optimiser, after the pre-training). This baseline keeps
only the second: the same starting model (the cached pre-training or
``init_checkpoint``, e.g. a shipped model), the same iterations, optimiser,
learning rates and decay (:mod:`regdakit.methods.recipe`, the ``regda``
section as the control), and the supervised source loss ``L_src(f)``, with
no target data at all. So "method minus continue-ERM" is what the method
adds over more of the same training (issue 18: 200 more plain iterations
moved the shipped hands model's target PCK by up to 4 points).

Beside :mod:`regdakit.methods.control`, which also forwards each target batch
through BatchNorm in train mode: the two differ only in that forward (their
parameter updates from the same batch are identical; the running statistics
differ), so "control minus continue-ERM" is the AdaBN-like effect alone.

The trainer draws no target batch for it (:data:`TARGET_IMAGES` is False):
``batch_t`` is ``None``. A target batch passed anyway is checked like every
adaptation method's (no labels) and ignored.

>>> from regdakit.models import pose_resnet
>>> model = pose_resnet("tiny", 5, adversarial=False)
>>> cfg = Config()
>>> batch = {"image": torch.rand(2, 3, 64, 64), "heatmap": torch.rand(2, 5, 16, 16), "weight": torch.ones(2, 5)}
>>> sorted(step(model, batch, None, make_optimizers(model, cfg), cfg, it=0))
['A/source']
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from regdakit.methods import recipe
from regdakit.methods.common import check_unlabelled, supervised_update
from regdakit.methods.regda import Config
from regdakit.models import PoseResNet

__all__ = ["CONFIG_SECTION", "LABELLED_DOMAIN", "PARTS", "STEPS", "TARGET_IMAGES", "Config", "make_optimizers", "step"]

#: No part beyond ``psi`` and ``f``.
PARTS = ()
#: One update, on the source alone.
STEPS = {"A": "psi and f on the source"}
#: RegDA's optimiser, rates, decay and source loss (``--regda.KEY``), as every adaptation method's.
CONFIG_SECTION = "regda"
#: The labelled batches are the source's.
LABELLED_DOMAIN = "source"
#: No target batch: the baseline sees no target data.
TARGET_IMAGES = False


def make_optimizers(model: PoseResNet, cfg: Config) -> dict[str, torch.optim.Optimizer]:
    """RegDA's SGD optimisers of ``psi`` and ``f`` (the control's); no ``f'``."""
    return recipe.make_optimizers(model, cfg, ("psi", "head"))


def step(
    model: PoseResNet,
    batch_s: Mapping[str, Any],
    batch_t: Mapping[str, Any] | None,
    optimizers: Mapping[str, torch.optim.Optimizer],
    cfg: Config,
    it: int,
) -> dict[str, float]:
    """One supervised update of ``psi`` and ``f`` on ``batch_s`` with RegDA's optimisers.

    Args:
        model: A :class:`PoseResNet` in train mode (``f'``, if present, is not used).
        batch_s: Labelled batch: ``image (B, 3, H, W)``, ``heatmap (B, K, H/4, W/4)``, ``weight (B, K)``.
        batch_t: ``None`` from the trainer; an unlabelled target batch is checked (no labels) and ignored.
        optimizers: From :func:`make_optimizers`.
        cfg: RegDA's hyper-parameters: ``source_loss`` and the optimiser's are used.
        it: The iteration (unused: no schedule; kept for the shared interface).

    Returns:
        ``{"A/source": L_src}``.

    Raises:
        ValueError: ``batch_s`` lacks a label, or ``batch_t`` carries labels.
    """
    if batch_t is not None:
        check_unlabelled(batch_t)
    return supervised_update(model, batch_s, optimizers, cfg.source_loss)
