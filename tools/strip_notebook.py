#!/usr/bin/env python3
"""Strip volatile metadata from executed notebooks, keeping their outputs.

Notebooks are committed *with* outputs so that a reader sees the figures
without running anything. What changes on every run without changing the
content is removed, so that re-running a notebook gives a small diff:

* per-cell ``metadata.execution`` (the ``iopub.execute_input`` /
  ``shell.execute_reply`` timestamps that nbclient and JupyterLab record);
* notebook-level ``metadata.widgets`` (the saved ipywidgets state);
* the ``application/vnd.jupyter.widget-view+json`` entry of an output that also
  has a ``text/plain`` fallback: without the saved state that view points at a
  widget model that no longer exists, so readers get the plain-text fallback
  instead of "model not found".

Everything else (outputs, execution counts, kernelspec, ``language_info``) is
kept. Usage::

    python tools/strip_notebook.py notebooks/*.ipynb
    python tools/strip_notebook.py --check notebooks/*.ipynb   # exit 1 if any would change
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def strip(nb: dict[str, Any]) -> dict[str, Any]:
    """Remove volatile metadata from a notebook dict (in place) and return it."""
    nb.get("metadata", {}).pop("widgets", None)
    for cell in nb.get("cells", []):
        cell.get("metadata", {}).pop("execution", None)
        for output in cell.get("outputs", []):
            data = output.get("data")
            if isinstance(data, dict) and WIDGET_VIEW in data and "text/plain" in data:
                del data[WIDGET_VIEW]
    return nb


def dumps(nb: dict[str, Any]) -> str:
    """Serialise like Jupyter does (1-space indent, sorted keys, trailing newline)."""
    return json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def strip_file(path: Path, check: bool = False) -> bool:
    """Strip one notebook file; return whether it changed (or would change)."""
    before = path.read_text(encoding="utf-8")
    after = dumps(strip(json.loads(before)))
    changed = after != before
    if changed and not check:
        path.write_text(after, encoding="utf-8")
    return changed


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help=".ipynb files")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a notebook would change")
    args = parser.parse_args(argv)
    changed = [p for p in args.notebooks if strip_file(p, check=args.check)]
    for path in changed:
        print(f"{'would strip' if args.check else 'stripped'}: {path}")
    return 1 if (args.check and changed) else 0


if __name__ == "__main__":
    sys.exit(main())
