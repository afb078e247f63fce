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
    python tools/ship_checkpoints.py --task bodies --oracle lab --seeds 1 2 3 --train   # the oracles
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
from typing import Any

import torch

from regdakit import pretrained

ROOT = Path(__file__).resolve().parents[1]


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def job(task: str, seed: int, runs: Path, oracle: str | None = None) -> tuple[Any, str, Path]:
    """``(config, command, shipped path)`` of the source-only model (or of the oracle on ``oracle``)."""
    if oracle is None:
        cfg, command = pretrained.retrain_config(task, seed, out=runs), pretrained.retrain_command(task, seed)
        return cfg, command, pretrained.checkpoint_path(task, seed)
    cfg, command = pretrained.oracle_config(task, oracle, seed, out=runs), pretrained.oracle_command(task, oracle, seed)
    return cfg, command, pretrained.oracle_path(task, oracle, seed)


def train(cfg: Any, command: str, runs: Path) -> None:
    """Run (or resume) ``command`` (whose config is ``cfg``) under ``runs``; one thread."""
    if (cfg.run_dir / "final.json").is_file():
        return
    args = [sys.executable, *shlex.split(command)[1:], f"--out={runs}", "--no-progress", "--device=cpu"]
    if cfg.run_dir.exists():
        args.append("--resume")
    print("running:", " ".join(args[1:]), flush=True)
    before = _cpu_seconds()
    result = subprocess.run(args, env=os.environ | {"OMP_NUM_THREADS": "1"}, cwd=ROOT, check=False)
    ledger = cfg.run_dir / "cpu_seconds.json"
    attempts = json.loads(ledger.read_text()) if ledger.exists() else []
    attempts.append({"seconds": round(_cpu_seconds() - before, 1), "returncode": result.returncode})
    ledger.write_text(json.dumps(attempts, indent=1) + "\n")
    if result.returncode != 0:
        raise SystemExit(f"{cfg.run_dir.name}: the trainer failed (exit {result.returncode})")


def half(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Floating-point tensors in half precision, the others (BatchNorm's counters) as they are."""
    return {k: v.half() if v.is_floating_point() else v for k, v in weights.items()}


def ship(cfg: Any, path: Path) -> Path:
    """Copy the finished run of ``cfg`` to ``path`` (half precision), with its log and CPU seconds."""
    if not (cfg.run_dir / "final.json").is_file():
        raise SystemExit(f"{cfg.run_dir} has not finished: train it first (--train)")
    state = torch.load(cfg.run_dir / "last.pt", weights_only=True, map_location="cpu")
    differences = pretrained.recipe_differences(state["config"], cfg)
    if differences:
        raise SystemExit(f"{cfg.run_dir} was not trained with the command of {path.name} ({'; '.join(differences)})")
    path.parent.mkdir(parents=True, exist_ok=True)
    config = dataclasses.asdict(dataclasses.replace(cfg, out="runs"))
    torch.save({"config": config, "model": half(state["model"]), "parts": state.get("parts", [])}, path)
    shutil.copyfile(cfg.run_dir / "metrics.jsonl", path.with_suffix(".metrics.jsonl"))
    ledger = cfg.run_dir / "cpu_seconds.json"
    if ledger.is_file():
        seconds = sum(a["seconds"] for a in json.loads(ledger.read_text()))
        path.with_suffix(".cpu_seconds.json").write_text(json.dumps({"cpu_seconds": round(seconds, 1)}) + "\n")
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB) and its log", flush=True)
    return path


def main(argv: list[str] | None = None) -> int:
    """Train (with ``--train``) and ship each seed's model; exit status 0 when every one shipped."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", required=True, choices=sorted(pretrained.SEEDS))
    parser.add_argument("--seeds", required=True, type=int, nargs="+", help="e.g. 1 2 3 4 5")
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "shipped", help="root of the run folders")
    parser.add_argument("--train", action="store_true", help="train (or resume) each run before shipping it")
    parser.add_argument(
        "--oracle", metavar="TARGET", help="the oracle on this target domain, not the source-only model"
    )
    args = parser.parse_args(argv)
    if any(seed < 0 for seed in args.seeds):
        parser.error("--seeds must be >= 0")
    runs = args.runs.resolve()
    for seed in args.seeds:
        try:
            cfg, command, path = job(args.task, seed, runs, args.oracle)
        except ValueError as err:
            parser.error(str(err))
        if args.train:
            train(cfg, command, runs)
        ship(cfg, path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
