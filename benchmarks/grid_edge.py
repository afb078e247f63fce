"""Past the grid's edge: would the comparison's tuning rule pick a trade-off above the grid's largest?

On hands the label-free rule of ``benchmarks/comparison_v2.py`` picked the grid's largest trade-off (1) for
most rows, and the target labels of the tuning seed agree, so the grid may stop short of the best setting.
This runs the tuning seed (never reported) at trade-offs above the grid, with the comparison's own job
function, settings and source-only model of that seed, then applies the same rule (source margin, then
the label-free validator) to the grid's candidates and the new ones together, and grades the result with
the tuning seed's target labels as the comparison's report does (:func:`comparison_v2.tuning_audit`).

    python benchmarks/grid_edge.py [--task hands] [--rows dan dann dd false_max regda] [--trade_offs 3]

Needs the comparison's tuning-seed source-only model under its ``--out`` (``runs/comparison_v2``). Writes each
run's result to ``benchmarks/results/comparison_v2_grid_edge/jobs/`` (resumable: a finished one is read
back) and the summary to ``benchmarks/results/comparison_v2_grid_edge/grid_edge.json``. Nothing here
changes the comparison's choices or its report.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import comparison_v2 as v2
from _record import ROOT, portable, provenance
from tqdm.auto import tqdm

COMPARISON = ROOT / "benchmarks" / "results" / "comparison_v2"
#: The comparison's settings these runs share (the budget, the evaluations, the tuning rule).
SHARED = ("preset", "adapt_iterations", "evals", "last_evals", "validator", "margin")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", choices=("hands", "bodies"), default="hands")
    parser.add_argument("--rows", nargs="+", default=["dan", "dann", "dd", "false_max", "regda"])
    parser.add_argument("--trade_offs", nargs="+", type=float, default=[3.0])
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "comparison_v2", help="comparison_v2.py's --out")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results" / "comparison_v2_grid_edge")
    args = parser.parse_args(argv)
    unknown = [r for r in args.rows if r not in v2.ROWS or not v2.ROWS[r].tuned]
    if unknown:
        parser.error(
            f"--rows: {unknown} are not tuned rows of the comparison ({[r for r in v2.ROWS if v2.ROWS[r].tuned]})"
        )
    report = json.loads((COMPARISON / "comparison_v2.json").read_text())
    settings = report["settings"]
    grid = settings["grid"]
    if any(t <= max(grid) for t in args.trade_offs):
        parser.error(f"--trade_offs must lie above the grid's largest value {max(grid)}, got {args.trade_offs}")
    s = {
        **{k: settings[k] for k in SHARED},
        "out": os.fspath(args.out.resolve()),
        "results": os.fspath(args.results.resolve()),
        "checkpoints": None,
        "workers": 1,
        "train_oracles": False,
    }
    seed = settings["tuning_seed"]
    committed = COMPARISON / "jobs" / f"tuning-{args.task}-source_only-seed{seed}.json"
    if not committed.is_file():
        parser.error(f"{committed} does not exist: the comparison has not evaluated its tuning seed's model yet")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    model, ready = v2.source_checkpoint(args.task, seed, s)
    if not ready:  # lost with runs/ (a fresh checkout, or cleaned): the shipped recipe again, resuming a partial run
        print(f"no source-only model of the tuning seed at {portable(os.fspath(model))}: training it again", flush=True)
        v2.run_job(v2.Job("pretrain", args.task, "source_only", seed), s)
    # The new runs must start from the model the grid started from: its evaluation must be the committed one.
    check = v2.run_job(v2.Job("tuning", args.task, "source_only", seed), s)
    before_model = json.loads(committed.read_text())
    for split in ("source_val", "target_test"):
        if check[split] != before_model[split]:
            raise SystemExit(
                f"the tuning seed's model at {portable(os.fspath(model))} is not the one the grid started from: "
                f"{split} {check[split]} here, {before_model[split]} in {portable(os.fspath(committed))}"
            )

    jobs = [v2.Job("tuning", args.task, row, seed, t) for row in args.rows for t in args.trade_offs]
    new = [v2.run_job(job, s) for job in tqdm(jobs, desc="runs past the grid", unit="run")]
    # The comparison's own tuning results of this task (the grid and the tuning seed's source-only model).
    grid_runs = [
        json.loads(p.read_text()) for p in sorted((COMPARISON / "jobs").glob(f"tuning-{args.task}-*-seed{seed}*.json"))
    ]
    grid_runs = [r for r in grid_runs if r["row"] in (*args.rows, "source_only")]
    before = v2.choices(grid_runs, s).get(args.task, {})
    after = v2.choices(grid_runs + new, s).get(args.task, {})
    audit = v2.tuning_audit(grid_runs + new, after)
    rows = {
        row: {
            "grid_choice": before.get(row, {}).get("chosen_trade_off"),
            "choice_with_edge": after[row]["chosen_trade_off"],
            "note": after[row]["note"],
            "candidates": after[row]["candidates"],
            "audit": audit["rows"].get(row),
        }
        for row in args.rows
    }
    result = {
        "provenance": provenance(),
        "task": args.task,
        "tuning_seed": seed,
        "grid": grid,
        "trade_offs_added": args.trade_offs,
        "settings": {k: s[k] for k in SHARED},
        "source_only_target": audit["source_only"],
        "rows": rows,
        "cpu_s": round(sum(r.get("cpu_s", 0) for r in new), 1),
    }
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "grid_edge.json").write_text(json.dumps(portable(result), indent=2) + "\n")
    for row, r in rows.items():
        a = r["audit"] or {}
        print(
            f"{row:10s} grid chose {r['grid_choice']}, with {args.trade_offs} it chooses {r['choice_with_edge']}; "
            f"target by trade-off {a.get('target_by_trade_off')}, labels' pick {a.get('label_pick')}"
        )
    print(f"wrote {portable(os.fspath(args.results / 'grid_edge.json'))}")


if __name__ == "__main__":
    main()
