"""The set-up installs the CPU build of torch on a machine without an NVIDIA GPU.

PyPI's Linux torch wheels are CUDA builds that pull ~18 ``nvidia-*`` packages
(several GB). The Makefile points the torch install at PyTorch's CPU wheel
index on Linux without an NVIDIA GPU (``make torch-plan`` prints the choice),
and falls back to pip's configured indexes where that index cannot be
reached. These tests read the plan and resolve it with
``pip install --dry-run --report``: nothing is installed.
"""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CPU_INDEX = "https://download.pytorch.org/whl/cpu"

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")


def torch_plan(**variables: str) -> dict[str, str]:
    """``make torch-plan`` with ``variables`` given on the command line, as a dict."""
    args = [f"{k}={v}" for k, v in variables.items()]
    out = subprocess.run(
        ["make", "--no-print-directory", "-s", "torch-plan", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


@pytest.mark.skipif(platform.system() != "Linux", reason="the CPU index is chosen on Linux only")
def test_linux_without_nvidia_reads_the_cpu_index():
    assert torch_plan(HAS_NVIDIA="")["TORCH_INDEX_URL"] == CPU_INDEX


def test_an_nvidia_machine_reads_pips_own_index():
    assert torch_plan(HAS_NVIDIA="yes")["TORCH_INDEX_URL"] == ""


def test_an_explicit_index_wins():
    assert torch_plan(HAS_NVIDIA="", TORCH_INDEX_URL="https://example.invalid/whl")["TORCH_INDEX_URL"] == (
        "https://example.invalid/whl"
    )


def _reachable(url: str) -> bool:
    try:
        urllib.request.urlopen(url + "/", timeout=10)  # noqa: S310 - a fixed https URL
    except OSError:
        return False
    return True


@pytest.mark.skipif(platform.system() != "Linux", reason="the CPU index is chosen on Linux only")
def test_the_cpu_plan_resolves_no_nvidia_package():
    # What `make` runs on a machine without a GPU, resolved without installing: the CPU index where it can
    # be reached, else (as the Makefile does) pip's configured indexes.
    plan = torch_plan(HAS_NVIDIA="")
    index = plan["TORCH_INDEX_URL"] if _reachable(plan["TORCH_INDEX_URL"]) else ""
    command = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet"]
    command += ["--report", "-", *(["--index-url", index] if index else []), plan["TORCH_SPEC"]]
    run = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    names = {
        item["metadata"]["name"].lower(): item["metadata"]["version"] for item in json.loads(run.stdout)["install"]
    }
    assert "torch" in names, names
    nvidia = sorted(n for n in names if n.startswith("nvidia-") or n in ("triton", "cuda-toolkit", "cuda-bindings"))
    assert not nvidia, f"the CPU plan ({index or 'configured indexes'}) resolves CUDA packages: {nvidia}"
