"""No committed file holds an absolute path of the machine it was made on.

Results, notebooks and docs are read on other machines: a recorded command
must be one a reader can type in the repository root, and a path must be
relative to the repository (``benchmarks/_record.py`` rewrites them so when a
benchmark records its result). This scans every text file git tracks (and the
new ones it would add) for paths under the folders where machine-specific
files live, and names the file, line and path it finds.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import sys
import tempfile
from pathlib import Path

import pytest
from _repo import repository_files

ROOT = Path(__file__).resolve().parent.parent

# Folders whose contents differ from one machine to the next (home folders, scratch and temporary folders,
# mounted or shared disks, the checkout itself). System paths such as the Makefile's Chromium are not in it.
MACHINE_ROOTS = ("work", "tmp", "root", "home", "Users", "private", "mnt", "media", "scratch", "srv", "data", "opt")
# This machine's own spellings of them, wherever they are.
LOCAL = sorted(
    {p for p in (str(ROOT), os.path.expanduser("~"), tempfile.gettempdir()) if p not in ("", "/")},
    key=len,
    reverse=True,
)
_BEFORE = r"(?<![\w.~/+\\-])"  # where a path starts: not inside a word, a relative path, base64 or a URL
ABSOLUTE = re.compile(
    _BEFORE
    + r"(?:/(?:"
    + "|".join(MACHINE_ROOTS)
    + r"|var/folders|var/tmp)/[^\s'\"`<>|;,)\]]+"
    + "".join(rf"|{re.escape(p)}/[^\s'\"`<>|;,)\]]+" for p in LOCAL)
    + r"|[A-Za-z]:\\{1,2}(?:Users|Documents and Settings|Windows\\{1,2}Temp)\\{1,2}\w[^\s'\"`<>|;,)\]]*)"
)

# path -> why it may hold what looks like an absolute path. Empty: keep it short.
ALLOWED: dict[str, str] = {}


def tracked_text_files() -> list[Path]:
    """Every file git tracks or would add (untracked, not ignored), without binary files."""
    files = []
    for name in repository_files():
        path = ROOT / name
        if b"\0" not in path.read_bytes()[:8192]:
            files.append(path)
    return files


def absolute_paths(text: str) -> list[tuple[int, str]]:
    """``(line number, path)`` of every machine-specific absolute path in ``text``."""
    return [(n, m.group()) for n, line in enumerate(text.splitlines(), 1) for m in ABSOLUTE.finditer(line)]


def test_the_pattern_finds_machine_paths_and_nothing_else():
    windows = "\\".join(["C:", "Users", "me", "data"])
    found = [p for _, p in absolute_paths(f"--out {ROOT}/runs/x and '{windows}' /tm/x")]
    assert found == [f"{ROOT}/runs/x", windows]
    machine = ["/" + "/".join(parts) for parts in (("tmp", "runs"), ("home", "me", "x.json"), ("work", "main"))]
    for path in machine:
        assert absolute_paths(f'"command": "python x.py --out {path}",') == [(1, path)]
        assert absolute_paths(f"--out={path}") == [(1, path)]
    for fine in (
        "runs/synthetic_benchmark",
        "../benchmarks/results",
        "data/RHD",
        "/usr/bin/chromium",
        "/dev/null",
        "a /tmp folder",
        "https://example.org/home/page",
        "iVBORw0KGgo+/tmp/AAAA",  # base64 in a notebook output
        "~/data/RHD",
    ):
        assert absolute_paths(fine) == [], fine


def test_no_committed_file_holds_an_absolute_path():
    files = tracked_text_files()
    assert any(p.suffix == ".ipynb" for p in files) and any(p.suffix == ".json" for p in files)
    problems = []
    for path in files:
        name = path.relative_to(ROOT).as_posix()
        if name in ALLOWED:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        problems += [f"{name}:{n}: {found}" for n, found in absolute_paths(text)]
    assert not problems, (
        "committed files hold absolute paths of a machine; write them relative to the repository "
        "(benchmarks/_record.py's portable() does so for recorded results), or add the file to ALLOWED "
        "with the reason:\n" + "\n".join(problems)
    )


def test_the_allow_list_is_still_needed():
    for name in ALLOWED:
        path = ROOT / name
        assert path.is_file(), f"ALLOWED names {name}, which is gone"
        assert absolute_paths(path.read_text(encoding="utf-8")), f"{name} no longer needs to be in ALLOWED"


@pytest.fixture
def record(monkeypatch):
    """``benchmarks/_record.py``, imported as the benchmarks import it."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location("_record_under_test", ROOT / "benchmarks" / "_record.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_recorder_writes_paths_relative_to_the_repository(record):
    home = os.path.expanduser("~")
    if home in ("", "/"):
        pytest.skip("no home folder to abbreviate")
    value = {
        "command": f"--out {ROOT}/runs/bench --out={ROOT}/x",
        "run_dirs": [f"{ROOT}/runs/a", (str(ROOT),)],
        "elsewhere": os.path.join(home, "data", "RHD"),
        "sibling": f"{ROOT}-other/x",
        "n": 3,
    }
    assert record.portable(value) == {
        "command": "--out runs/bench --out=x",
        "run_dirs": ["runs/a", (".",)],
        "elsewhere": "~/data/RHD",
        "sibling": f"{ROOT}-other/x",
        "n": 3,
    }


def test_the_recorded_command_is_quoted_and_relative(record, monkeypatch):
    note = "runs of f' min L_F / psi max L_F, 2 tasks"
    monkeypatch.setattr(
        sys, "argv", [str(ROOT / "benchmarks" / "comparison_benchmark.py"), "--out", f"{ROOT}/runs/b", "--note", note]
    )
    command = record.command()
    assert shlex.split(command) == ["python", "benchmarks/comparison_benchmark.py", "--out", "runs/b", "--note", note]
    assert not absolute_paths(command)
