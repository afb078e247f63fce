"""Stages of ``benchmarks/gpu_check.sh``: the check before, the short RegDA run and notebook 04 capped.

``gpu_check.sh`` is the one command a GPU user runs; it calls this driver with an explicit
``timeout`` per stage (stage 1 is ``benchmarks/step_time.py`` itself)::

    python benchmarks/gpu_check.py preflight --device cuda       # exit 3 when no CUDA device is visible
    python benchmarks/gpu_check.py regda-short --device cuda [--out-dir benchmarks/results]
    python benchmarks/gpu_check.py notebook04 --device cuda [--out-dir benchmarks/results] [--max-iterations 20]
    python benchmarks/gpu_check.py summary --times FILE          # the time budget table of the stages

``regda-short`` runs ``python -m regdakit train`` (the command line's own ``main``, in this process) at the
GPU teaching setting, the ``gpu-student`` preset (ResNet-18, 128 -> 32, batch 32, the ``cpu-bench`` recipe:
Adam at 1e-3 for the from-scratch pre-training) with short schedules, so that its measured rates check the
preset's estimate (``benchmarks/results/gpu_preset_cost.json``). It wraps the step functions of
ERM and RegDA to time them (with a device synchronisation, which the trainer's loss read-out makes anyway) and
writes ``gpu_regda_short.json``: source images per second of the steps alone and of the whole loop (rendering
the synthetic batches, evaluation and checkpoints included), the last ERM and the final RegDA evaluation, and
the exact command, with relative paths only (the run lives in a temporary folder, deleted afterwards).

``notebook04`` executes a copy of ``notebooks/04_regda_training.ipynb`` with ``REGDAKIT_MAX_ITERATIONS`` set
and, on a GPU, ``REGDAKIT_PRESET=gpu-student`` (the branch a student runs there, capped), in a fresh kernel of
this Python, working directory ``notebooks/``, and keeps only a summary, ``notebook04_gpu.json``: per code cell
its seconds, its printed text (trimmed) and its figure count, and what one extra cell appended to the copy
reports (device, preset, iterations, final target PCK). The executed notebook itself is not kept.

``--device cpu`` runs the same stages at a toy size (tests/test_gpu_check.py).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
NOTEBOOK = ROOT / "notebooks" / "04_regda_training.ipynb"

#: Modules each stage imports (the GPU machine has torch; the rest may be missing there).
NEEDS = {
    "step_time": ("torch", "numpy", "tqdm"),
    "regda_short": ("torch", "numpy", "tqdm", "PIL"),
    "notebook04": (
        *("torch", "numpy", "tqdm", "PIL", "matplotlib"),
        *("nbformat", "nbclient", "jupyter_client", "ipykernel"),
    ),
}

#: ``python -m regdakit train`` settings of the short RegDA run, per device. The GPU one is the teaching setting
#: (module docstring); the CPU one a toy of the same command that runs in seconds.
TRAIN_SETTINGS = {
    "cuda": [
        "--preset=gpu-student",
        "--pretrain_iterations=200",
        "--adapt_iterations=100",
        "--eval_every=100",
        "--checkpoint_every=100",
        "--log_every=25",
        "--eval_size=256",
        "--regda.warmup_iterations=7",
    ],
    "cpu": [
        "--preset=ci",
        "--batch_size=4",
        "--pretrain_iterations=2",
        "--adapt_iterations=2",
        "--eval_every=2",
        "--checkpoint_every=2",
        "--log_every=1",
        "--eval_size=8",
        "--regda.warmup_iterations=1",
    ],
}
#: The short-run pre-training recipe of the ``cpu-bench`` preset (regdakit/train.py), on both devices.
ADAM = ["--erm.optimizer=adam", "--erm.lr=0.001", "--erm.backbone_lr_factor=1.0", "--erm.weight_decay=0.0"]
RUN_NAME = "gpu-check-regda"
#: Iterations per phase of notebook 04 under the cap, per device.
NOTEBOOK_CAP = {"cuda": 20, "cpu": 2}


def missing(stage: str) -> list[str]:
    """The modules of ``stage`` that this Python cannot import."""
    return [name for name in NEEDS[stage] if importlib.util.find_spec(name) is None]


def require(stage: str) -> None:
    """Exit 4 with one clear line when a module of ``stage`` is missing."""
    absent = missing(stage)
    if absent:
        print(f"gpu_check {stage}: cannot run, missing Python modules: {', '.join(absent)}", file=sys.stderr)
        raise SystemExit(4)


def device_name(device: str) -> str:
    """What ``device`` is, in words."""
    import platform

    import torch

    if device == "cuda":
        return torch.cuda.get_device_name()
    return f"cpu ({platform.processor() or platform.machine()})"


def write(out_dir: Path, name: str, result: dict) -> Path:
    """``<out_dir>/<name>.json`` with provenance first and every path portable (``benchmarks/_record.py``)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from _record import portable, provenance

    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.json"
    path.write_text(json.dumps(portable({"provenance": provenance(), **result}), indent=2) + "\n")
    return path


def shown(path: Path) -> str:
    """``path`` relative to the repository when inside it (results hold no absolute paths of this machine)."""
    path = path.resolve()
    return path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else path.name


# ---------------------------------------------------------------------------------------------------- preflight


def preflight(device: str) -> int:
    """Print the device, torch and what each stage lacks; 3 when ``device`` is cuda and none is visible."""
    try:
        import torch
    except ImportError:
        print("gpu_check: torch is not importable by this Python", file=sys.stderr)
        return 3
    print(f"python {sys.version.split()[0]}, torch {torch.__version__}, cuda build {torch.version.cuda}")
    if device == "cuda":
        if not torch.cuda.is_available():
            print(
                "gpu_check: no CUDA device is visible (torch.cuda.is_available() is False); "
                "run on a machine with an NVIDIA GPU, or pass --cpu-smoke for the CPU toy mode",
                file=sys.stderr,
            )
            return 3
        print(f"device: {torch.cuda.get_device_name()} ({torch.cuda.device_count()} visible)")
    else:
        print(f"device: {device_name('cpu')} (CPU toy mode)")
    for stage in NEEDS:
        absent = missing(stage)
        print(f"  {stage:<12} " + (f"missing {', '.join(absent)}: this stage will fail" if absent else "ready"))
    return 0


# -------------------------------------------------------------------------------------------------- regda-short


class StepTimer:
    """Wraps a method module's ``step`` and sums its seconds, device work included."""

    def __init__(self, module, sync) -> None:
        self.sync, self.inner = sync, module.step
        self.seconds, self.calls, self.first, self.last = 0.0, 0, None, None

    def __call__(self, *args, **kwargs):
        self.sync()
        start = time.perf_counter()
        out = self.inner(*args, **kwargs)
        self.sync()
        end = time.perf_counter()
        self.seconds += end - start
        self.calls += 1
        self.first = start if self.first is None else self.first
        self.last = end
        return out

    def summary(self, batch: int, streams: int) -> dict:
        """Iterations, seconds and images per second of the steps and of the loop from first to last step."""
        loop = (self.last - self.first) if self.calls else 0.0
        per_s = {
            "steps_only": round(self.calls * batch / self.seconds, 1) if self.seconds else None,
            "whole_loop": round(self.calls * batch / loop, 1) if loop else None,
        }
        return {
            "iterations": self.calls,
            "batches_per_iteration": streams,
            "step_seconds": round(self.seconds, 3),
            "loop_seconds": round(loop, 3),
            "source_images_per_second": per_s,
        }


def regda_short(device: str, out_dir: Path) -> int:
    """The short RegDA run through ``python -m regdakit train``, timed; writes ``gpu_regda_short.json``."""
    require("regda_short")
    import torch

    from regdakit import __main__ as cli
    from regdakit.methods import erm, regda

    if device == "cuda" and not torch.cuda.is_available():
        print("gpu_check regda-short: no CUDA device is visible", file=sys.stderr)
        return 3
    args = [
        "train",
        "--task=hands",
        "--method=regda",
        *TRAIN_SETTINGS[device],
        *ADAM,
        f"--device={device}",
        "--out=runs",
        f"--run_name={RUN_NAME}",
        "--no-progress",
    ]
    command = "python -m regdakit " + " ".join(args)

    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    timers = {"pretrain": StepTimer(erm, sync), "adapt": StepTimer(regda, sync)}
    work = Path(tempfile.mkdtemp(prefix="regdakit-gpu-check-"))
    here = Path.cwd()
    printed = io.StringIO()
    start = time.perf_counter()
    try:
        erm.step, regda.step = timers["pretrain"], timers["adapt"]
        os.chdir(work)  # --out=runs: the command and every path it prints are relative
        print(f"running: {command}", flush=True)
        with contextlib.redirect_stdout(printed):
            status = cli.main(args)
        wall = time.perf_counter() - start
        if status != 0:
            print(printed.getvalue())
            print(f"gpu_check regda-short: the training command exited {status}", file=sys.stderr)
            return 1
        final = json.loads((work / "runs" / RUN_NAME / "final.json").read_text())
        config = json.loads((work / "runs" / RUN_NAME / "config.json").read_text())
        pretrain_logs = list((work / "runs" / "pretrain").glob("*/metrics.jsonl"))
        erm_evals = [r for r in map(json.loads, pretrain_logs[0].read_text().splitlines()) if "eval" in r]
    finally:
        os.chdir(here)
        erm.step, regda.step = timers["pretrain"].inner, timers["adapt"].inner
        shutil.rmtree(work, ignore_errors=True)
    batch = config["batch_size"]
    result = {
        "what": "a short RegDA run at the GPU teaching setting, timed: ERM pre-training, then RegDA; "
        "images per second count source images (a RegDA iteration also draws a target batch); "
        "whole_loop includes rendering the synthetic batches on the CPU, evaluation and checkpoints",
        "train_command": command,
        "device": device_name(device),
        "setting": {
            key: config[key]
            for key in ("task", "backbone", "image_size", "heatmap_size", "batch_size", "eval_size", "seed")
        }
        | {
            "pretrain_iterations": config["pretrain_iterations"],
            "adapt_iterations": config["adapt_iterations"],
            "erm_optimizer": config["erm"]["optimizer"],
            "regda_warmup_iterations": config["regda"]["warmup_iterations"],
            "regda_fused": config["regda"]["fused"],
        },
        "phases": {
            "pretrain": timers["pretrain"].summary(batch, 1),
            "adapt": timers["adapt"].summary(batch, 2),
        },
        "wall_seconds": round(wall, 1),
        "peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if device == "cuda" else None,
        "metrics": {
            "erm_last": {"iteration": erm_evals[-1]["iteration"], **erm_evals[-1]["eval"]},
            "regda_final": {"iteration": final["iteration"], **final["metrics"]},
        },
        "run_dir": final["run_dir"],
    }
    result["rates"] = measured_rates(config, result["phases"])
    print(json.dumps(result["phases"], indent=2))
    print(json.dumps(result["rates"], indent=2))
    print("wrote", write(out_dir, "gpu_regda_short", result))
    return 0


def measured_rates(config: dict, phases: dict) -> dict:
    """The sustained rate each phase's steps reached, from their counted operations: checks the estimate.

    ``benchmarks/results/gpu_preset_cost.json`` assumes a sustained rate (regdakit.training.cost); here the
    operations of one iteration are counted for the run's own config and divided by the measured seconds per
    step, and the whole loop's seconds per iteration are given beside them (rendering included).
    """
    from regdakit.training import config_from_dict, cost

    cfg = config_from_dict(config)
    rates = {}
    for phase, method in (("pretrain", "erm"), ("adapt", cfg.method)):
        timed = phases[phase]
        flops = cost.iteration_flops(cfg, method)
        calls = timed["iterations"]
        rates[phase] = {
            "method": method,
            "tflop_per_iteration": round(flops / 1e12, 4),
            "step_seconds_per_iteration": round(timed["step_seconds"] / calls, 5) if calls else None,
            "loop_seconds_per_iteration": round(timed["loop_seconds"] / calls, 5) if calls else None,
            "sustained_tflops_of_the_steps": round(flops * calls / timed["step_seconds"] / 1e12, 3)
            if timed["step_seconds"]
            else None,
        }
    return rates


# --------------------------------------------------------------------------------------------------- notebook04

#: Appended to the executed copy only: what ran, as one JSON line for the summary.
REPORT_CELL = """\
# Appended by benchmarks/gpu_check.py to its executed copy (not part of the notebook).
import json as _json
print("GPU_CHECK_REPORT " + _json.dumps({
    "on_gpu": DEVICE == "cuda",
    "preset": PRESET,
    "torch_device": torch.cuda.get_device_name() if DEVICE == "cuda" else "cpu",
    "max_iterations": MAX_ITERATIONS,
    "runs": {task: {
        "preset_size": [cfg.backbone, cfg.image_size, cfg.batch_size],
        "pretrain_iterations": None if cfg.init_checkpoint else cfg.pretrain_iterations,
        "adapt_iterations": cfg.adapt_iterations,
        "target_pck@0.05": results[task]["summary"]["metrics"]["target_test"]["pck@0.05/all"],
    } for task, cfg in configs.items()},
}))
"""


def _kernel():
    """A kernel manager for this Python, whatever kernelspecs are installed (``tools/run_notebooks.py``)."""
    sys.path.insert(0, str(ROOT / "tools"))
    from run_notebooks import _this_python_kernel

    return _this_python_kernel()


def _plain(text: str) -> str:
    """``text`` without terminal colour codes (IPython colours tracebacks)."""
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def _text(cell) -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream")


def _seconds(cell) -> float | None:
    from datetime import datetime

    timing = cell.get("metadata", {}).get("execution", {})
    start, end = timing.get("iopub.execute_input"), timing.get("shell.execute_reply")
    if not (start and end):
        return None
    parse = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00"))  # noqa: E731
    return round((parse(end) - parse(start)).total_seconds(), 2)


def notebook04(device: str, out_dir: Path, max_iterations: int, cell_timeout: int, source: Path = NOTEBOOK) -> int:
    """Execute ``source`` (notebook 04) capped at ``max_iterations``; writes ``notebook04_gpu.json``.

    The kernel's working directory is ``notebooks/`` whatever ``source`` is (the notebook reads ``../benchmarks``).
    """
    require("notebook04")
    # `timeout` stops this stage with SIGTERM: exit through the `finally` below, which shuts the kernel down.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(124))
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(source, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nb.cells.append(nbformat.v4.new_code_cell(REPORT_CELL))
    # Kernels inherit this environment: the cap, full size otherwise (only the cap shortens the GPU branch).
    os.environ["REGDAKIT_MAX_ITERATIONS"] = str(max_iterations)
    if device == "cuda":  # the notebook's GPU preset, which trains both phases there
        os.environ["REGDAKIT_PRESET"] = "gpu-student"
    os.environ.setdefault("REGDAKIT_FAST", "1" if device == "cpu" else "0")
    os.environ.pop("MPLBACKEND", None)  # figures inline, as tools/run_notebooks.py renders them (they are counted)
    km = _kernel()
    client = NotebookClient(
        nb, km=km, timeout=cell_timeout, record_timing=True, resources={"metadata": {"path": str(NOTEBOOK.parent)}}
    )
    start = time.perf_counter()
    error = None
    try:
        client.execute()
    except CellExecutionError as err:
        lines = _plain(str(err)).strip().splitlines()
        error = lines[-1][:500] if lines else type(err).__name__
    finally:
        if km.has_kernel:
            km.shutdown_kernel(now=True)
    wall = time.perf_counter() - start
    cells, report = [], None
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        text = _text(cell)
        for line in text.splitlines():
            if line.startswith("GPU_CHECK_REPORT "):
                report = json.loads(line.split(" ", 1)[1])
        errors = [o for o in cell.outputs if o.get("output_type") == "error"]
        cells.append(
            {
                "cell": index,
                "first_line": cell.source.splitlines()[0][:100] if cell.source else "",
                "seconds": _seconds(cell),
                "printed": text[:1500],
                "figures": sum("image/png" in o.get("data", {}) for o in cell.outputs),
                "error": _plain(f"{errors[0]['ename']}: {errors[0]['evalue']}")[:500] if errors else None,
            }
        )
    ok = error is None and report is not None and report["on_gpu"] == (device == "cuda")
    if error is None and report is not None and not ok:
        error = f"the notebook ran its {'GPU' if report['on_gpu'] else 'CPU'} branch, expected {device}"
    result = {
        "what": "notebook 04 executed (a copy, discarded) with REGDAKIT_MAX_ITERATIONS, "
        "its GPU preset on a GPU (gpu-student, capped)",
        "notebook": shown(source),
        "environment": {
            k: os.environ[k] for k in ("REGDAKIT_MAX_ITERATIONS", "REGDAKIT_FAST", "REGDAKIT_PRESET") if k in os.environ
        },
        "device": device_name(device),
        "ok": ok,
        "error": error,
        "wall_seconds": round(wall, 1),
        "report": report,
        "cells": cells,
    }
    print(json.dumps({"ok": ok, "error": error, "wall_seconds": result["wall_seconds"], "report": report}, indent=2))
    print("wrote", write(out_dir, "notebook04_gpu", result))
    return 0 if ok else 1


# ------------------------------------------------------------------------------------------------------ summary


def summary(times: Path, budget: int) -> int:
    """Print the stages' status, seconds and limits (lines ``stage status seconds limit`` of ``times``)."""
    rows = [line.split() for line in times.read_text().splitlines() if line.strip()]
    total = sum(float(r[2]) for r in rows)
    limits = sum(int(r[3]) for r in rows)
    print(f"\n{'stage':<14}{'status':<12}{'seconds':>9}{'limit':>8}")
    for stage, status, seconds, limit in rows:
        print(f"{stage:<14}{status:<12}{float(seconds):>9.1f}{int(limit):>8}")
    print(f"{'total':<14}{'':<12}{total:>9.1f}{limits:>8}   (budget {budget} s)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    stages = parser.add_subparsers(dest="stage", required=True)
    for name in ("preflight", "regda-short", "notebook04"):
        sub = stages.add_parser(name)
        sub.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
        sub.add_argument("--out-dir", type=Path, default=RESULTS)
        if name == "notebook04":
            sub.add_argument("--max-iterations", type=int, default=None, help="default: 20 on cuda, 2 on cpu")
            sub.add_argument("--cell-timeout", type=int, default=600, help="seconds per cell")
            sub.add_argument("--notebook", type=Path, default=NOTEBOOK, help="another build of notebook 04")
    sub = stages.add_parser("summary")
    sub.add_argument("--times", type=Path, required=True)
    sub.add_argument("--budget", type=int, default=480)
    args = parser.parse_args(argv)
    if args.stage == "preflight":
        return preflight(args.device)
    if args.stage == "regda-short":
        return regda_short(args.device, args.out_dir)
    if args.stage == "notebook04":
        cap = args.max_iterations if args.max_iterations is not None else NOTEBOOK_CAP[args.device]
        return notebook04(args.device, args.out_dir, cap, args.cell_timeout, args.notebook)
    return summary(args.times, args.budget)


if __name__ == "__main__":
    sys.exit(main())
