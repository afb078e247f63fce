"""Training methods, one small module each with the same shape (STYLE.md item 2).

Every module in :data:`METHODS` has a frozen ``Config`` dataclass,
``make_optimizers(model, cfg) -> dict[str, Optimizer]``,
``make_schedulers(optimizers, cfg) -> dict`` (stepped once per iteration by the
trainer) and ``step(model, batch_s, batch_t, optimizers, cfg, it) -> dict[str, float]``,
which holds the algorithm only: no logging, no devices, no meters. Adaptation
methods also say whether they need the second head ``f'``
(``ADVERSARIAL_HEAD``); a method that adds modules to the model (DANN's
discriminator) has ``prepare(model, cfg)``, which the trainer calls before
building the optimisers.

* :mod:`regdakit.methods.erm`: supervised training (source only, RegDA's
  pre-training, and the oracle when given target labels).
* :mod:`regdakit.methods.regda`: RegDA's steps A, B, C, fused or as the reference's three passes,
  with the Table-2 variants as ``Config.objective``.
* :mod:`regdakit.methods.control`: RegDA's schedule without the adversarial game (the benchmark's control).
* Baselines of the paper's Table 1, adapted to heatmaps: :mod:`~regdakit.methods.dan` (MK-MMD),
  :mod:`~regdakit.methods.dann` (domain discriminator, gradient reversal), :mod:`~regdakit.methods.mcd`
  (two heads' discrepancy), :mod:`~regdakit.methods.dd` (disparity discrepancy).

The adaptation methods share RegDA's optimiser and schedule (:mod:`regdakit.methods.recipe`), so a
comparison changes the objective only. :mod:`regdakit.methods.adabn` is not a training method: it
re-estimates BatchNorm statistics on the target.

>>> sorted(METHODS)
['control', 'dan', 'dann', 'dd', 'erm', 'mcd', 'regda']
"""

from regdakit.methods import adabn, control, dan, dann, dd, erm, mcd, recipe, regda

#: name -> method module (a plain dict: go-to-definition and grep work).
METHODS = {"erm": erm, "regda": regda, "control": control, "dd": dd, "mcd": mcd, "dan": dan, "dann": dann}

__all__ = ["METHODS", "adabn", "control", "dan", "dann", "dd", "erm", "mcd", "recipe", "regda"]
