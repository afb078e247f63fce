"""Provenance recorded beside every benchmark result: command, device, commit."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


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
    script = Path(sys.argv[0]).resolve()
    shown = script.relative_to(ROOT).as_posix() if script.is_relative_to(ROOT) else str(script)
    return {
        "command": " ".join(["python", shown, *sys.argv[1:]]),
        "commit": commit,
        "dirty_worktree": dirty,
        "device": device,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def write(name: str, result: dict) -> Path:
    """Write ``benchmarks/results/<name>.json`` with provenance first."""
    path = ROOT / "benchmarks" / "results" / f"{name}.json"
    path.write_text(json.dumps({"provenance": provenance(), **result}, indent=2) + "\n")
    return path
