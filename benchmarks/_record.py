"""Provenance recorded beside every benchmark result: command, device, commit.

Results are committed, so they must mean the same on every machine: the
recorded command is the one to type in the repository root (shell-quoted),
and every path under the repository is written relative to it
(:func:`portable`). ``tests/test_no_absolute_paths.py`` refuses a committed
file that still holds an absolute path of the machine it ran on.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shlex
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def _at_start_of_a_path(folder: str) -> re.Pattern:
    """``folder`` (as written or with links resolved) where a path starts, not followed by more of its name.

    Group ``sep`` holds the slashes when a path inside ``folder`` follows; it is empty for ``folder`` itself.
    """
    spellings = sorted({os.path.abspath(folder), os.path.realpath(folder)}, key=len, reverse=True)
    alternatives = "|".join(re.escape(s) for s in spellings)
    return re.compile(rf"(?<![\w./~-])(?:{alternatives})(?:(?P<sep>/+)(?=[\w.-])|/*(?![\w.-]))")


def portable(value):
    """``value`` with every path inside the repository written relative to it, and ``~`` for the home folder.

    Strings are rewritten wherever such a path occurs in them (``--out=/abs/repo/runs`` -> ``--out=runs``;
    the repository itself -> ``.``); lists, tuples and dict values recursively; anything else is returned as is.
    Other absolute paths stay: ``tests/test_no_absolute_paths.py`` names them if such a result is committed.
    """
    if isinstance(value, dict):
        return {k: portable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(portable(v) for v in value)
    if not isinstance(value, str):
        return value
    value = _at_start_of_a_path(str(ROOT)).sub(lambda m: "" if m["sep"] else ".", value)
    home = os.path.expanduser("~")
    if home not in ("", "/"):  # after the repository: a checkout inside the home folder is already relative
        value = _at_start_of_a_path(home).sub(lambda m: "~/" if m["sep"] else "~", value)
    return value


def command() -> str:
    """The command line of this process, as typed in the repository root: shell-quoted, paths made portable."""
    script = Path(sys.argv[0]).resolve()
    shown = script.relative_to(ROOT).as_posix() if script.is_relative_to(ROOT) else str(script)
    return shlex.join(["python", *portable([shown, *sys.argv[1:]])])


def provenance() -> dict:
    """Where and how a result was produced."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = bool(
            subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
        )
    except (OSError, subprocess.CalledProcessError):
        commit, dirty = "unknown", True
    device = (
        torch.cuda.get_device_name()
        if torch.cuda.is_available()
        else f"cpu ({platform.processor() or platform.machine()})"
    )
    return {
        "command": command(),
        "commit": commit,
        "dirty_worktree": dirty,
        "device": device,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def write(name: str, result: dict) -> Path:
    """Write ``benchmarks/results/<name>.json`` with provenance first, every path in it portable."""
    path = ROOT / "benchmarks" / "results" / f"{name}.json"
    path.write_text(json.dumps(portable({"provenance": provenance(), **result}), indent=2) + "\n")
    return path
