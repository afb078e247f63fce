"""Reading a training run back: its evaluation curve and a plot of curves.

The trainer appends one JSON object per line to ``<run>/metrics.jsonl``:
``{"phase", "iteration", "train": {...}}`` every ``log_every`` iterations and
``{"phase", "iteration", "eval": {"source_val": {...}, "target_test": {...}}}``
every ``eval_every``. The keys of ``"train"`` are the methods' vocabulary,
``"<step>/<name>"`` (:mod:`regdakit.methods`: ``"A/source"``,
``"B/adversary"``...). These functions turn that log into arrays and figures.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

__all__ = ["eval_curve", "loss_curve", "plot_curves", "read_log"]


def read_log(path: str | os.PathLike) -> list[dict]:
    """Every record of a ``metrics.jsonl`` (a run folder or the file itself), in order.

    Raises:
        FileNotFoundError: No log there.
        ValueError: A line is not JSON (names the line).
    """
    path = Path(path)
    if path.is_dir():
        path = path / "metrics.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"no training log at {path}")
    records = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise ValueError(f"{path} line {number} is not JSON: {err}") from None
    return records


def eval_curve(
    records: Sequence[Mapping], split: str = "target_test", metric: str = "pck@0.05/all", offset: int = 0
) -> tuple[list[int], list[float]]:
    """``(iterations, values in %)`` of one evaluation metric over a run.

    Args:
        records: From :func:`read_log`.
        split: ``"target_test"`` or ``"source_val"``.
        metric: A key of the trainer's evaluation, e.g. ``"pck@0.1/all"`` or ``"pck@0.05/Fingertip"``.
        offset: Added to every iteration (to draw an adaptation run after its pre-training).

    Raises:
        KeyError: No evaluation in ``records`` has ``split`` / ``metric`` (names the ones there are).
    """
    evals = [r for r in records if "eval" in r]
    if not evals:
        raise KeyError("the log has no evaluation records")
    if split not in evals[0]["eval"] or metric not in evals[0]["eval"][split]:
        raise KeyError(
            f"no {split!r} / {metric!r} in the log; splits {sorted(evals[0]['eval'])}, "
            f"metrics {sorted(next(iter(evals[0]['eval'].values())))}"
        )
    return [r["iteration"] + offset for r in evals], [100 * r["eval"][split][metric] for r in evals]


def loss_curve(records: Sequence[Mapping], key: str, phase: str | None = None) -> tuple[list[int], list[float]]:
    """``(iterations, values)`` of one logged training value (the mean over each ``log_every`` window).

    Args:
        records: From :func:`read_log`.
        key: A key of the methods' vocabulary, e.g. ``"A/source"`` or ``"C/features"``. Logs of earlier
            versions (``"A_source"``, ``"C_truth"``, ``"mmd"``...) are read under their names of now
            (:data:`regdakit.methods.contract.LEGACY_KEYS`).
        phase: Only the records of this phase (``"adapt"``, ``"pretrain"``, ``"erm"``...); all when ``None``.

    Raises:
        KeyError: No training record has ``key`` (names the keys there are).

    >>> loss_curve([{"phase": "adapt", "iteration": 5, "train": {"A_source": 1.5}}], "A/source")
    ([5], [1.5])
    """
    from regdakit.methods.contract import upgrade_key

    points = [
        (r["iteration"], value)
        for r in records
        if "train" in r and (phase is None or r.get("phase") == phase)
        for name, value in r["train"].items()
        if upgrade_key(name) == key
    ]
    if not points:
        known = sorted({upgrade_key(k) for r in records if "train" in r for k in r["train"]})
        raise KeyError(f"no training value {key!r} in the log; it has {known}")
    return [i for i, _ in points], [v for _, v in points]


def plot_curves(
    curves: Mapping[str, tuple[Sequence[int], Sequence[float]]],
    *,
    title: str,
    ylabel: str = "target PCK@0.05 (%)",
    ax: plt.Axes | None = None,
) -> Figure:
    """One line per named curve ``name -> (iterations, values)``, with markers at the evaluations."""
    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 3.5))
    else:
        fig = ax.figure
    for name, (x, y) in curves.items():
        ax.plot(x, y, marker="o", markersize=3, label=name)
    ax.set(xlabel="iteration", ylabel=ylabel, title=title)
    ax.grid(alpha=0.3)
    ax.legend()
    return fig
