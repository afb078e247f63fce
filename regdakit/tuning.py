"""Tuning without target labels: one trade-off grid for every method, chosen by a stated rule.

A comparison is fair only if every method gets the same chance: the same
small grid of its trade-off (the weight of its target objective), run on a
*tuning seed* whose results are never reported, and the same rule to choose,
reading nothing a user of unsupervised adaptation lacks (no target label):

1. **Keep** the candidates whose source-validation PCK@0.05 stays within
   ``margin`` points of the pre-trained (source-only) model they started from:
   an adaptation that forgets the source task is not trusted on the target.
2. **Decide** among the kept ones with a label-free validator of
   :mod:`regdakit.selection` (default ``neg_entropy``, defined for every
   detector; ``head_agreement`` needs ``f'``): the highest score wins.
3. **Ties** (scores within ``tolerance`` of the best) go to the smallest
   trade-off, the candidate closest to the pre-trained model; the report says so.
4. **No candidate kept**: the candidate whose source PCK fell least is taken
   (ties again to the smallest trade-off), and the report says that the margin
   held for none.

Separately, any run whose source-validation PCK falls more than
:data:`FLAG_DROP` points below its pre-trained model is flagged
(:func:`source_drop_flag`), tuning or reported.

PCK values here are **percent** (0 to 100), as in the benchmark tables; the
margin and the flag are percentage points.

>>> cands = [{"trade_off": 0.1, "source_pck": 60.0, "neg_entropy": -2.0},
...          {"trade_off": 1.0, "source_pck": 40.0, "neg_entropy": -1.0}]
>>> choice = choose(cands, pretrained_source_pck=62.0)
>>> choice["chosen_trade_off"], choice["status"], choice["kept"]
(0.1, 'chosen', [0.1])
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from regdakit.selection import VALIDATORS

__all__ = [
    "FLAG_DROP",
    "GRID",
    "RATE_MARGIN",
    "RATE_SCALES",
    "SOURCE_MARGIN",
    "check_seeds",
    "choose",
    "choose_rate_scale",
    "score_model",
    "source_drop",
    "source_drop_flag",
    "trade_off_setting",
]

#: The trade-off grid every tuned method gets (RegDA included): four values, a factor ~3 apart.
GRID: tuple[float, ...] = (0.03, 0.1, 0.3, 1.0)
#: Points of source-validation PCK@0.05 a kept candidate may lose against its pre-trained model.
SOURCE_MARGIN = 5.0
#: A run whose source-validation PCK@0.05 falls more than this many points is flagged in the results.
FLAG_DROP = 10.0


def _percent(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 100.0:
        raise ValueError(f"{name} must be a PCK in percent, a number in [0, 100], got {value!r}")
    return float(value)


def _points(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < math.inf:
        raise ValueError(f"{name} must be a finite number of points >= 0, got {value!r}")
    return float(value)


def source_drop(source_pck: float, pretrained_source_pck: float) -> float:
    """Points of source-validation PCK lost against the pre-trained model (negative: gained).

    >>> source_drop(55.5, 60.0)
    4.5
    """
    return _percent("pretrained_source_pck", pretrained_source_pck) - _percent("source_pck", source_pck)


def source_drop_flag(source_pck: float, pretrained_source_pck: float, limit: float = FLAG_DROP) -> bool:
    """Whether a run's source-validation PCK fell **more** than ``limit`` points below its pre-trained model.

    >>> source_drop_flag(50.0, 60.0), source_drop_flag(49.9, 60.0)
    (False, True)
    """
    return source_drop(source_pck, pretrained_source_pck) > _points("limit", limit)


def check_seeds(tuning_seed: int, seeds: Iterable[int]) -> None:
    """Refuse a tuning seed among the reported ones: the tuning runs are never reported.

    Raises:
        ValueError: ``tuning_seed`` is one of ``seeds``, or a seed is not an int >= 0.
    """
    seeds = list(seeds)
    for seed in (tuning_seed, *seeds):
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seeds must be ints >= 0, got {seed!r}")
    if tuning_seed in seeds:
        raise ValueError(
            f"the tuning seed {tuning_seed} is among the reported seeds {seeds}: a setting chosen on a seed "
            "must not be reported on it; pick another tuning seed"
        )


def trade_off_setting(method: str) -> str:
    """The ``--key`` of a method's trade-off: ``"<its config section>.trade_off"`` (e.g. DD's is RegDA's).

    >>> trade_off_setting("dan"), trade_off_setting("dd")
    ('dan.trade_off', 'regda.trade_off')

    Raises:
        ValueError: Unknown method, or one whose ``Config`` has no ``trade_off``.
    """
    import dataclasses

    from regdakit.methods import METHODS, contract

    if method not in METHODS:
        raise ValueError(f"method must be one of {sorted(METHODS)}, got {method!r}")
    module = METHODS[method]
    if "trade_off" not in {f.name for f in dataclasses.fields(module.Config)}:
        raise ValueError(f"method {method!r} has no trade_off to tune (its Config has none)")
    return f"{contract.config_section(method, module)}.trade_off"


def choose(
    candidates: Sequence[Mapping[str, Any]],
    pretrained_source_pck: float,
    *,
    validator: str = "neg_entropy",
    margin: float = SOURCE_MARGIN,
    tolerance: float = 0.0,
) -> dict[str, Any]:
    """The trade-off the label-free rule of this module picks among one method's tuning runs.

    Reads, of each candidate, ``"trade_off"``, ``"source_pck"`` (source-validation PCK@0.05, %) and
    ``candidate[validator]``: nothing else, so no target label can enter the choice whatever the
    candidates hold beside.

    Args:
        candidates: One per grid value, e.g. ``{"trade_off": 0.3, "source_pck": 58.1, "neg_entropy": -2.4}``.
        pretrained_source_pck: Source-validation PCK@0.05 (%) of the model the runs started from.
        validator: A key of :data:`regdakit.selection.VALIDATORS` (higher is better) that decides among
            the kept candidates.
        margin: Points of source PCK a kept candidate may lose.
        tolerance: Scores within this of the best are a tie (the smallest trade-off wins).

    Returns:
        A JSON-ready report: ``chosen_trade_off``; ``status`` (``"chosen"``, ``"tie"`` or
        ``"none_within_margin"``); ``kept`` and ``tied`` (trade-offs, ascending); ``note`` (the rule's
        outcome in words); the rule's settings; per candidate its trade-off, source PCK, drop, score and
        the :func:`source_drop_flag`.

    Raises:
        ValueError: No candidates, a repeated or non-positive trade-off, a PCK outside [0, 100], an unknown
            validator, or a kept candidate without a finite score.
    """
    if validator not in VALIDATORS:
        raise ValueError(f"validator must be one of {sorted(VALIDATORS)}, got {validator!r}")
    if not candidates:
        raise ValueError("no candidates to choose from")
    pretrained = _percent("pretrained_source_pck", pretrained_source_pck)
    margin, tolerance = _points("margin", margin), _points("tolerance", tolerance)
    rows = []
    for c in candidates:
        trade_off = c["trade_off"]
        if isinstance(trade_off, bool) or not isinstance(trade_off, (int, float)) or not 0 < trade_off < math.inf:
            raise ValueError(f"trade_off must be a finite number > 0, got {trade_off!r}")
        pck = _percent(f"source_pck of trade-off {trade_off}", c["source_pck"])
        score = c.get(validator)
        rows.append({"trade_off": float(trade_off), "source_pck": pck, "source_drop": pretrained - pck,
                     validator: score, "flag_source_drop": source_drop_flag(pck, pretrained)})  # fmt: skip
    offs = [r["trade_off"] for r in rows]
    if len(set(offs)) != len(offs):
        raise ValueError(f"each trade-off once, got {offs}")
    rows.sort(key=lambda r: r["trade_off"])
    kept = [r for r in rows if r["source_drop"] <= margin]
    for r in kept:
        score = r[validator]
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
            raise ValueError(f"kept candidate of trade-off {r['trade_off']} has no finite {validator!r}: {score!r}")
    if kept:
        best = max(r[validator] for r in kept)
        tied = [r for r in kept if r[validator] >= best - tolerance]  # ascending trade-off: the first is smallest
        status = "tie" if len(tied) > 1 else "chosen"
        note = f"{len(kept)} of {len(rows)} within {margin:g} points of the pre-trained source PCK; {validator} decides"
        if status == "tie":
            note += f"; tie between {[r['trade_off'] for r in tied]}, the smallest trade-off taken"
    else:
        least = min(r["source_drop"] for r in rows)
        tied = [r for r in rows if r["source_drop"] == least]
        status = "none_within_margin"
        note = (
            f"no candidate within {margin:g} points of the pre-trained source PCK {pretrained:g}; "
            f"the one that lost least ({least:.1f} points) taken, the smallest trade-off on a tie"
        )
    return {
        "chosen_trade_off": tied[0]["trade_off"],
        "status": status,
        "kept": [r["trade_off"] for r in kept],
        "tied": [r["trade_off"] for r in tied] if len(tied) > 1 else [],
        "note": note,
        "validator": validator,
        "margin_points": margin,
        "tolerance": tolerance,
        "pretrained_source_pck": pretrained,
        "candidates": rows,
    }


#: Multipliers of the reference's adaptation rates (``lr`` 0.01, ``head_lr`` 0.1) that
#: :func:`choose_rate_scale` considers, largest first.
RATE_SCALES: tuple[float, ...] = (1.0, 0.3, 0.1)
#: Points of source-validation PCK@0.05 that continue-ERM may lose at any evaluation at a kept rate scale.
RATE_MARGIN = 2.0


def choose_rate_scale(runs: Iterable[Mapping[str, Any]], margin: float = RATE_MARGIN) -> dict[str, Any]:
    """The largest rate scale at which plain continued source training keeps the source task, in every run.

    The adaptation optimiser (RegDA's SGD, shared by every method) starts from a model trained with
    another optimiser; too high a rate knocks the model off its source optimum before any method acts
    (issue 18's "optimiser shock"). Continue-ERM, which has no method objective, isolates the optimiser:
    a scale is **kept** when, in every run at it, no evaluation's source-validation PCK@0.05 falls more
    than ``margin`` points below the model it started from. The largest kept scale is chosen; if none is
    kept, the smallest scale, and the report says so. Reads ``scale``, ``start_source_pck`` and
    ``source_pcks`` of each run (percent): no target number can enter the choice.

    Args:
        runs: One per (task, seed, scale), e.g. ``{"scale": 0.3, "start_source_pck": 72.1,
            "source_pcks": [72.5, 71.4, 71.2]}``.
        margin: Points a kept scale may lose at any evaluation.

    Returns:
        ``{"chosen_scale", "status" ("chosen" or "none_within_margin"), "kept", "worst_drop" (per scale,
        the largest drop of any run at it), "margin_points", "note"}``.

    Raises:
        ValueError: No runs, a scale that is not a finite number > 0, a run without evaluations, or a PCK
            outside [0, 100].

    >>> runs = [{"scale": 1.0, "start_source_pck": 72.1, "source_pcks": [17.8, 66.6, 68.8]},
    ...         {"scale": 0.3, "start_source_pck": 72.1, "source_pcks": [72.5, 71.4, 71.5]}]
    >>> choice = choose_rate_scale(runs)
    >>> choice["chosen_scale"], choice["kept"], choice["worst_drop"]
    (0.3, [0.3], {'1.0': 54.3, '0.3': 0.7})
    """
    margin = _points("margin", margin)
    worst: dict[float, float] = {}
    for run in runs:
        scale = run["scale"]
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 < scale < math.inf:
            raise ValueError(f"scale must be a finite number > 0, got {scale!r}")
        start = _percent(f"start_source_pck at scale {scale}", run["start_source_pck"])
        pcks = [_percent(f"source_pcks at scale {scale}", v) for v in run["source_pcks"]]
        if not pcks:
            raise ValueError(f"a run at scale {scale} has no evaluations")
        worst[float(scale)] = max(worst.get(float(scale), -math.inf), round(start - min(pcks), 4))
    if not worst:
        raise ValueError("no runs to choose a rate scale from")
    kept = sorted((scale for scale, drop in worst.items() if drop <= margin), reverse=True)
    chosen = kept[0] if kept else min(worst)
    note = (
        f"largest scale whose continue-ERM kept every evaluation within {margin:g} points of its start"
        if kept
        else f"no scale kept every run within {margin:g} points; the smallest taken"
    )
    return {
        "chosen_scale": chosen,
        "status": "chosen" if kept else "none_within_margin",
        "kept": kept,
        "worst_drop": {str(scale): drop for scale, drop in sorted(worst.items(), reverse=True)},
        "margin_points": margin,
        "note": note,
    }


def score_model(model: Any, data: Mapping[str, Any], validator: str = "neg_entropy") -> dict[str, float]:
    """A tuning candidate's label-free numbers: source-validation PCK@0.05 (%) and ``validator``'s score.

    Args:
        model: A detector (:class:`regdakit.models.PoseResNet` or one with its prediction calls).
        data: What :data:`regdakit.selection.VALIDATORS` read: ``"source_val"`` (labelled *source* batches),
            ``"target_images"`` (unlabelled target image batches) and ``"skeleton"``. No target labels.
        validator: A key of :data:`regdakit.selection.VALIDATORS`.

    Returns:
        ``{"source_pck": ..., validator: ...}``.
    """
    if validator not in VALIDATORS:
        raise ValueError(f"validator must be one of {sorted(VALIDATORS)}, got {validator!r}")
    out = {"source_pck": 100.0 * VALIDATORS["source_pck"](model, data)}
    if validator != "source_pck":
        out[validator] = VALIDATORS[validator](model, data)
    return out
