"""Training methods, peers of one shape: one module each, registered in :data:`METHODS`.

The shape is written once, as the :class:`~regdakit.methods.contract.Method`
protocol (:mod:`regdakit.methods.contract`): a frozen ``Config`` dataclass,
``STEPS`` (the updates of one iteration), ``PARTS`` (the modules the method
adds to the detector: ``f'``, DANN's discriminator), ``make_optimizers(model,
cfg)`` and ``step(model, batch_s, batch_t, optimizers, cfg, it)``, which holds
the algorithm only: no logging, no devices, no meters. ``make_schedulers``,
``prepare``, ``CONFIG_SECTION``, ``RUN_SETTINGS``, ``check_config``,
``LABELLED_DOMAIN`` and ``TARGET_IMAGES`` are optional, with defaults. Adding a method is one module and one entry in
:data:`METHODS`; the trainer, the command line and the tests take their lists
of methods from it.

What a step returns: one vocabulary for every method
------------------------------------------------------
``{"<step>/<name>": float}``. ``<step>`` is the letter of the update that
computed the value, a key of the method's ``STEPS``, which says which players
move on which data (``"A"`` is the first update; in every method it holds the
supervised loss ``"A/source"``); ``<name>`` is what the value is. Values that
are not losses are metrics, ``"metric/<name>"``. The keys by method:

* ``erm``, ``control``, ``continue``, ``finetune``: ``A/source``;
* ``regda``, ``dd``, ``dd_unbounded``: ``A/source``, ``A/truth`` (``L_T`` of ``f'`` on the source),
  ``B/adversary`` (the objective ``f'`` minimises on the target), ``C/features`` (the one ``psi`` minimises);
* ``mcd``: ``A/source``, ``B/source``, ``B/discrepancy``, ``C/discrepancy``;
* ``dan``: ``A/source``, ``A/mmd``;
* ``dann``: ``A/source``, ``A/domain`` and the metric ``metric/domain_accuracy``.

The trainer logs them under ``"train"`` in ``metrics.jsonl`` and names the
failing step of a NaN loss from its key and the method's ``STEPS``.
:data:`~regdakit.methods.contract.LEGACY_KEYS` maps the names of earlier
versions (``A_source``, ``mmd``...) to these.

The methods:

* :mod:`regdakit.methods.erm`: supervised training (source only, the adaptation methods' pre-training,
  and the oracle when given target labels).
* :mod:`regdakit.methods.regda`: RegDA's steps A, B, C, fused or as the reference's three passes,
  with its Table-2 variant ``false_max`` as ``Config.objective``.
* :mod:`regdakit.methods.control`: RegDA's schedule without the adversarial game (the benchmark's control).
* :mod:`regdakit.methods.continue_erm` (``"continue"``): the source-only model trained on for the same budget
  with the same optimiser, on the source alone (the "same extra training without the method" baseline).
* :mod:`regdakit.methods.finetune`: the same on *labelled target* batches, an upper bound like the oracle.
* Baselines of the paper's Table 1, adapted to heatmaps: :mod:`~regdakit.methods.dan` (MK-MMD),
  :mod:`~regdakit.methods.dann` (domain discriminator, gradient reversal), :mod:`~regdakit.methods.mcd`
  (two heads' discrepancy), :mod:`~regdakit.methods.dd` (disparity discrepancy, RegDA's schedule with
  its own objectives, the adversary bounded in the spirit of MDD).
* :mod:`regdakit.methods.dd_unbounded`: DD with the unbounded KL adversary, Table 2's first row as the
  RegDA paper writes it; a labelled variant (it breaks the source domain), not a baseline.

The adaptation methods share RegDA's optimiser and schedule (:mod:`regdakit.methods.recipe`), so a
comparison changes the objective only; what every method shares besides (the supervised loss, the
target-label check, one update) is :mod:`regdakit.methods.common`. :mod:`regdakit.methods.adabn` is not a
training method: it re-estimates BatchNorm statistics on the target.

>>> sorted(METHODS)
['continue', 'control', 'dan', 'dann', 'dd', 'dd_unbounded', 'erm', 'finetune', 'mcd', 'regda']
>>> all(isinstance(module, contract.Method) for module in METHODS.values())
True
"""

from regdakit.methods import (
    adabn,
    common,
    continue_erm,
    contract,
    control,
    dan,
    dann,
    dd,
    dd_unbounded,
    erm,
    finetune,
    mcd,
    recipe,
    regda,
)

#: name -> method module (a plain dict: go-to-definition and grep work).
METHODS = {
    "erm": erm,
    "regda": regda,
    "control": control,
    "continue": continue_erm,
    "finetune": finetune,
    "dd": dd,
    "dd_unbounded": dd_unbounded,
    "mcd": mcd,
    "dan": dan,
    "dann": dann,
}

__all__ = [
    "METHODS",
    "adabn",
    "common",
    "continue_erm",
    "contract",
    "control",
    "dan",
    "dann",
    "dd",
    "dd_unbounded",
    "erm",
    "finetune",
    "mcd",
    "recipe",
    "regda",
]
