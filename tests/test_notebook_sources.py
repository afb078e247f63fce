"""Every committed notebook is built from its percent-format source (tools/build_notebooks.py, jupytext).

A notebook edited without its source, or a source edited without rebuilding
its notebook, fails here with the command that fixes it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import build_notebooks as B  # noqa: E402

FIX = "edit notebooks/src/, then run `make sources` (and `make notebooks` for outputs)"


def _notebooks() -> list[Path]:
    return sorted(p for p in B.NOTEBOOKS.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def test_there_are_sources_and_notebooks():
    assert len(B.sources()) >= 5 and len(_notebooks()) >= 5


def test_every_notebook_has_a_source_and_every_source_a_notebook():
    built = {B.notebook_of(s) for s in B.sources()}
    assert set(_notebooks()) == built, f"unpaired: {sorted(map(str, set(_notebooks()) ^ built))}; {FIX}"


@pytest.mark.parametrize("source", B.sources(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_the_committed_notebook_matches_its_source(source: Path):
    committed = nbformat.read(B.notebook_of(source), as_version=4)
    expected, got = B.cells_of(B.read_source(source)), B.cells_of(committed)
    for i, (want, have) in enumerate(zip(expected, got, strict=False)):
        assert want == have, f"cell {i} differs from {source.name}: {FIX}"
    assert len(expected) == len(got), f"{len(got)} cells, the source has {len(expected)}: {FIX}"


def test_a_rebuild_of_an_unchanged_source_changes_nothing():
    # The build keeps every output and the committed formatting: re-running it is a no-op on a clean tree.
    source = ROOT / "notebooks" / "src" / "03_mean_vs_variance.py"
    assert B.build(source) == B.notebook_of(source).read_text(encoding="utf-8")


def test_an_edited_source_is_reported(tmp_path, monkeypatch):
    src = tmp_path / "src"
    src.mkdir()
    (src / "01_x.py").write_text("# %% [markdown]\n# # Title\n\n# %%\nprint(1)\n")
    monkeypatch.setattr(B, "NOTEBOOKS", tmp_path)
    monkeypatch.setattr(B, "SOURCES", src)
    assert B.main(["--check"]) == 1  # no notebook yet
    assert B.main([]) == 0
    nb = nbformat.read(tmp_path / "01_x.ipynb", as_version=4)
    assert B.cells_of(nb) == [("markdown", "# Title"), ("code", "print(1)")]
    assert B.main(["--check"]) == 0
    (src / "01_x.py").write_text("# %% [markdown]\n# # Title\n\n# %%\nprint(2)\n")
    assert B.main(["--check"]) == 1
