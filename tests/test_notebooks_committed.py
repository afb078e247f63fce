"""Notebooks are committed executed, with outputs, and without volatile metadata.

A reader should see every figure without running anything, so notebooks are
committed after ``make notebooks`` (which runs them at full size and strips
timestamps and widget state with tools/strip_notebook.py). This reads the
files only; ``make test`` separately re-runs them with nbval.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
FIX = "run `make notebooks` and commit the result"


#: The tutorial notebooks the README lists; each must be found, committed executed.
TUTORIALS = (
    "01_sparse_density.ipynb",
    "02_ground_false.ipynb",
    "03_mean_vs_variance.ipynb",
    "04_regda_training.ipynb",
    "05_comparing_methods.ipynb",
)


def find_notebooks() -> list[Path]:
    if not NOTEBOOKS.is_dir():
        return []
    return sorted(p for p in NOTEBOOKS.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def _params():
    found = find_notebooks()
    if not found:  # one case that fails: a skip here would let a checkout without notebooks pass
        return [pytest.param(None, id="no-notebooks-found")]
    return [pytest.param(p, id=p.relative_to(ROOT).as_posix()) for p in found]


def _source(cell: dict) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def _load(path: Path | None) -> dict:
    assert path is not None, f"no notebooks found under {NOTEBOOKS}: nothing committed to check; {FIX}"
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def test_notebooks_folder_exists():
    assert NOTEBOOKS.is_dir(), f"{NOTEBOOKS} is missing"


def test_the_tutorial_notebooks_are_found():
    found = {p.name for p in find_notebooks() if p.parent == NOTEBOOKS}
    assert set(TUTORIALS) <= found, f"missing from notebooks/: {sorted(set(TUTORIALS) - found)}"


def test_no_notebooks_fails_instead_of_skipping(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "NOTEBOOKS", tmp_path / "notebooks")  # absent
    (case,) = _params()
    assert not case.marks and case.values == (None,)
    for check in (test_notebook_is_committed_executed, test_notebook_has_no_volatile_metadata):
        with pytest.raises(AssertionError, match="no notebooks found"):
            check(*case.values)


@pytest.mark.parametrize("path", _params())
def test_notebook_is_committed_executed(path: Path):
    nb = _load(path)
    code = [(i, c) for i, c in enumerate(nb.get("cells", [])) if c.get("cell_type") == "code" and _source(c).strip()]
    unexecuted = [i for i, c in code if c.get("execution_count") is None]
    assert not unexecuted, f"{path.name}: code cells {unexecuted} were never executed; {FIX}"
    assert any(c.get("outputs") for _, c in code), f"{path.name} has no outputs; {FIX}"


@pytest.mark.parametrize("path", _params())
def test_notebook_has_no_volatile_metadata(path: Path):
    nb = _load(path)
    timestamped = [i for i, c in enumerate(nb.get("cells", [])) if "execution" in c.get("metadata", {})]
    assert not timestamped, (
        f"{path.name}: cells {timestamped} carry metadata.execution timestamps; "
        f"run `python tools/strip_notebook.py {path.relative_to(ROOT).as_posix()}`"
    )
    assert "widgets" not in nb.get("metadata", {}), (
        f"{path.name} carries saved widget state (metadata.widgets); "
        f"run `python tools/strip_notebook.py {path.relative_to(ROOT).as_posix()}`"
    )
