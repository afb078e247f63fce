"""Wall time of the shipped source-only recipe at one and at two threads (the teaching-benchmark-v2 issue).

The issue's budget is "at most 30 minutes per model on 2 cores". Training a
whole model twice only to time it would cost an hour, so this runs the first
``--iterations`` of the recipe (``--preset cpu-bench``, its evaluation every
500 iterations included) once per thread count, one after the other, and
scales each wall time to the recipe's length. The iterations of the recipe
all cost the same (one batch size, one map size) and the evaluations come in
the same proportion, so the scaled time is the whole run's; the start-up is
scaled too, which overstates it a little.

Run it on a quiet machine (nothing else using the cores: the numbers are wall
times)::

    python benchmarks/recipe_wall_time.py [--task hands] [--iterations 1000]

Writes ``benchmarks/results/recipe_wall_time.json``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

from _record import ROOT, write

from regdakit import pretrained
from regdakit.training import make_config


def time_run(task: str, iterations: int, threads: int) -> float:
    """Wall seconds of the recipe's first ``iterations`` at ``threads`` threads, in a fresh process."""
    with tempfile.TemporaryDirectory(prefix="regdakit-wall-") as out:
        command = [
            sys.executable, "-m", "regdakit", "train", "--task", task, "--method", "erm",
            "--preset", pretrained.PRESET, "--seed=7", f"--pretrain_iterations={iterations}",
            "--erm.milestones=", f"--out={out}", "--no-progress", "--device=cpu",
        ]  # fmt: skip
        env = os.environ | {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        start = time.perf_counter()
        subprocess.run(command, env=env, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", choices=sorted(pretrained.SEEDS), default="hands")
    parser.add_argument("--iterations", type=int, default=1000, help="a multiple of the recipe's eval_every")
    args = parser.parse_args(argv)
    recipe = make_config(pretrained.PRESET, task=args.task, method="erm")
    if args.iterations < 1 or args.iterations % recipe.eval_every:
        parser.error(f"--iterations must be a positive multiple of the recipe's eval_every ({recipe.eval_every})")
    scale = recipe.pretrain_iterations / args.iterations
    rows = {}
    for threads in (1, 2):
        seconds = time_run(args.task, args.iterations, threads)
        rows[str(threads)] = {
            "wall_seconds": round(seconds, 1),
            "recipe_wall_minutes": round(seconds * scale / 60, 1),
        }
        print(f"{threads} thread(s): {seconds:.1f} s for {args.iterations} iterations -> "
              f"{seconds * scale / 60:.1f} min for the recipe's {recipe.pretrain_iterations}", flush=True)  # fmt: skip
    result = {
        "task": args.task,
        "recipe": pretrained.retrain_command(args.task, 1),
        "iterations_timed": args.iterations,
        "recipe_iterations": recipe.pretrain_iterations,
        "threads": rows,
        "two_threads_speedup": round(rows["1"]["wall_seconds"] / rows["2"]["wall_seconds"], 2),
        "note": "wall times scaled to the recipe's length (start-up included, so slightly overstated); "
        "the learning-rate milestone is dropped for the short run (it does not change an iteration's cost)",
    }
    print("wrote", write("recipe_wall_time", result))


if __name__ == "__main__":
    main()
