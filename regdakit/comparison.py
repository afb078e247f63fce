"""Reading, normalising and plotting method comparisons (Tables 1 and 2 of the paper, notebook 05).

The benchmark (``benchmarks/comparison_benchmark.py``) writes
``table1_<suffix>.json`` and ``table2_<suffix>.json``: per task, per row
(method), PCK statistics over seeds, and checkpoint selection. Absolute PCK
on the synthetic tasks is not comparable with the paper's RHD -> H3D numbers,
so methods are also compared as the **fraction of the gap closed** between
source only (0) and the oracle (1): ``(X - source) / (oracle - source)``,
which puts both on one scale.

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

__all__ = [
    "LABELS",
    "PAPER",
    "gap_closed",
    "gap_closed_per_seed",
    "load_table",
    "pairwise_agreement",
    "plot_gap_closed",
    "plot_selection",
]

#: The paper's RHD -> H3D PCK@0.05 (ResNet-101): Table 1 and the Table-2 variant ``false_max``.
PAPER = {"source_only": 61.8, "dan": 55.1, "dann": 60.6, "mcd": 54.6, "dd": 65.2, "false_max": 66.5,
         "regda": 72.5, "oracle": 95.8}  # fmt: skip
#: Short display names of the rows.
LABELS = {"source_only": "source only", "dan": "DAN", "dann": "DANN", "mcd": "MCD", "dd": "DD",
          "false_max": "f' min L_F / ψ max L_F", "regda": "RegDA", "oracle": "oracle"}  # fmt: skip

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
