"""Small-sample statistics of the benchmarks: means over seeds with 95 % Student-t intervals, paired differences.

A benchmark row is a handful of seeds (three to five), so its interval uses
Student's t with ``n - 1`` degrees of freedom, not the normal 1.96: with five
seeds the half-width is ``2.776 * sd / sqrt(5)``. Two methods run on the same
seeds (the same shipped source-only model, the same streams) are compared by
their **paired** differences, seed by seed, which removes what the seeds share.

The t quantile is computed here, without scipy: the two-sided Student-t
probability ``P(|T| <= t)`` of an integer number of degrees of freedom has a
closed form (Abramowitz & Stegun 26.7.3-4, a finite sum in ``cos θ``,
``θ = atan(t / sqrt(df))``), inverted by bisection.

>>> round(t_quantile(4), 4)  # 95 %, 4 degrees of freedom (five seeds)
2.7764
>>> summary([1.0, 3.0])["ci95"]  # mean 2, sd sqrt(2), n 2: 2 ± 12.7062
[-10.7062, 14.7062]
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["format_interval", "paired_differences", "summary", "t_quantile", "t_two_sided"]


def _df(df: Any) -> int:
    if isinstance(df, bool) or not isinstance(df, int) or df < 1:
        raise ValueError(f"degrees of freedom must be an int >= 1, got {df!r}")
    return df


def t_two_sided(t: float, df: int) -> float:
    """``P(|T| <= t)`` for Student's t with ``df`` degrees of freedom (A&S 26.7.3-4).

    >>> round(t_two_sided(12.7062047, 1), 6), round(t_two_sided(4.30265273, 2), 6)
    (0.95, 0.95)
    """
    df = _df(df)
    if t <= 0:
        return 0.0
    theta = math.atan(t / math.sqrt(df))
    c2 = math.cos(theta) ** 2
    if df % 2:  # odd: (2/π)(θ + sin θ cos θ Σ_j a_j cos^{2j} θ), a_0 = 1, a_j = a_{j-1} 2j / (2j + 1)
        total, term = 0.0, 1.0
        for j in range((df - 1) // 2):
            total += term
            term *= c2 * (2 * j + 2) / (2 * j + 3)
        return (2 / math.pi) * (theta + math.sin(theta) * math.cos(theta) * total)
    # even: sin θ Σ_j b_j cos^{2j} θ, b_0 = 1, b_j = b_{j-1} (2j - 1) / 2j
    total, term = 0.0, 1.0
    for j in range(df // 2):
        total += term
        term *= c2 * (2 * j + 1) / (2 * j + 2)
    return math.sin(theta) * total


def t_quantile(df: int, confidence: float = 0.95) -> float:
    """The ``t`` with ``P(|T| <= t) = confidence``: the half-width of a t-interval is ``t * sd / sqrt(n)``.

    >>> [round(t_quantile(df), 3) for df in (1, 2, 3, 9, 30)]
    [12.706, 4.303, 3.182, 2.262, 2.042]

    Raises:
        ValueError: ``df`` not an int >= 1, or ``confidence`` outside (0, 1).
    """
    df = _df(df)
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    lo, hi = 0.0, 1.0
    while t_two_sided(hi, df) < confidence:
        hi *= 2
    for _ in range(200):  # bisection to the float's precision
        mid = (lo + hi) / 2
        if mid in (lo, hi):
            break
        lo, hi = (mid, hi) if t_two_sided(mid, df) < confidence else (lo, mid)
    return (lo + hi) / 2


def summary(values: Iterable[float | None], digits: int | None = 4) -> dict[str, Any]:
    """Mean, sample standard deviation and 95 % t-interval of ``values`` (``None`` and NaN left out).

    Args:
        values: One number per seed.
        digits: Round the returned numbers to this many decimals (``None``: unrounded).

    Returns:
        ``{"n": 0}`` without values; else ``{"n", "mean", "values"}``, and from two values on ``"sd"``
        and ``"ci95"`` ``[low, high]``.
    """
    kept = [float(v) for v in values if v is not None and not math.isnan(v)]
    if any(math.isinf(v) for v in kept):
        raise ValueError(f"values must be finite (or None / NaN, left out), got {kept}")
    if not kept:
        return {"n": 0}
    r = (lambda v: v) if digits is None else (lambda v: round(v, digits))
    mean = statistics.fmean(kept)
    out: dict[str, Any] = {"n": len(kept), "mean": r(mean), "values": [r(v) for v in kept]}
    if len(kept) > 1:
        sd = statistics.stdev(kept)
        half = t_quantile(len(kept) - 1) * sd / math.sqrt(len(kept))
        out |= {"sd": r(sd), "ci95": [r(mean - half), r(mean + half)]}
    return out


def paired_differences(
    method: Mapping[int, float], baseline: Mapping[int, float], digits: int | None = 4
) -> dict[str, Any]:
    """``method - baseline`` seed by seed on the seeds both have, with :func:`summary` of the differences.

    Args:
        method: seed -> value (e.g. target PCK@0.05 of RegDA).
        baseline: seed -> value of the row it is compared with, on the same seeds.
        digits: As in :func:`summary`.

    Returns:
        :func:`summary` of the differences plus ``"seeds"`` (the paired ones, ascending) and ``"unpaired"``
        (seeds only one side has a finite value of, None or NaN included: left out).

    Raises:
        ValueError: No seed has a value on both sides.

    >>> d = paired_differences({1: 10.0, 2: 12.0, 3: 11.0}, {1: 8.0, 2: 9.0, 3: 10.0, 4: 5.0})
    >>> d["values"], d["mean"], d["ci95"], d["unpaired"]
    ([2.0, 3.0, 1.0], 2.0, [-0.4841, 4.4841], [4])
    """

    def has(side: Mapping[int, float], seed: int) -> bool:
        value = side.get(seed)
        return value is not None and math.isfinite(value)

    seeds = sorted(s for s in set(method) & set(baseline) if has(method, s) and has(baseline, s))
    if not seeds:
        raise ValueError(f"no seed with a value on both sides: {dict(method)} against {dict(baseline)}")
    diffs = [method[s] - baseline[s] for s in seeds]
    unpaired = sorted((set(method) | set(baseline)) - set(seeds))
    return {**summary(diffs, digits), "seeds": seeds, "unpaired": unpaired}


def format_interval(
    stat: Mapping[str, Any], digits: int = 1, *, signed: bool = False, width: int = 0, show_n: bool = False
) -> str:
    """``"mean [low, high]"`` of a :func:`summary` or :func:`paired_differences`, as the tables print it.

    Args:
        stat: A summary (``"n"``; ``"mean"`` from one value on; ``"ci95"`` from two).
        digits: Decimals of every number.
        signed: Print ``+`` before positive numbers (differences).
        width: Minimum width of every number, to align columns (0: none).
        show_n: Append ``" (n=k)"``.

    Returns:
        ``"not run"`` for a summary of no values; the mean alone for one value (it has no interval).

    >>> format_interval(summary([1.0, 3.0]))
    '2.0 [-10.7, 14.7]'
    >>> format_interval(paired_differences({1: 3.0, 2: 5.0}, {1: 1.0, 2: 2.0}), signed=True, show_n=True)
    '+2.5 [-3.9, +8.9] (n=2)'
    >>> format_interval(summary([4.0]), show_n=True), format_interval(summary([]))
    ('4.0 (n=1)', 'not run')
    """
    n = stat.get("n")
    if not n:
        return "not run"
    spec = f"{'+' if signed else ''}{width or ''}.{digits}f"
    text = format(stat["mean"], spec)
    if "ci95" in stat:
        low, high = stat["ci95"]
        text += f" [{low:{spec}}, {high:{spec}}]"
    return text + (f" (n={n})" if show_n else "")
