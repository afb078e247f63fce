"""Choose the adaptation optimiser's rate scale without target labels: continue-ERM from the shipped models.

Every adaptation method of regdakit shares RegDA's SGD (``lr`` 0.01 for ``psi``, ``head_lr`` 0.1 for the
heads, momentum 0.9), the reference's rates for a model pre-trained with that SGD. The shipped models
were trained with Adam, down to 1e-4; at the reference's rates the first adaptation iterations knock
them off their source optimum before any method acts (issue 18's "optimiser shock"). Continue-ERM (plain
source training, no method objective) isolates the optimiser: this runs it from the shipped source-only
models of ``--seeds`` for both tasks at each scale of :data:`regdakit.tuning.RATE_SCALES` (both rates
multiplied), evaluating the source validation set every ``--eval_every`` iterations, and applies
:func:`regdakit.tuning.choose_rate_scale` (the largest scale that keeps every evaluation of every run
within :data:`regdakit.tuning.RATE_MARGIN` points of the start). The target test PCK is recorded by the
trainer and shown, never used to choose.

    python benchmarks/adapt_rates.py [--seeds 1 2] [--iterations 100] [--eval_every 25]

One thread per run; a finished run (its ``final.json``) is read, not re-run (``runs/adapt_rates/``).
Writes ``benchmarks/results/adapt_rates.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from _record import ROOT, write

from regdakit import pretrained
from regdakit.methods.recipe import SGDRecipe
from regdakit.tuning import RATE_MARGIN, RATE_SCALES, choose_rate_scale

MAIN = "pck@0.05/all"


def _evals(log: Path) -> list[dict]:
    rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    return [row for row in rows if "eval" in row]


def start_source_pck(task: str, seed: int) -> float:
    """Source-validation PCK@0.05 (%) of the shipped model: the last evaluation of its training log."""
    _, log = pretrained.source_only_files(task, seed=seed)
    return round(100 * _evals(log)[-1]["eval"]["source_val"][MAIN], 2)


def run(task: str, seed: int, scale: float, args: argparse.Namespace) -> dict:
    """Continue-ERM from the shipped model at ``scale`` x the reference's rates; its evaluation curve."""
    reference = SGDRecipe()
    name = f"{task}-seed{seed}-x{scale:g}"
    folder = args.out / name
    if not (folder / "final.json").is_file():
        command = [
            sys.executable, "-m", "regdakit", "train", "--task", task, "--method", "continue",
            "--preset", pretrained.PRESET, f"--seed={seed}", f"--adapt_iterations={args.iterations}",
            f"--eval_every={args.eval_every}", f"--checkpoint_every={args.iterations}",
            f"--init_checkpoint={pretrained.checkpoint_path(task, seed)}",
            f"--regda.lr={reference.lr * scale:g}", f"--regda.head_lr={reference.head_lr * scale:g}",
            f"--out={args.out}", f"--run_name={name}", "--no-progress", "--device=cpu",
        ]  # fmt: skip
        if folder.exists():
            command.append("--resume")
        env = os.environ | {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        subprocess.run(command, env=env, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    evals = _evals(folder / "metrics.jsonl")
    return {
        "task": task,
        "seed": seed,
        "scale": scale,
        "lr": reference.lr * scale,
        "head_lr": reference.head_lr * scale,
        "start_source_pck": start_source_pck(task, seed),
        "iterations": [row["iteration"] for row in evals],
        "source_pcks": [round(100 * row["eval"]["source_val"][MAIN], 2) for row in evals],
        "target_pcks_not_used": [round(100 * row["eval"]["target_test"][MAIN], 2) for row in evals],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2], help="shipped source-only seeds")
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--eval_every", type=int, default=25)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "adapt_rates")
    args = parser.parse_args(argv)
    if args.iterations < 1 or args.eval_every < 1:
        parser.error("--iterations and --eval_every must be positive")
    for task in pretrained.SEEDS:
        missing = [seed for seed in args.seeds if seed not in pretrained.SEEDS[task]]
        if missing:
            parser.error(f"seeds {missing} of {task} do not ship (shipped: {list(pretrained.SEEDS[task])})")
    runs = []
    for task in sorted(pretrained.SEEDS):
        for seed in args.seeds:
            for scale in RATE_SCALES:
                runs.append(run(task, seed, scale, args))
                r = runs[-1]
                print(f"{task} seed {seed} x{scale:g}: source {r['start_source_pck']:.1f} -> "
                      f"{', '.join(f'{v:.1f}' for v in r['source_pcks'])}", flush=True)  # fmt: skip
    choice = choose_rate_scale(runs, RATE_MARGIN)
    print(f"chosen scale {choice['chosen_scale']:g} ({choice['note']}); worst drop per scale {choice['worst_drop']}")
    print("wrote", write("adapt_rates", {"choice": choice, "runs": runs}))


if __name__ == "__main__":
    main()
