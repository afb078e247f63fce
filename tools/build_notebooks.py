#!/usr/bin/env python3
"""Build notebooks from their percent-format sources with jupytext, keeping the outputs of unchanged cells.

Every notebook ``notebooks/<path>.ipynb`` has a source
``notebooks/src/<path>.py`` in jupytext's percent format: ``# %%`` starts a
code cell, ``# %% [markdown]`` a Markdown cell whose lines start with ``# ``.
Sources are what people review and edit; the ``.ipynb`` is what people open,
committed with outputs. Building updates the inputs of the notebook and keeps
the outputs of every cell whose code did not change (jupytext's ``--update``),
then strips volatile metadata (``tools/strip_notebook.py``); cells whose code
changed need ``make notebooks`` to get outputs again.
``tests/test_notebook_sources.py`` fails when a notebook and its source differ.

Usage::

    python tools/build_notebooks.py                                   # every source
    python tools/build_notebooks.py notebooks/src/03_mean_vs_variance.py
    python tools/build_notebooks.py --check                           # exit 1 if a notebook is out of date
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import jupytext
import nbformat
from jupytext.combine import combine_inputs_with_outputs

sys.path.insert(0, str(Path(__file__).resolve().parent))
from strip_notebook import dumps, strip  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
SOURCES = NOTEBOOKS / "src"
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


def sources() -> list[Path]:
    """Every notebook source: ``notebooks/src/**/<name>.py`` whose name starts with a digit (not conftest.py)."""
    return sorted(p for p in SOURCES.rglob("*.py") if p.name[:1].isdigit())


def notebook_of(source: Path) -> Path:
    """``notebooks/src/<path>.py`` -> ``notebooks/<path>.ipynb``."""
    return NOTEBOOKS / source.resolve().relative_to(SOURCES).with_suffix(".ipynb")


def read_source(source: Path) -> nbformat.NotebookNode:
    """The notebook of a percent-format source (no outputs), with the project's kernelspec."""
    nb = jupytext.read(source, fmt="py:percent")
    nb.metadata.pop("jupytext", None)
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    return nb


def cells_of(nb: nbformat.NotebookNode) -> list[tuple[str, str]]:
    """``(cell type, source)`` of every cell: what a source defines."""
    return [(c.cell_type, "".join(c.source) if isinstance(c.source, list) else c.source) for c in nb.cells]


def build(source: Path) -> str:
    """The text of the notebook of ``source``: its cells, with the outputs of the committed notebook kept."""
    new = read_source(source)
    target = notebook_of(source)
    if target.exists():
        old = nbformat.read(target, as_version=4)
        new = combine_inputs_with_outputs(new, old, fmt="py:percent")
        new.metadata.pop("jupytext", None)
    for cell in new.cells:
        cell.metadata.pop("region_name", None)  # jupytext's note of a "[md]" header
        if isinstance(cell.source, list):
            cell.source = "".join(cell.source)
    return dumps(strip(nbformat.from_dict(new)))


def _shown(path: Path) -> str:
    """``path`` relative to the repository where it is inside it."""
    try:
        return path.resolve().relative_to(ROOT).as_posix()
    except ValueError:
        return str(path)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: 0 when done (or, with ``--check``, when nothing is out of date)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sources", nargs="*", type=Path, help="percent-format sources (default: all)")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a notebook is out of date")
    args = parser.parse_args(argv)
    stale = []
    for source in args.sources or sources():
        target = notebook_of(source)
        current = target.read_text(encoding="utf-8") if target.exists() else None
        if current is not None and cells_of(nbformat.reads(current, as_version=4)) == cells_of(read_source(source)):
            continue
        stale.append(target)
        if not args.check:
            target.write_text(build(source), encoding="utf-8")
            print(f"built {_shown(target)} from {_shown(source)}; run `make notebooks` for the outputs")
    if args.check:
        for target in stale:
            print(f"out of date: {_shown(target)}")
    return 1 if (args.check and stale) else 0


if __name__ == "__main__":
    raise SystemExit(main())
