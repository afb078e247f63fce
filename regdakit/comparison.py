"""Reading, normalising and plotting method comparisons (Tables 1 and 2 of the paper, notebook 05).

The benchmark (``benchmarks/comparison_benchmark.py``) writes
``table1_<suffix>.json`` and ``table2_<suffix>.json``: per task, per row
(method), PCK statistics over seeds, and checkpoint selection. Absolute PCK
on the synthetic tasks is not comparable with the paper's RHD -> H3D numbers,
so methods are also compared as the **fraction of the gap closed** between
source only (0) and the oracle (1): ``(X - source) / (oracle - source)``,
which puts both on one scale.

The v2 protocol (``benchmarks/comparison_v2.py``) compares seed by seed:
:func:`gap_closed_seeds` per seed and as a ratio of means, against the
stronger of the oracle and the target fine-tune (:func:`stronger_reference`;
both reported by :func:`gap_report`), and :func:`ordering_agreement` says for
each pair of rows whether the paired difference's 95 % interval agrees with
the paper's order. The paper's numbers are held by the benchmark they come
from (:data:`PAPER_BENCHMARKS`, :data:`PAPER_BENCHMARK_OF`).

>>> gap_closed({"source_only": 60.0, "regda": 70.0, "oracle": 100.0})["regda"]
0.25
"""

from __future__ import annotations

import json
import os
import statistics
from collections.abc import Mapping, Sequence
from itertools import combinations
from typing import Any

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from regdakit.stats import paired_differences, summary

__all__ = [
    "LABELS",
    "PAPER",
    "PAPER_BENCHMARKS",
    "PAPER_BENCHMARK_OF",
    "gap_closed",
    "gap_closed_per_seed",
    "gap_closed_seeds",
    "gap_report",
    "load_table",
    "markdown_sections",
    "ordering_agreement",
    "pairwise_agreement",
    "plot_gap_closed",
    "plot_learning_curves",
    "plot_paired_differences",
    "plot_selection",
    "stronger_reference",
]

#: The paper's RHD -> H3D PCK@0.05 (ResNet-101): Table 1 and the Table-2 variant ``false_max``.
PAPER = {"source_only": 61.8, "dan": 55.1, "dann": 60.6, "mcd": 54.6, "dd": 65.2, "false_max": 66.5,
         "regda": 72.5, "oracle": 95.8}  # fmt: skip
#: The paper's PCK@0.05 "Avg" (%) by the benchmark it was measured on: RHD -> H3D has every row of Tables 1
#: and 2; the bodies benchmarks only source only (ERM), RegDA and the oracle (the reference repository's
#: README). SURREAL -> LSP's oracle is left out: the README's row is a copy of the Human3.6M one.
PAPER_BENCHMARKS: dict[str, dict[str, float]] = {
    "RHD -> H3D": PAPER,
    "SURREAL -> Human3.6M": {"source_only": 67.3, "regda": 75.6, "oracle": 92.9},
    "SURREAL -> LSP": {"source_only": 63.9, "regda": 74.6},
}
#: ``(task, target domain)`` of the synthetic benchmark -> the paper's benchmark it stands in for.
PAPER_BENCHMARK_OF = {
    ("hands", "studio"): "RHD -> H3D",
    ("bodies", "lab"): "SURREAL -> Human3.6M",
    ("bodies", "wild"): "SURREAL -> LSP",
}
#: Short display names of the rows.
LABELS = {"source_only": "source only", "continue": "continue-ERM", "control": "control", "dan": "DAN",
          "dann": "DANN", "mcd": "MCD", "dd": "DD", "false_max": "f' min L_F / ψ max L_F", "regda": "RegDA",
          "finetune": "target fine-tune", "oracle": "oracle"}  # fmt: skip

METRIC = "pck@0.05/all"


def load_table(path: str | os.PathLike) -> dict[str, Any]:
    """A benchmark table (JSON); a clear error when it is missing or not one.

    Raises:
        FileNotFoundError: No file at ``path`` (the message names the command that writes it).
        ValueError: The file has no ``tasks``.
    """
    try:
        data = json.loads(open(path).read())
    except FileNotFoundError:
        raise FileNotFoundError(
            f"no benchmark table at {os.fspath(path)}; run python benchmarks/comparison_benchmark.py"
        ) from None
    if not isinstance(data, dict) or "tasks" not in data:
        raise ValueError(f"{os.fspath(path)} is not a comparison table (no 'tasks')")
    return data


def gap_closed(pck: Mapping[str, float], source: str = "source_only", oracle: str = "oracle") -> dict[str, float]:
    """``row -> (pck[row] - pck[source]) / (pck[oracle] - pck[source])`` for every row.

    Raises:
        ValueError: ``source`` or ``oracle`` missing, or the oracle is not above source only.
    """
    if source not in pck or oracle not in pck:
        raise ValueError(f"need {source!r} and {oracle!r} among the rows, got {sorted(pck)}")
    span = pck[oracle] - pck[source]
    if not span > 0:
        raise ValueError(f"the oracle ({pck[oracle]}) must be above source only ({pck[source]})")
    return {row: (value - pck[source]) / span for row, value in pck.items()}


def gap_closed_per_seed(task_table: Mapping[str, Any], metric: str = METRIC) -> dict[str, list[float]]:
    """Per row, the gap closed in each seed (each seed against its own source-only model and oracle).

    Args:
        task_table: ``table["tasks"][task]`` of a benchmark table with ``source_only`` and ``oracle`` rows.
        metric: Which PCK.
    """
    pck = task_table["pck"]
    seeds = {
        row: dict(zip(entry[metric]["seeds"], entry[metric]["per_seed"], strict=True)) for row, entry in pck.items()
    }
    out = {}
    for row, by_seed in seeds.items():
        common = [s for s in by_seed if s in seeds["source_only"] and s in seeds["oracle"]]
        out[row] = [
            gap_closed({"source_only": seeds["source_only"][s], "oracle": seeds["oracle"][s], row: by_seed[s]})[row]
            for s in common
        ]
    return out


def gap_closed_seeds(
    row: Mapping[int, float], source: Mapping[int, float], reference: Mapping[int, float], digits: int | None = 4
) -> dict[str, Any]:
    """The gap a row closes between source only (0) and a reference (1), per seed and as a ratio of means.

    Per seed ``s``: ``(row[s] - source[s]) / (reference[s] - source[s])``; the ratio of means uses the
    means over the same seeds: ``(mean row - mean source) / (mean reference - mean source)``, steadier than
    the mean of per-seed ratios when a seed's gap is small.

    Args:
        row: seed -> PCK of the row (e.g. RegDA).
        source: seed -> PCK of source only (the shipped model the row started from).
        reference: seed -> PCK of the ``1`` (the oracle or the target fine-tune).
        digits: Round the returned numbers (``None``: unrounded).

    Returns:
        ``{"seeds", "per_seed": {seed: gap}, "summary": summary of the per-seed gaps, "ratio_of_means",
        "undefined": seeds left out because the reference is not above source only there}``.

    Raises:
        ValueError: No seed has all three values with the reference above source only.

    >>> g = gap_closed_seeds({1: 20.0, 2: 30.0}, {1: 10.0, 2: 20.0}, {1: 30.0, 2: 60.0})
    >>> g["per_seed"], g["ratio_of_means"]
    ({1: 0.5, 2: 0.25}, 0.3333)
    """
    r = (lambda v: v) if digits is None else (lambda v: round(v, digits))
    common = sorted(s for s in set(row) & set(source) & set(reference)
                    if None not in (row[s], source[s], reference[s]))  # fmt: skip
    seeds = [s for s in common if reference[s] > source[s]]
    if not seeds:
        raise ValueError(
            f"no seed with the row, source only and a reference above source only: row seeds {sorted(row)}, "
            f"source {sorted(source)}, reference {sorted(reference)}"
        )
    per_seed = {s: (row[s] - source[s]) / (reference[s] - source[s]) for s in seeds}
    mean = {name: statistics.fmean(side[s] for s in seeds) for name, side in
            (("row", row), ("source", source), ("reference", reference))}  # fmt: skip
    return {
        "seeds": seeds,
        "per_seed": {s: r(g) for s, g in per_seed.items()},
        "summary": summary(per_seed.values(), digits),
        "ratio_of_means": r((mean["row"] - mean["source"]) / (mean["reference"] - mean["source"])),
        "undefined": [s for s in common if s not in seeds],
    }


def stronger_reference(
    per_row: Mapping[str, Mapping[int, float]], candidates: Sequence[str] = ("oracle", "finetune")
) -> str:
    """The candidate row with the higher mean PCK over its seeds: the ``1`` of the gap closed (the first on ties).

    >>> stronger_reference({"oracle": {1: 30.0, 2: 34.0}, "finetune": {1: 40.0}})
    'finetune'

    Raises:
        ValueError: None of ``candidates`` has a value.
    """
    means = {}
    for name in candidates:
        values = [v for v in per_row.get(name, {}).values() if v is not None]
        if values:
            means[name] = statistics.fmean(values)
    if not means:
        raise ValueError(f"no reference row with values among {list(candidates)}: rows {sorted(per_row)}")
    return max(means, key=lambda name: means[name])  # max keeps the first of equal means


def gap_report(
    per_row: Mapping[str, Mapping[int, float]],
    rows: Sequence[str],
    source: str = "source_only",
    references: Sequence[str] = ("oracle", "finetune"),
    digits: int | None = 4,
) -> dict[str, Any]:
    """:func:`gap_closed_seeds` of every row against every reference present, and which one is the stronger.

    Args:
        per_row: row -> seed -> PCK.
        rows: The rows to report (those without values, or without a common seed, are left out).
        source: The row of the ``0``.
        references: The candidates for the ``1`` (:func:`stronger_reference` picks one).
        digits: As in :func:`gap_closed_seeds`.

    Returns:
        ``{"reference": the stronger, "means": {reference: mean PCK}, "rows": {row: {reference: gap}}}``.
    """
    present = [name for name in references if per_row.get(name)]
    out: dict[str, Any] = {"reference": stronger_reference(per_row, references) if present else None,
                           "means": {name: round(statistics.fmean(per_row[name].values()), 4) for name in present},
                           "rows": {}}  # fmt: skip
    if source not in per_row:
        return out
    for row in rows:
        if not per_row.get(row):
            continue
        gaps = {}
        for ref in present:
            try:
                gaps[ref] = gap_closed_seeds(per_row[row], per_row[source], per_row[ref], digits)
            except ValueError:
                continue
        if gaps:
            out["rows"][row] = gaps
    return out


def ordering_agreement(
    per_row: Mapping[str, Mapping[int, float]], paper: Mapping[str, float], rows: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """For each pair of rows the paper orders, the measured paired difference and whether it agrees.

    The pair is written ``(higher, lower)`` in the paper's order, so a positive mean difference agrees.
    Verdict: ``"agrees"`` when the 95 % t-interval of ``higher - lower`` lies above 0, ``"disagrees"`` when
    below, ``"undecided"`` when it holds 0, ``"no interval"`` with a single paired seed.

    Args:
        per_row: row -> seed -> PCK.
        paper: row -> the paper's PCK on one benchmark (:data:`PAPER_BENCHMARKS`).
        rows: Which rows, in order (default: those of ``per_row``).

    >>> out = ordering_agreement({"a": {1: 3.0, 2: 4.0}, "b": {1: 1.0, 2: 1.5}}, {"a": 10.0, "b": 5.0})
    >>> out[0]["pair"], out[0]["difference"]["mean"], out[0]["verdict"]
    (['a', 'b'], 2.25, 'undecided')
    """
    have = [r for r in (rows if rows is not None else list(per_row)) if per_row.get(r) and r in paper]
    out = []
    for a, b in combinations(have, 2):
        if paper[a] == paper[b]:
            continue
        hi, lo = (a, b) if paper[a] > paper[b] else (b, a)
        try:
            diff = paired_differences(per_row[hi], per_row[lo])
        except ValueError:  # no common seed
            continue
        if "ci95" not in diff:
            verdict = "no interval"
        elif diff["ci95"][0] > 0:
            verdict = "agrees"
        elif diff["ci95"][1] < 0:
            verdict = "disagrees"
        else:
            verdict = "undecided"
        out.append({"pair": [hi, lo], "paper": [paper[hi], paper[lo]], "difference": diff, "verdict": verdict})
    return out


def pairwise_agreement(measured: Mapping[str, float], paper: Mapping[str, float] = PAPER) -> tuple[int, int]:
    """How many pairs of rows the measurement orders as the paper does: ``(agreeing, pairs)``.

    >>> pairwise_agreement({"a": 1.0, "b": 2.0, "c": 3.0}, {"a": 10.0, "b": 30.0, "c": 20.0})
    (2, 3)
    """
    rows = [r for r in measured if r in paper]
    pairs = list(combinations(rows, 2))
    agree = sum((measured[a] - measured[b]) * (paper[a] - paper[b]) > 0 for a, b in pairs)
    return agree, len(pairs)


def plot_gap_closed(table: Mapping[str, Any], rows: Sequence[str], *, ax: plt.Axes | None = None) -> Figure:
    """Bars: the gap closed per method and task (mean, std over seeds, seeds as dots); diamonds: the paper's.

    Args:
        table: A benchmark table (:func:`load_table`) with ``source_only`` and ``oracle`` rows per task.
        rows: The methods to show, in order.
        ax: Axes to draw on (a new figure if ``None``).
    """
    if ax is None:
        fig, ax = plt.subplots(figsize=(1.4 * len(rows) + 2, 3.8))
    else:
        fig = ax.figure
    tasks = list(table["tasks"])
    width = 0.8 / (len(tasks) + 1)
    paper_gap = gap_closed(PAPER)
    for i, task in enumerate(tasks):
        per_seed = gap_closed_per_seed(table["tasks"][task])
        xs = [r + (i - len(tasks) / 2) * width for r in range(len(rows))]
        means = [statistics.fmean(per_seed[row]) for row in rows]
        stds = [statistics.stdev(per_seed[row]) if len(per_seed[row]) > 1 else 0.0 for row in rows]
        ax.bar(xs, means, width, yerr=stds, capsize=3, label=f"{task} (synthetic, mean ± std)", alpha=0.8)
        for x, row in zip(xs, rows, strict=True):
            ax.plot([x] * len(per_seed[row]), per_seed[row], "k.", ms=3)
    ax.scatter(
        [r + (len(tasks) / 2) * width for r in range(len(rows))],
        [paper_gap[row] for row in rows],
        marker="D",
        color="black",
        zorder=3,
        label="paper, RHD → H3D",
    )
    ax.axhline(0, color="grey", lw=1)
    ax.set_xticks(range(len(rows)), [LABELS[r] for r in rows])
    ax.set_ylabel("gap closed: 0 = source only, 1 = oracle")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def plot_selection(table: Mapping[str, Any], task: str, *, ax: plt.Axes | None = None) -> Figure:
    """Target PCK@0.05 of the checkpoint each rule picks, per method (mean over seeds).

    Rules: the last iteration, each label-free validator, and the oracle pick (hollow marker: it reads
    target labels, not a valid UDA protocol).
    """
    selection = table["tasks"][task]["selection"]
    if not selection:
        raise ValueError(f"the table has no checkpoint selection for {task!r}")
    if ax is None:
        fig, ax = plt.subplots(figsize=(8, 3.8))
    else:
        fig = ax.figure
    methods = list(selection)
    rules = list(next(iter(selection.values())))
    for j, rule in enumerate(rules):
        xs, ys = [], []
        for i, method in enumerate(methods):
            if rule in selection[method]:
                xs.append(i + (j - len(rules) / 2) * 0.12)
                ys.append(selection[method][rule]["mean"])
        oracle = rule.startswith("oracle")
        ax.scatter(
            xs,
            ys,
            label=rule,
            marker="o" if not oracle else "s",
            facecolors="none" if oracle else None,
            edgecolors="black" if oracle else None,
            zorder=3,
        )
    ax.set_xticks(range(len(methods)), [LABELS[m] for m in methods])
    ax.set_ylabel("target PCK@0.05 of the pick (%)")
    ax.set_title(f"{task}: which checkpoint each rule picks")
    ax.grid(axis="y", alpha=0.3)
    # Below the axes: the picks of different rules sit close together and a legend inside would hide some.
    ax.legend(fontsize=7, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.12), frameon=False)
    return fig


def plot_paired_differences(
    result: Mapping[str, Any],
    task: str,
    against: str,
    *,
    rows: Sequence[str] | None = None,
    ax: plt.Axes | None = None,
) -> Figure:
    """Each row's target PCK@0.05 minus ``against``'s, paired by seed: seeds as dots, mean and 95 % t-interval.

    Args:
        result: ``comparison_v2.json`` of ``benchmarks/comparison_v2.py`` (its ``tasks[task]["rows"][row]
            ["minus"][against]``: :func:`regdakit.stats.paired_differences` of the two rows' seeds).
        task: ``"hands"`` or ``"bodies"``.
        against: The baseline, e.g. ``"source_only"``, ``"continue"`` or ``"control"``.
        rows: The rows to show, in order (``None``: every row of the result); e.g. without the oracle,
            whose tens of points would squeeze the methods' differences of a few.
        ax: Axes to draw on (a new figure if ``None``).

    An interval that does not cross the line at 0 is a difference the seeds support; rows that have no
    paired difference with ``against`` (the baseline itself, a row run on no common seed) are left out.

    Raises:
        ValueError: ``task`` is not in the result, or no row has a difference with ``against``.
    """
    tasks = result.get("tasks", {})
    if task not in tasks:
        raise ValueError(f"the result has no task {task!r}; it has {sorted(tasks)}")
    table = tasks[task]["rows"]
    wanted = list(table) if rows is None else [row for row in rows if row in table]
    shown = [(row, table[row]["minus"][against]) for row in wanted if against in table[row].get("minus", {})]
    if not shown:
        known = sorted({base for entry in table.values() for base in entry.get("minus", {})})
        raise ValueError(f"no row of {task} has a paired difference with {against!r}; the baselines are {known}")
    if ax is None:
        fig, ax = plt.subplots(figsize=(7, 0.45 * len(shown) + 1.2))
    else:
        fig = ax.figure
    for y, (_row, diff) in enumerate(shown):
        low, high = diff["ci95"] if diff.get("ci95") else (diff["mean"], diff["mean"])
        excludes_zero = low > 0 or high < 0
        colour = "tab:blue" if excludes_zero else "tab:grey"
        ax.plot([low, high], [y, y], color=colour, lw=2.5, solid_capstyle="butt")
        ax.plot(diff["mean"], y, "o", color=colour, ms=7, zorder=3)
        ax.plot(diff["values"], [y + 0.22] * len(diff["values"]), "k.", ms=3)
    ax.axvline(0, color="black", lw=1)
    ax.set_yticks(range(len(shown)), [table[row]["label"] for row, _ in shown])
    ax.invert_yaxis()
    baseline = table[against]["label"] if against in table else against
    ax.set_xlabel(f"target PCK@0.05 minus {baseline} (points), paired by seed")
    ax.set_title(f"{task}: mean and 95 % t-interval (blue: excludes 0); dots: seeds", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    return fig


def plot_learning_curves(
    curves: Mapping[str, Any],
    task: str,
    *,
    rows: Sequence[str] | None = None,
    start: Mapping[Any, float] | None = None,
    ax: plt.Axes | None = None,
) -> Figure:
    """Each row's target PCK@0.05 at every evaluation of the adaptation: the mean over seeds, each seed thin.

    Args:
        curves: ``comparison_v2/curves.json`` of ``benchmarks/comparison_v2_curves.py``: ``tasks[task][row]``
            with ``"seeds"`` (seed -> ``{"iterations", "target", "source"}``) and their ``"mean"``.
        task: ``"hands"`` or ``"bodies"``.
        rows: The rows to draw, in order (``None``: every row of the task); rows without curves are skipped,
            and each row keeps its colour (its place in ``rows``) whichever others are drawn.
        start: Seed -> the target PCK of the source-only model that seed's runs start from. Given, every
            curve is drawn minus its own seed's start (the gain of adapting, paired by seed, so that rows run
            on different seeds compare), with 0 dashed; ``None``: the PCK itself.
        ax: Axes to draw on (a new figure if ``None``).

    Raises:
        ValueError: ``task`` is not in ``curves``, none of ``rows`` has a curve, or ``start`` lacks a seed.
    """
    tasks = curves.get("tasks", {})
    if task not in tasks:
        raise ValueError(f"the curves have no task {task!r}; they have {sorted(tasks)}")
    table = tasks[task]
    asked = list(table) if rows is None else list(rows)
    shown = [row for row in asked if row in table]
    if not shown:
        raise ValueError(f"none of the rows {asked} has a curve for {task}; there are {sorted(table)}")
    starts = {str(seed): value for seed, value in (start or {}).items()}
    if ax is None:
        fig, ax = plt.subplots(figsize=(7, 4))
    else:
        fig = ax.figure
    colours = plt.get_cmap("tab10")
    for row in shown:
        colour = colours(asked.index(row) % 10)
        lines = []
        for seed, curve in table[row]["seeds"].items():
            if start is not None and str(seed) not in starts:
                raise ValueError(f"start has no value for seed {seed} of {task} {row}; it has {sorted(starts)}")
            offset = starts[str(seed)] if start is not None else 0.0
            lines.append([v - offset for v in curve["target"]])
            ax.plot(curve["iterations"], lines[-1], color=colour, lw=0.6, alpha=0.3)
        mean = [statistics.fmean(values) for values in zip(*lines, strict=True)]
        ax.plot(table[row]["mean"]["iterations"], mean, color=colour, lw=2, marker="o", ms=3,
                label=f"{LABELS.get(row, row)} ({len(lines)} seed{'s' * (len(lines) != 1)})")  # fmt: skip
    if start is not None:
        ax.axhline(0, color="black", ls="--", lw=1, label="source only (start)")
        ax.set_ylabel("target PCK@0.05 minus source only\n(points, paired by seed)")
    else:
        ax.set_ylabel("target PCK@0.05 (%)")
    ax.set_xlabel("adaptation iteration")
    ax.set_title(f"{task}: mean over seeds (thick), each seed (thin)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return fig


def markdown_sections(text: str) -> dict[str, str]:
    r"""A Markdown report split at its headings: ``{heading text: the section, heading line included}``.

    Each section runs to the next heading of any level; text before the first heading is under ``""``.
    Notebooks show parts of ``comparison_v2.md`` with it, so that the tables they show are the committed
    ones, formatted once by the benchmark.

    >>> parts = markdown_sections("intro\n## A\none\n### A: b\ntwo\n")
    >>> list(parts), parts["A: b"]
    (['', 'A', 'A: b'], '### A: b\ntwo')
    """
    sections: dict[str, list[str]] = {"": []}
    current = ""
    for line in text.splitlines():
        stripped = line.lstrip("#")
        if line.startswith("#") and stripped.startswith(" "):
            current = stripped.strip()
            if current in sections:
                raise ValueError(f"the heading {current!r} occurs twice")
            sections[current] = []
        sections[current].append(line)
    return {heading: "\n".join(lines).strip() for heading, lines in sections.items()}
