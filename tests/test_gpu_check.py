"""benchmarks/gpu_check.sh, the one GPU command, in its CPU toy mode: every stage writes what a GPU run writes.

The GPU run itself needs a GPU; this runs the same three stages (step times, the short RegDA run through
``python -m regdakit train``, notebook 04 with an iteration cap) at a toy size on the CPU into a temporary
folder, and checks the results exist, parse and hold what the GPU run records.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"

pytestmark = pytest.mark.skipif(shutil.which("bash") is None or shutil.which("timeout") is None, reason="no bash")


RESULTS = ROOT / "benchmarks" / "results"
NAMES = ("step_time_gpu", "gpu_regda_short", "notebook04_gpu")


def _run(*args: str, env: dict | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k not in ("GPU_CHECK_DEVICE", "GPU_CHECK_OUT")}
    full.update(PYTHON=sys.executable, **(env or {}))
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=cwd, env=full, capture_output=True, text=True, timeout=300)


def _committed() -> dict[str, float | None]:
    """Modification time (or absence) of each result in benchmarks/results."""
    return {name: (p.stat().st_mtime if (p := RESULTS / f"{name}.json").exists() else None) for name in NAMES}


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("gpu_check")
    before = _committed()
    # From another folder: the script finds the repository itself.
    proc = _run("--cpu-smoke", "--out", str(out), cwd=out)
    assert _committed() == before, "the toy mode wrote into benchmarks/results"
    return out, proc


def _load(out: Path, name: str) -> dict:
    path = out / f"{name}.json"
    assert path.is_file(), f"{name}.json was not written"
    return json.loads(path.read_text())


def test_toy_mode_runs_every_stage_and_prints_the_budget(toy):
    out, proc = toy
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{name}.json" for name in NAMES)
    rows = re.findall(r"^(step_time|regda_short|notebook04)\s+(\S+)\s+([\d.]+)\s+(\d+)$", proc.stdout, re.M)
    assert [r[0] for r in rows] == ["step_time", "regda_short", "notebook04"], proc.stdout[-2000:]
    assert all(status == "ok" for _, status, _, _ in rows), rows
    total = re.search(r"^total\s+[\d.]+\s+(\d+)\s+\(budget 480 s\)$", proc.stdout, re.M)
    # The stages' limits, the preflight's 30 s and 5 s of grace per command fit 8 minutes.
    assert total and int(total.group(1)) + 30 + 4 * 5 <= 480, total


def test_step_times_of_every_mode_and_method(toy):
    data = _load(toy[0], "step_time_gpu")
    assert data["provenance"]["device"].startswith("cpu")
    assert data["provenance"]["command"].startswith("python benchmarks/step_time.py --device cpu")
    assert set(data["modes"]) == {"fp32", "bf16-cl"}
    for mode in data["modes"].values():
        assert set(mode["source_images_per_second"]) == {"erm", "regda_fused", "regda_plain"}
        assert all(v > 0 for v in mode["source_images_per_second"].values())
        assert set(mode["peak_memory_gib"]) == {"erm", "regda_fused", "regda_plain"}  # None on the CPU
        assert mode["fused_speedup_over_plain"] > 0


def test_short_regda_run_records_throughput_metrics_and_a_relative_command(toy):
    data = _load(toy[0], "gpu_regda_short")
    assert data["device"].startswith("cpu")
    command = data["train_command"]
    assert command.startswith("python -m regdakit train --task=hands --method=regda ")
    assert "--out=runs" in command and str(ROOT) not in json.dumps(data["train_command"])
    for phase, iterations in (("pretrain", 2), ("adapt", 2)):
        timing = data["phases"][phase]
        assert timing["iterations"] == iterations
        assert timing["source_images_per_second"]["steps_only"] > 0
        assert timing["source_images_per_second"]["whole_loop"] > 0
    assert data["metrics"]["regda_final"]["iteration"] == 2
    assert 0 <= data["metrics"]["regda_final"]["target_test"]["pck@0.05/all"] <= 1
    assert "pck@0.05/all" in data["metrics"]["erm_last"]["target_test"]
    assert data["run_dir"] == "runs/gpu-check-regda"
    # The sustained rate of the steps, from their counted operations: what the gpu-student estimate assumes.
    from regdakit.training import cost, make_config

    toy = make_config("ci", task="hands", batch_size=data["setting"]["batch_size"])
    for phase, method in (("pretrain", "erm"), ("adapt", "regda")):
        rate = data["rates"][phase]
        assert rate["method"] == method
        assert rate["tflop_per_iteration"] == round(cost.iteration_flops(toy, method) / 1e12, 4)
        seconds = data["phases"][phase]["step_seconds"] / data["phases"][phase]["iterations"]
        assert rate["sustained_tflops_of_the_steps"] == pytest.approx(
            rate["tflop_per_iteration"] / seconds, rel=0.01, abs=1e-3
        )


def test_notebook_04_ran_capped(toy):
    data = _load(toy[0], "notebook04_gpu")
    assert data["ok"] and data["error"] is None
    assert data["environment"]["REGDAKIT_MAX_ITERATIONS"] == "2"
    assert data["notebook"] == "notebooks/04_regda_training.ipynb"
    report = data["report"]
    assert report["on_gpu"] is False and report["max_iterations"] == 2
    assert {run["adapt_iterations"] for run in report["runs"].values()} == {2}
    assert all(cell["error"] is None for cell in data["cells"])
    assert sum(cell["figures"] for cell in data["cells"]) >= 3
    assert any("RegDA iterations" in cell["printed"] for cell in data["cells"])


def test_without_cuda_the_gpu_mode_stops_with_a_clear_error(tmp_path):
    proc = _run("--out", str(tmp_path), env={"CUDA_VISIBLE_DEVICES": ""})
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "no CUDA device is visible" in proc.stderr
    assert not list(tmp_path.iterdir())


def test_the_toy_mode_needs_its_own_folder():
    proc = _run("--cpu-smoke")
    assert proc.returncode == 2 and "needs --out DIR" in proc.stderr
    proc = _run("--cpu-smoke", "--out", str(ROOT / "benchmarks" / "results"))
    assert proc.returncode == 2 and "does not write into benchmarks/results" in proc.stderr
