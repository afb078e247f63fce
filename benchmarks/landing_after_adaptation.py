"""Where the wrong target predictions land after adaptation: each core row of the comparison, seed by seed.

RegDA trains ``f'`` towards the ground-false distribution (the other keypoints' heatmaps) and ``psi`` to move
``f`` away from where ``f'`` lands, so its wrong target predictions should land on another keypoint less often
than those of the rows without the game. This measures that share with :func:`landing_baselines.analyse` on
the trainer's fixed target test set, for the shipped source-only models and the final weights (``last.pt``)
of the comparison's continue-ERM, control and RegDA runs, and pairs RegDA with each baseline by seed.

The runs are those of ``benchmarks/comparison_v2.py`` under its ``--out`` (ignored by git): run that first.

    python benchmarks/landing_after_adaptation.py [--runs runs/comparison_v2] [--tasks hands bodies]
        [--seeds 1 2 3 4 5] [--n 256]

Writes ``benchmarks/results/landing_after_adaptation.json``. Its PCK is not the comparison's: it is that of the
final weights (the comparison reports the mean of the last evaluations) and it pools every keypoint, as the
landing share does (the comparison's ``pck@0.05/all`` is the skeleton's ``all`` group: 12 of the 16 on bodies).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from _record import ROOT, write
from landing_baselines import analyse
from tqdm.auto import tqdm

from regdakit import pretrained, stats
from regdakit.data.synthetic import GENERATOR_VERSION
from regdakit.training import load_checkpoint

ROWS = ("source_only", "continue", "control", "regda")
MEASURES = ("pck@0.05", "landing_on_other", "ratio_to_strongest_chance", "wrong_off_object")


def checkpoint(runs: Path, task: str, row: str, seed: int) -> Path:
    """The weights of one reported run: the shipped model for source only, else the run's ``last.pt``."""
    if row == "source_only":
        return pretrained.checkpoint_path(task, seed)
    path = runs / f"reported-{task}-{row}-seed{seed}" / "last.pt"
    if not (path.parent / "final.json").is_file():
        raise FileNotFoundError(
            f"{path.parent} has no finished run (no final.json): run benchmarks/comparison_v2.py "
            f"with --out {runs} first"
        )
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=Path, default=Path("runs/comparison_v2"), help="comparison_v2.py's --out")
    parser.add_argument("--tasks", nargs="+", choices=("hands", "bodies"), default=["hands", "bodies"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3, 4, 5])
    parser.add_argument("--n", type=int, default=256, help="target test images (the trainer's eval_size)")
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error("--n must be positive")
    if not args.runs.is_dir():
        parser.error(f"--runs {args.runs}: no such folder (benchmarks/comparison_v2.py writes its runs there)")
    # Every checkpoint is looked up before any is evaluated: a missing run fails at once, not after minutes.
    paths = {(t, r, s): checkpoint(args.runs, t, r, s) for t in args.tasks for r in ROWS for s in args.seeds}
    torch.manual_seed(0)
    measured: dict[tuple[str, str, int], dict] = {}
    for (task, row, seed), path in tqdm(paths.items(), desc="models", unit="model"):
        model, cfg, _ = load_checkpoint(path, "cpu")
        result = analyse(model, cfg, cfg.target_domain, "test", args.n)
        measured[task, row, seed] = result | {"pck@0.05": round(100 * result["pck@0.05"], 2)}  # percent

    tasks = {}
    for task in args.tasks:
        rows = {}
        for row in ROWS:
            per_seed = {s: measured[task, row, s] for s in args.seeds}
            rows[row] = {
                "checkpoints": [str(paths[task, row, s]) for s in args.seeds],  # made portable by write()
                **{m: stats.summary(v[m] for v in per_seed.values()) for m in MEASURES},
            }
        regda_minus = {
            base: {
                m: stats.paired_differences(
                    {s: measured[task, "regda", s][m] for s in args.seeds},
                    {s: measured[task, base, s][m] for s in args.seeds},
                )
                for m in ("pck@0.05", "landing_on_other", "wrong_off_object")
            }
            for base in ROWS[:-1]
        }
        tasks[task] = {
            "target": measured[task, "regda", args.seeds[0]]["domain"],
            "rows": rows,
            "regda_minus": regda_minus,
        }
        print(f"{task} -> {tasks[task]['target']} (target test, {args.n} images, final weights)")
        for row in ROWS:
            r = rows[row]
            print(
                f"  {row:<12} PCK@0.05 {stats.format_interval(r['pck@0.05'])} %"
                f"  on other {stats.format_interval(r['landing_on_other'], 2)}"
                f"  ratio to chance {stats.format_interval(r['ratio_to_strongest_chance'], 2)}"
                f"  off the object {stats.format_interval(r['wrong_off_object'], 2)}"
            )
        for base, d in regda_minus.items():
            print(
                f"  RegDA - {base:<12} on other {stats.format_interval(d['landing_on_other'], 3, signed=True)}"
                f"  off the object {stats.format_interval(d['wrong_off_object'], 3, signed=True)}"
            )
    path = write(
        "landing_after_adaptation",
        {"generator_version": GENERATOR_VERSION, "images": args.n, "seeds": args.seeds, "tasks": tasks},
    )
    print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
