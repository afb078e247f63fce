#!/usr/bin/env python3
"""Build a notebook from its percent-format source in ``notebooks/src/``.

A source is a Python file cut into cells by ``# %%`` lines (code) and
``# %% [md]`` lines (Markdown, each line starting with ``# ``). Sources are
easy to review and diff; the ``.ipynb`` is what people open. After building,
execute it with ``tools/run_notebooks.py`` (``make notebooks``) to store outputs.

Usage::

    python tools/nbbuild.py notebooks/src/01_sparse_density.py notebooks/01_sparse_density.ipynb
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat


def build(source: str) -> nbformat.NotebookNode:
    """The notebook of a percent-format ``source`` text (no outputs)."""
    cells = []
    for chunk in re.split(r"^# %%", source, flags=re.M)[1:]:
        header, _, body = chunk.partition("\n")
        body = body.strip("\n")
        if header.strip().startswith("[md]"):
            lines = [line[2:] if line.startswith("# ") else line.lstrip("#") for line in body.splitlines()]
            cells.append(nbformat.v4.new_markdown_cell("\n".join(lines)))
        else:
            cells.append(nbformat.v4.new_code_cell(body))
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def main(argv: list[str]) -> int:
    """Build ``argv[1]`` from ``argv[0]``; 2 on a usage error."""
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    src, dst = map(Path, argv)
    nb = build(src.read_text())
    nbformat.write(nb, dst)
    print(f"wrote {dst} ({len(nb.cells)} cells)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
