"""Training methods, one small module each with the same shape (STYLE.md item 2).

Every module in :data:`METHODS` has a frozen ``Config`` dataclass,
``make_optimizers(model, cfg) -> dict[str, Optimizer]``,
``make_schedulers(optimizers, cfg) -> dict`` (stepped once per iteration by the
trainer) and ``step(model, batch_s, batch_t, optimizers, cfg, it) -> dict[str, float]``,
which holds the algorithm only: no logging, no devices, no meters.

* :mod:`regdakit.methods.erm`: supervised training (source only, RegDA's
  pre-training, and the oracle when given target labels).
* :mod:`regdakit.methods.regda`: RegDA's steps A, B, C, fused or as the reference's three passes.
* :mod:`regdakit.methods.control`: RegDA's schedule without the adversarial game (the benchmark's control).

:mod:`regdakit.methods.adabn` is not a training method: it re-estimates BatchNorm statistics on the target.

>>> sorted(METHODS)
['control', 'erm', 'regda']
"""

from regdakit.methods import adabn, control, erm, regda

#: name -> method module (a plain dict: go-to-definition and grep work).
METHODS = {"erm": erm, "regda": regda, "control": control}

__all__ = ["METHODS", "adabn", "control", "erm", "regda"]
