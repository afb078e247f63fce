#!/usr/bin/env python3
"""Train the shipped source-only models and copy them into ``data_samples/checkpoints/``.

Each shipped checkpoint holds the model's weights in half precision and its
run's config only (no optimiser state: about 1.3 MB), with its training log
beside it. The run is exactly :func:`regdakit.pretrained.retrain_command`
(checked against the run's saved config before anything is copied).

``--train`` runs the retrain commands one after the other, one thread each,
as resumable jobs: a run folder that exists is continued with ``--resume``
(the trainer resumes exactly), a finished one is only shipped, so an
interrupted queue loses at most the iterations since its last checkpoint.
The CPU seconds of every attempt are added up in ``<run>/cpu_seconds.json``.

Usage::

    python tools/ship_checkpoints.py --task hands --seeds 1 2 3 4 5 --train      # train (or resume), then ship
    python tools/ship_checkpoints.py --task hands --seeds 1 --runs runs/shipped  # ship finished runs only
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import torch

from regdakit import pretrained

ROOT = Path(__file__).resolve().parents[1]


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def train(task: str, seed: int, runs: Path) -> None:
    """Run (or resume) the retrain command of ``task`` / ``seed`` under ``runs``; one thread."""
    cfg = pretrained.retrain_config(task, seed, out=runs)
    if (cfg.run_dir / "final.json").is_file():
        return
    command = [sys.executable, *shlex.split(pretrained.retrain_command(task, seed))[1:]]
    command += [f"--out={runs}", "--no-progress", "--device=cpu"]
    if cfg.run_dir.exists():
        command.append("--resume")
    print("running:", " ".join(command[1:]), flush=True)
    before = _cpu_seconds()
    result = subprocess.run(command, env=os.environ | {"OMP_NUM_THREADS": "1"}, cwd=ROOT, check=False)
    ledger = cfg.run_dir / "cpu_seconds.json"
    attempts = json.loads(ledger.read_text()) if ledger.exists() else []
    attempts.append({"seconds": round(_cpu_seconds() - before, 1), "returncode": result.returncode})
    ledger.write_text(json.dumps(attempts, indent=1) + "\n")
    if result.returncode != 0:
        raise SystemExit(f"{task} seed {seed}: the trainer failed (exit {result.returncode})")


def half(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Floating-point tensors in half precision, the others (BatchNorm's counters) as they are."""
    return {k: v.half() if v.is_floating_point() else v for k, v in weights.items()}


def ship(task: str, seed: int, runs: Path) -> Path:
    """Copy the finished run of ``task`` / ``seed`` to :func:`regdakit.pretrained.checkpoint_path`."""
    cfg = pretrained.retrain_config(task, seed, out=runs)
    if not (cfg.run_dir / "final.json").is_file():
        raise SystemExit(f"{cfg.run_dir} has not finished: train it first (--train)")
    state = torch.load(cfg.run_dir / "last.pt", weights_only=True, map_location="cpu")
    expected = dataclasses.asdict(cfg) | {"out": state["config"]["out"]}
    if json.loads(json.dumps(state["config"])) != json.loads(json.dumps(expected)):
        raise SystemExit(f"{cfg.run_dir} was not trained with the retrain command of {task} seed {seed}")
    path = pretrained.checkpoint_path(task, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    config = dataclasses.asdict(dataclasses.replace(cfg, out="runs"))
    torch.save({"config": config, "model": half(state["model"]), "parts": state.get("parts", [])}, path)
    shutil.copyfile(cfg.run_dir / "metrics.jsonl", path.with_suffix(".metrics.jsonl"))
    ledger = cfg.run_dir / "cpu_seconds.json"
    if ledger.is_file():
        seconds = sum(a["seconds"] for a in json.loads(ledger.read_text()))
        path.with_suffix(".cpu_seconds.json").write_text(json.dumps({"cpu_seconds": round(seconds, 1)}) + "\n")
    print(f"wrote {path.relative_to(ROOT)} ({path.stat().st_size / 1e6:.2f} MB) and its log", flush=True)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", required=True, choices=sorted(pretrained.SEEDS))
    parser.add_argument("--seeds", required=True, type=int, nargs="+", help="e.g. 1 2 3 4 5")
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "shipped", help="root of the run folders")
    parser.add_argument("--train", action="store_true", help="train (or resume) each run before shipping it")
    args = parser.parse_args(argv)
    if any(seed < 0 for seed in args.seeds):
        parser.error("--seeds must be >= 0")
    for seed in args.seeds:
        if args.train:
            train(args.task, seed, args.runs.resolve())
        ship(args.task, seed, args.runs.resolve())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
