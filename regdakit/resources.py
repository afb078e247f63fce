"""The files that ship with regdakit: sample data, source-only models, committed results.

They are package data read through :mod:`importlib.resources`, so the same
call works in the repository (an editable install), from an installed wheel,
and in a notebook copied anywhere. A resource is named ``"<kind>/<file>"``:

* ``samples/...``: the repository's ``data_samples/`` (package ``regdakit.samples``):
  sample images, and the source-only models in ``samples/checkpoints/``;
* ``results/...``: the repository's ``benchmarks/results/`` (package ``regdakit.results``):
  the benchmark results the notebooks show.

>>> path("results/table1_synthetic.json").name
'table1_synthetic.json'
>>> read_json("results/table1_synthetic.json")["preset_name"]
'cpu-bench'
>>> "checkpoints/hands_source_only.pt" in names("samples")
True
"""

from __future__ import annotations

import atexit
import contextlib
import json
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path, PurePosixPath
from typing import Any

__all__ = ["KINDS", "files", "names", "path", "read_json", "read_text"]

#: Resource kind -> the package that holds it.
KINDS = {"samples": "regdakit.samples", "results": "regdakit.results"}

# Keeps files extracted from a zipped install alive until the interpreter exits.
_EXTRACTED = contextlib.ExitStack()
atexit.register(_EXTRACTED.close)


def files(kind: str) -> Traversable:
    """The folder of one kind of resource (``"samples"`` or ``"results"``).

    Raises:
        ValueError: Unknown kind.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {sorted(KINDS)}, got {kind!r}")
    return resources.files(KINDS[kind])


def _split(name: str) -> tuple[str, list[str]]:
    """``"results/a/b.json"`` -> ``("results", ["a", "b.json"])``, refusing what leaves the package."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a str like 'results/table1_synthetic.json', got {type(name).__name__}")
    pure = PurePosixPath(name)
    parts = pure.parts
    if pure.is_absolute() or len(parts) < 2 or any(p in ("..", ".") for p in parts) or "\\" in name:
        raise ValueError(f"name must be '<kind>/<file>' with kind in {sorted(KINDS)}, got {name!r}")
    kind, *rest = parts
    if kind not in KINDS:
        raise ValueError(f"name must start with one of {sorted(KINDS)}, got {name!r}")
    return kind, rest


def _traversable(name: str) -> Traversable:
    kind, rest = _split(name)
    return files(kind).joinpath(*rest)


def path(name: str) -> Path:
    """A file-system path of the resource ``name``, e.g. ``"samples/checkpoints/hands_source_only.pt"``.

    The path need not exist (a partial checkout): callers that need the file check ``is_file()``
    and say what is missing. From a zipped install the file is extracted to a temporary file that
    lives until the interpreter exits.

    Raises:
        ValueError: ``name`` is not ``"<kind>/<file>"`` of a known kind.
    """
    found = _traversable(name)
    if isinstance(found, Path):
        return found
    return _EXTRACTED.enter_context(resources.as_file(found))


def read_text(name: str, encoding: str = "utf-8") -> str:
    """The text of the resource ``name``.

    Raises:
        ValueError: ``name`` is not ``"<kind>/<file>"`` of a known kind.
        FileNotFoundError: No such resource.
    """
    found = _traversable(name)
    if not found.is_file():
        raise FileNotFoundError(f"regdakit ships no resource {name!r}; it has: {', '.join(names(name.split('/')[0]))}")
    return found.read_text(encoding=encoding)


def read_json(name: str) -> Any:
    """The parsed JSON resource ``name``, e.g. ``"results/table1_synthetic.json"``."""
    return json.loads(read_text(name))


def names(kind: str) -> list[str]:
    """Every data file of one kind, as paths relative to its folder (sorted; no Python files)."""
    found: list[str] = []

    def walk(folder: Traversable, prefix: str) -> None:
        for entry in folder.iterdir():
            if entry.is_dir():
                if entry.name != "__pycache__":
                    walk(entry, f"{prefix}{entry.name}/")
            elif not entry.name.endswith((".py", ".pyc")):
                found.append(prefix + entry.name)

    walk(files(kind), "")
    return sorted(found)
