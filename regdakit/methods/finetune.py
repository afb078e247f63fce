"""Target fine-tune: the source-only model trained on *labelled target* batches for the adaptation's budget.

An upper bound, like the oracle, not an unsupervised method: it reads target
labels. Where the oracle trains from scratch on the target for
``pretrain_iterations``, this one starts from the same source-only model as
every adaptation method (the cached pre-training or ``init_checkpoint``, e.g.
a shipped model) and trains ``adapt_iterations`` with the same optimiser,
rates and decay (the ``regda`` section: :mod:`regdakit.methods.recipe`). So
it bounds what the adaptation budget can buy from that starting point when
the labels are known; ``gap_closed`` compares with the stronger of the two
upper bounds (issue 18).

The step is continue-ERM's (:func:`regdakit.methods.continue_erm.step`): the
difference is the data. :data:`LABELLED_DOMAIN` tells the trainer to draw
``batch_s`` from the *target* domain with labels, from the stream the
adaptation methods draw their unlabelled target images from; there is no
unlabelled batch (``batch_t`` is ``None``). The target labels enter only
here, by the method's declaration, never an adaptation method's step
(:func:`regdakit.methods.common.check_unlabelled`).
"""

from __future__ import annotations

from regdakit.methods.continue_erm import CONFIG_SECTION, PARTS, TARGET_IMAGES, Config, make_optimizers, step

__all__ = ["CONFIG_SECTION", "LABELLED_DOMAIN", "PARTS", "STEPS", "TARGET_IMAGES", "Config", "make_optimizers", "step"]

#: One update, on labelled target batches.
STEPS = {"A": "psi and f on labelled target batches (an upper bound: target labels)"}
#: The labelled batches are the *target*'s: this method reads target labels by definition.
LABELLED_DOMAIN = "target"
