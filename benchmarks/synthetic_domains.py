"""The synthetic domains, v2: what the shipped source-only models and the oracles do, seed by seed.

For each task and target domain, every source-only model of :data:`regdakit.pretrained.SEEDS` and
every oracle found (a finished run of :func:`regdakit.pretrained.oracle_command` under ``--runs``,
or a shipped one) is evaluated on the trainer's fixed sets (seed 0, ``--n`` images): the source
validation set and the target test set. Per model: PCK@0.05; where the source-only model's wrong
predictions land against the three chance models of :func:`regdakit.metrics.landing_chance` and
against the background, on the source domain beside the target; the share of wrong predictions that
leave the object (outside its keypoints' box widened by the landing radius) and the landing of those
that stay on it against the same chance models; and ``P_F``'s coverage of wrong
against correct predictions (``benchmarks/landing_baselines.py`` computes each number). Across
seeds: the mean and a 95 % Student-t interval
(:func:`regdakit.stats.summary`). Beside them the goals of the teaching-benchmark-v2
issue, each with the numbers it is judged on, and the CPU minutes each model took.

    python benchmarks/synthetic_domains.py [--n 256] [--runs runs/shipped]

Writes ``benchmarks/results/synthetic_domains.json``. Models are produced by
``python tools/ship_checkpoints.py --task TASK --seeds ... --train`` (``--oracle TARGET`` for the
oracles); nothing here trains.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from _record import ROOT, write
from landing_baselines import analyse

from regdakit import pretrained
from regdakit.data.synthetic import DOMAINS, GENERATOR_VERSIONS
from regdakit.stats import summary  # mean, sd and 95 % t-interval, rounded to 4 decimals
from regdakit.training import TASK_DOMAINS, load_checkpoint


def _cpu_minutes(path: Path) -> float | None:
    ledger = path.with_suffix(".cpu_seconds.json")
    if ledger.is_file():
        return round(json.loads(ledger.read_text())["cpu_seconds"] / 60, 1)
    run_ledger = path.parent / "cpu_seconds.json"  # a run folder's own ledger
    if run_ledger.is_file():
        return round(sum(a["seconds"] for a in json.loads(run_ledger.read_text())) / 60, 1)
    return None


def _oracle_file(task: str, target: str, seed: int, runs: Path) -> Path | None:
    if seed in pretrained.ORACLE_SEEDS.get((task, target), ()):
        return pretrained.oracle_path(task, target, seed)
    run = pretrained.oracle_config(task, target, seed, out=runs).run_dir
    return run / "last.pt" if (run / "final.json").is_file() else None


def measure_task(task: str, runs: Path, n: int, oracle_seeds: tuple[int, ...]) -> dict:
    """Every source-only model of ``task`` on its source and each target; the oracles on each target."""
    source = TASK_DOMAINS[task][0]
    targets = [d for d in DOMAINS[task] if d != source]
    models = []
    for seed in pretrained.SEEDS[task]:
        path, _ = pretrained.source_only_files(task, seed=seed)
        model, cfg, _ = load_checkpoint(path, "cpu")
        on_source = analyse(model, cfg, source, "val", n)
        on_targets = {target: analyse(model, cfg, target, "test", n) for target in targets}
        models.append({"seed": seed, "cpu_minutes": _cpu_minutes(path), "source": on_source, "targets": on_targets})
        print(f"{task} seed {seed}: source PCK {100 * on_source['pck@0.05']:.1f}", flush=True)
    result = {
        "generator_version": GENERATOR_VERSIONS[task],
        "recipe": pretrained.retrain_command(task, pretrained.SEEDS[task][0]),
        "source_only": models,
        "source_on_source": summary([m["source"]["pck@0.05"] for m in models]),
        "source_landing_on_other": summary([m["source"]["landing_on_other"] for m in models]),
        "targets": {},
    }
    for target in targets:
        oracles = []
        for seed in oracle_seeds:
            path = _oracle_file(task, target, seed, runs)
            if path is None:
                continue
            model, cfg, _ = load_checkpoint(path, "cpu")
            oracles.append({"seed": seed, "cpu_minutes": _cpu_minutes(path), **analyse(model, cfg, target, "test", n)})
        rows = [m["targets"][target] for m in models]
        entry = {
            "source_on_target": summary([r["pck@0.05"] for r in rows]),
            "oracle_on_target": summary([o["pck@0.05"] for o in oracles]),
            "oracles": oracles,
            "oracle_command": pretrained.oracle_command(task, target, 1),
        }
        for key in (
            "landing_on_other",
            "chance_uniform_image",
            "chance_uniform_box",
            "chance_rotated_errors",
            "ratio_to_strongest_chance",
            "wrong_off_object",
            "on_object_landing_on_other",
            "on_object_chance_uniform_box",
            "on_object_ratio_to_strongest_chance",
            "p_f_covers_wrong",
            "p_f_covers_correct",
            "p_f_gap",
            "p_f_region_area",
        ):
            entry[key] = summary([r[key] for r in rows])
        entry["landing_on_background"] = summary([1 - r["landing_on_other"] for r in rows])
        entry["goals"] = goals(task, result, entry)
        result["targets"][target] = entry
    return result


def goals(task: str, result: dict, entry: dict) -> dict:
    """The issue's goals for one target, each with the means it is judged on (None: not measured yet)."""
    mean = lambda s: s.get("mean")  # noqa: E731
    out = {
        "source_pck_at_least_0.70": _judge(mean(result["source_on_source"]), lambda v: v >= 0.70),
        "landing_at_least_1.5x_strongest_chance": _judge(mean(entry["ratio_to_strongest_chance"]), lambda v: v >= 1.5),
        "landing_above_source": _judge(
            (mean(entry["landing_on_other"]), mean(result["source_landing_on_other"])),
            lambda v: None not in v and v[0] > v[1],
        ),
    }
    gap = None
    if entry["oracle_on_target"].get("n"):
        gap = mean(entry["oracle_on_target"]) - mean(entry["source_on_target"])
    out["oracle_at_least_15_points_above"] = _judge(gap, lambda v: v >= 0.15)
    if task == "bodies":
        out["landing_on_keypoints_above_background"] = _judge(mean(entry["landing_on_other"]), lambda v: v > 0.5)
    return out


def _judge(value, test) -> dict:
    if value is None:
        return {"value": None, "met": None}
    return {"value": value if not isinstance(value, float) else round(value, 4), "met": bool(test(value))}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", nargs="+", choices=sorted(pretrained.SEEDS), default=sorted(pretrained.SEEDS))
    parser.add_argument("--n", type=int, default=256, help="images per fixed set (the trainer's eval_size)")
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "shipped", help="where oracle runs are")
    parser.add_argument("--oracle_seeds", type=int, nargs="+", default=[1, 2, 3])
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error("--n must be positive")
    torch.manual_seed(0)
    tasks = {task: measure_task(task, args.runs.resolve(), args.n, tuple(args.oracle_seeds)) for task in args.tasks}
    path = write("synthetic_domains", {"version": 2, "images_per_set": args.n, "tasks": tasks})
    print("wrote", path)


if __name__ == "__main__":
    main()
