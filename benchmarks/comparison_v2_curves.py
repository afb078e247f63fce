"""The learning curves of the comparison's reported runs: target and source PCK at every evaluation.

``benchmarks/comparison_v2.py`` reports each run as the mean of its last evaluations and keeps the whole
log only in the run's ``metrics.jsonl`` under its ``--out`` (ignored by git). This collects the curves of
every finished reported run into one committed file, so that whether a row was still rising when the budget
ended can be read without the runs.

    python benchmarks/comparison_v2_curves.py [--runs runs/comparison_v2]

Writes ``benchmarks/results/comparison_v2/curves.json``: per task and row, per seed the evaluated iterations
with target test and source validation PCK@0.05 (%, the skeleton's ``all`` group, as the report), and the
mean over seeds at each iteration.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from _record import ROOT, portable, provenance

from regdakit import stats
from regdakit.comparison import METRIC as MAIN

RUN_NAME = re.compile(r"reported-(?P<task>[a-z]+)-(?P<row>[a-z_]+)-seed(?P<seed>\d+)")


def read_curve(run: Path) -> dict[str, list[float]]:
    """``{"iterations", "target", "source"}`` of one run's evaluations, in order (PCK in %).

    Raises:
        FileNotFoundError: The run has no ``metrics.jsonl``.
        ValueError: A line of it is not JSON (named with its number), or the run logged no evaluation.
    """
    log = run / "metrics.jsonl"
    if not log.is_file():
        raise FileNotFoundError(f"{log} does not exist")
    curve: dict[str, list[float]] = {"iterations": [], "target": [], "source": []}
    for number, line in enumerate(log.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{log}, line {number}: not JSON ({err.msg})") from None
        if "eval" not in entry or entry.get("phase") != "adapt":
            continue
        curve["iterations"].append(entry["iteration"])
        curve["target"].append(round(100 * entry["eval"]["target_test"][MAIN], 3))
        curve["source"].append(round(100 * entry["eval"]["source_val"][MAIN], 3))
    if not curve["iterations"]:
        raise ValueError(f"{log} holds no adaptation evaluation")
    return curve


def collect(runs: Path) -> dict[str, dict[str, dict]]:
    """Every finished reported run under ``runs``: ``{task: {row: {"seeds": {seed: curve}, "mean": {...}}}}``."""
    found: dict[str, dict[str, dict[int, dict]]] = {}
    for run in sorted(runs.iterdir()):
        match = RUN_NAME.fullmatch(run.name)
        if match and (run / "final.json").is_file():
            found.setdefault(match["task"], {}).setdefault(match["row"], {})[int(match["seed"])] = read_curve(run)
    out: dict[str, dict[str, dict]] = {}
    for task, rows in found.items():
        for row, seeds in rows.items():
            iterations = seeds[min(seeds)]["iterations"]
            if any(c["iterations"] != iterations for c in seeds.values()):
                raise ValueError(f"{task} {row}: the seeds were evaluated at different iterations")
            mean = {
                key: [stats.summary(c[key][i] for c in seeds.values())["mean"] for i in range(len(iterations))]
                for key in ("target", "source")
            }
            out.setdefault(task, {})[row] = {
                "seeds": {seed: seeds[seed] for seed in sorted(seeds)},
                "mean": {"iterations": iterations, **mean},
            }
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=Path, default=Path("runs/comparison_v2"), help="comparison_v2.py's --out")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "comparison_v2" / "curves.json")
    args = parser.parse_args(argv)
    if not args.runs.is_dir():
        parser.error(f"--runs {args.runs}: no such folder (benchmarks/comparison_v2.py writes its runs there)")
    curves = collect(args.runs)
    if not curves:
        parser.error(f"--runs {args.runs}: no finished reported run (reported-<task>-<row>-seed<n> with final.json)")
    args.out.write_text(json.dumps(portable({"provenance": provenance(), "tasks": curves}), indent=2) + "\n")
    for task, rows in curves.items():
        for row, c in rows.items():
            first, last = c["mean"]["target"][0], c["mean"]["target"][-1]
            print(f"{task:6s} {row:12s} {len(c['seeds'])} seeds  target {first:5.1f} -> {last:5.1f}")
    print(f"wrote {portable(str(args.out))}")


if __name__ == "__main__":
    main()
