"""Table 1 and Table 2 of the paper on the synthetic tasks, with label-free model selection beside them.

For each task (hands: rendered -> studio; bodies: synthetic -> lab), seed and
method, with the trainer's ``cpu-bench`` preset (the budget of the trainer
issue's benchmark: the same cached source-only pre-training, then 200
adaptation iterations with RegDA's optimiser and schedule):

* Table 1: source only (the pre-training), DAN, DANN, MCD, DD, RegDA, oracle;
* Table 2: the two minimisations ablated, ``f'`` max ``L_T`` / ``psi`` min ``L_T`` (= DD),
  ``f'`` min ``L_F`` / ``psi`` max ``L_F`` (``--regda.objective=false_max``), and RegDA;
* selection: every adaptation run keeps snapshots every 50 iterations; each is
  scored by the label-free validators of :mod:`regdakit.selection` and by its
  target test PCK; the table gives last-iteration PCK, each validator's pick
  and the oracle pick (target labels: **not a valid UDA protocol**).

Numbers are PCK@0.05 / @0.1 ("all", %) on the fixed target test set, mean and
std over seeds, the paper's RHD -> H3D number beside each row. Source-only and
oracle runs are shared with ``benchmarks/synthetic_benchmark.py`` (same
``--out``): existing run folders are resumed, i.e. only re-evaluated. Every
adaptation job writes ``comparison.json`` in its run folder and is skipped when
that exists, so an interrupted benchmark continues where it stopped.

    python benchmarks/comparison_benchmark.py [--seeds 0 1 2] [--workers 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import multiprocessing as mp
import os
import statistics
import time
from pathlib import Path

from _record import ROOT, write

#: variant -> (method, regda.objective): the runs of the two tables.
VARIANTS = {
    "dd": ("dd", "regda"),
    "false_max": ("regda", "false_max"),
    "mcd": ("mcd", "regda"),
    "dan": ("dan", "regda"),
    "dann": ("dann", "regda"),
    "regda": ("regda", "regda"),
}
TABLE1 = ("source_only", "dan", "dann", "mcd", "dd", "regda", "oracle")
TABLE2 = ("dd", "false_max", "regda")
#: The paper's RHD -> H3D PCK@0.05 "all" (ResNet-101), Tables 1 and 2.
PAPER = {"source_only": 61.8, "dan": 55.1, "dann": 60.6, "mcd": 54.6, "dd": 65.2, "false_max": 66.5,
         "regda": 72.5, "oracle": 95.8}  # fmt: skip
LABELS = {
    "source_only": "source only",
    "dan": "DAN",
    "dann": "DANN",
    "mcd": "MCD",
    "dd": "DD (f' max L_T, psi min L_T)",
    "false_max": "f' min L_F, psi max L_F",
    "regda": "RegDA (f' min L_F, psi min L_T)",
    "oracle": "oracle",
}
VALIDATOR_NAMES = ("source_pck", "neg_entropy", "head_agreement")


def _base(task: str, seed: int, preset: str, out: str):
    from regdakit import train as T

    return T.make_config(preset, task=task, seed=seed, out=out, device="cpu")


def reference_job(task: str, seed: int, preset: str, out: str) -> dict:
    """Source-only and oracle target PCK of one (task, seed): the cached pre-training and the oracle run."""
    import torch

    torch.set_num_threads(1)
    from regdakit import train as T
    from regdakit.data.synthetic import SKELETONS

    base = _base(task, seed, preset, out)
    start = time.perf_counter()
    reused = [
        name
        for name, path in (
            ("pretrain", T.pretrain_cache_dir(base) / "model.pt"),
            ("oracle", dataclasses.replace(base, method="oracle").run_dir / "final.json"),
        )
        if path.exists()
    ]
    oracle = T.train(dataclasses.replace(base, method="oracle"), resume=True, progress=False)
    weights = T.source_only_weights(base, T.make_eval_sets(base))
    model = T.build_model(base, adversarial=False, seed=seed, load_backbone_weights=False)
    model.load_state_dict(weights)
    source_only = T.evaluate(model, T.make_eval_sets(base)["target_test"], SKELETONS[task])
    return {
        "kind": "reference",
        "task": task,
        "seed": seed,
        "target_test": {"source_only": _percent(source_only), "oracle": _percent(oracle["metrics"]["target_test"])},
        "wall_s": round(time.perf_counter() - start, 1),
        "reused": reused,
    }


def adaptation_job(task: str, seed: int, variant: str, preset: str, out: str, eval_size: int, every: int) -> dict:
    """Train one adaptation run with snapshots every 50 iterations, then score every snapshot."""
    import torch

    torch.set_num_threads(1)
    from regdakit import train as T
    from regdakit.data.synthetic import SKELETONS, make_dataset
    from regdakit.selection import VALIDATORS

    method, objective = VARIANTS[variant]
    base = _base(task, seed, preset, out)
    cfg = dataclasses.replace(
        base,
        method=method,
        regda=dataclasses.replace(base.regda, objective=objective),
        run_name=f"cmp-{task}-{variant}-seed{seed}",
        eval_every=every,
        checkpoint_every=every,
    )
    summary_path = cfg.run_dir / "comparison.json"
    if summary_path.exists():
        return json.loads(summary_path.read_text())
    start = time.perf_counter()
    result = T.train(cfg, resume=True, progress=False)
    train_s = time.perf_counter() - start
    # Validators see labelled *source* validation images and unlabelled *target validation* images (not the
    # test images that give the reported PCK).
    eval_sets = T.make_eval_sets(cfg)
    target_val = make_dataset(task, cfg.target_domain, "val", cfg.image_size, eval_size, seed=0).tensors()[0]
    data = {"source_val": eval_sets["source_val"], "target_images": target_val.split(64), "skeleton": SKELETONS[task]}
    candidates = []
    for path in sorted(cfg.run_dir.glob("iter_*.pt")):
        model, _, _ = T.load_checkpoint(path, "cpu")
        row = {"iteration": int(path.stem.split("_")[1])}
        for name in VALIDATOR_NAMES:
            row[name] = None if name == "head_agreement" and model.head_adv is None else VALIDATORS[name](model, data)
        row["target_pck"] = round(100 * T.evaluate(model, eval_sets["target_test"], SKELETONS[task])["pck@0.05/all"], 2)
        candidates.append(row)
    job = {
        "kind": "adaptation",
        "task": task,
        "seed": seed,
        "variant": variant,
        "target_test": _percent(result["metrics"]["target_test"]),
        "candidates": candidates,
        "train_wall_s": round(train_s, 1),
        "selection_wall_s": round(time.perf_counter() - start - train_s, 1),
    }
    summary_path.write_text(json.dumps(job, indent=2) + "\n")
    return job


def finished_job(task: str, seed: int, variant: str, preset: str, out: str) -> dict | None:
    """A finished adaptation job's ``comparison.json``; for RegDA without one, the trainer benchmark's run.

    ``--summarise-only`` builds the tables from these without training anything. The fallback reads
    ``<task>-regda-<backbone><size>-seed<s>/final.json`` of ``benchmarks/synthetic_benchmark.py`` (same preset,
    same cached pre-training, same seeds): its last-iteration PCK, without snapshots to select from.
    """

    run = Path(out) / f"cmp-{task}-{variant}-seed{seed}" / "comparison.json"
    if run.exists():
        return json.loads(run.read_text())
    base = dataclasses.replace(_base(task, seed, preset, out), method="regda")
    final = base.run_dir / "final.json"
    if variant != "regda" or not final.exists():
        return None
    return {
        "kind": "adaptation",
        "task": task,
        "seed": seed,
        "variant": variant,
        "target_test": _percent(json.loads(final.read_text())["metrics"]["target_test"]),
        "candidates": [],
        "reused_from": str(final.relative_to(Path(out).parent)),
    }


def _percent(metrics: dict) -> dict:
    return {k: round(100 * v, 2) for k, v in metrics.items() if k.endswith("/all")}


def _job(args: tuple) -> dict:
    kind, *rest = args
    return reference_job(*rest) if kind == "reference" else adaptation_job(*rest)


def _stats(values: list[float]) -> dict:
    return {
        "mean": round(statistics.fmean(values), 2),
        "std": round(statistics.stdev(values), 2) if len(values) > 1 else 0.0,
        "per_seed": values,
    }


def summarise(done: list[dict], tasks: list[str], seeds: list[int]) -> dict:
    """``{task: {"pck": {row: {metric: stats}}, "selection": {variant: {...}}}}``."""
    out = {}
    for task in tasks:
        per_row: dict[str, dict[int, dict]] = {}
        selection: dict[str, dict[str, list[float]]] = {}
        scores: dict[str, dict[str, list[tuple[int, float]]]] = {}
        for job in done:
            if job["task"] != task:
                continue
            if job["kind"] == "reference":
                for row, metrics in job["target_test"].items():
                    per_row.setdefault(row, {})[job["seed"]] = metrics
                continue
            per_row.setdefault(job["variant"], {})[job["seed"]] = job["target_test"]
            from regdakit.selection import oracle_select, select

            cands = job["candidates"]
            if not cands:  # a run shorter than the snapshot interval
                continue
            picks = {"last": max(cands, key=lambda c: c["iteration"])}
            for name in VALIDATOR_NAMES:
                if all(c[name] is not None for c in cands):
                    picks[name] = select(cands, name)
            picks["oracle_selected (uses target labels, not valid UDA)"] = oracle_select(cands)
            sel = selection.setdefault(job["variant"], {})
            for name, pick in picks.items():
                sel.setdefault(name, []).append((job["seed"], pick["target_pck"], pick["iteration"]))
            # The validators' own values at the last snapshot (e.g. source PCK: did the features survive?).
            for name in VALIDATOR_NAMES:
                if picks["last"][name] is not None:
                    scores.setdefault(job["variant"], {}).setdefault(name, []).append(
                        (job["seed"], round(picks["last"][name], 4))
                    )
        pck = {}
        for row, by_seed in per_row.items():
            have = [s for s in seeds if s in by_seed]
            pck[row] = {
                metric: _stats([by_seed[s][metric] for s in have]) | {"seeds": have}
                for metric in ("pck@0.05/all", "pck@0.1/all")
            }
        sel_out = {}
        for variant, picks in selection.items():
            sel_out[variant] = {}
            for name, entries in picks.items():
                entries.sort()
                sel_out[variant][name] = _stats([e[1] for e in entries]) | {
                    "seeds": [e[0] for e in entries],
                    "iterations": [e[2] for e in entries],
                }
        last_scores = {
            variant: {name: [v for _, v in sorted(values)] for name, values in by_name.items()}
            for variant, by_name in scores.items()
        }
        out[task] = {"pck": pck, "selection": sel_out, "validator_scores_at_last": last_scores}
    return out


def _ordering(task_pck: dict, rows: tuple[str, ...]) -> dict:
    """The measured order of the rows by mean PCK@0.05, beside the paper's."""
    have = [r for r in rows if r in task_pck]
    measured = sorted(have, key=lambda r: -task_pck[r]["pck@0.05/all"]["mean"])
    paper = sorted(have, key=lambda r: -PAPER[r])
    return {"measured": measured, "paper": paper, "same": measured == paper}


def markdown(title: str, result: dict, rows: tuple[str, ...], with_selection: bool) -> str:
    prov = result["provenance"]
    lines = [
        f"# {title}",
        "",
        f"Command: `{prov['command']}`  ",
        f"Commit {prov['commit'][:10]}, {prov['device']}, torch {prov['torch']}, preset `{result['preset_name']}`, "
        f"seeds {result['seeds']}, generator {result['generator_version']}, wall time {result['wall_minutes']} min "
        f"with {result['workers']} one-thread workers ({result['job_minutes_total']} job-minutes). "
        "Target test PCK (%, all keypoints), mean ± std over seeds, last iteration; "
        "the paper's column is RHD -> H3D with ResNet-101 (a different, real task: compare orderings, "
        "not values).",
        "",
    ]
    if result.get("note"):
        lines += [f"Note: {result['note']}", ""]
    for task, data in result["tasks"].items():
        lines += [f"## {task}", "", "| method | PCK@0.05 | PCK@0.1 | paper PCK@0.05 |", "|---|---|---|---|"]
        for row in rows:
            if row not in data["pck"]:
                lines.append(f"| {LABELS[row]} | not run | | {PAPER[row]} |")
                continue
            a, b = data["pck"][row]["pck@0.05/all"], data["pck"][row]["pck@0.1/all"]
            lines.append(f"| {LABELS[row]} | {a['mean']} ± {a['std']} | {b['mean']} ± {b['std']} | {PAPER[row]} |")
        order = data["ordering"]
        lines += ["", f"Measured order: {' > '.join(order['measured'])}; paper: {' > '.join(order['paper'])}.", ""]
        if with_selection and data["selection"]:
            names = [n for n in next(iter(data["selection"].values()))]
            names = ["last", *VALIDATOR_NAMES, names[-1]]
            lines += [
                f"Checkpoint selection (snapshots every {result['snapshot_every']} iterations; "
                "PCK@0.05 of the chosen one):",
                "",
                "| method | " + " | ".join(n.split(" (")[0] for n in names) + " |",
                "|---|" + "---|" * len(names),
            ]
            for variant, picks in data["selection"].items():
                cells = [f"{picks[n]['mean']} ± {picks[n]['std']}" if n in picks else "n/a" for n in names]
                lines.append(f"| {LABELS[variant]} | " + " | ".join(cells) + " |")
            lines += ["", "oracle_selected reads target test labels: an upper bound, not a valid UDA protocol.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="cpu-bench")
    parser.add_argument("--tasks", nargs="+", default=["hands", "bodies"], choices=["hands", "bodies"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--snapshot-every", type=int, default=50, help="iterations between scored snapshots")
    parser.add_argument("--workers", type=int, default=2, help="one-thread worker processes")
    parser.add_argument("--out", default=str(ROOT / "runs" / "synthetic_benchmark"), help="run folders")
    parser.add_argument(
        "--summarise-only",
        action="store_true",
        help="train nothing: tables from finished jobs (RegDA falls back to synthetic_benchmark.py's runs)",
    )
    parser.add_argument("--note", default="", help="provenance of reused runs, stored in the results")
    parser.add_argument("--suffix", default="synthetic", help="results are table1_<suffix>.json, table2_<suffix>.json")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    from regdakit.data.synthetic import GENERATOR_VERSION
    from regdakit.train import make_config

    cfg = make_config(args.preset)
    jobs = [("reference", t, s, args.preset, args.out) for t, s in itertools.product(args.tasks, args.seeds)]
    # Variant-major: if the run is cut short, whole methods are complete rather than whole seeds.
    jobs += [
        ("adaptation", t, s, v, args.preset, args.out, cfg.eval_size, args.snapshot_every)
        for v, t, s in itertools.product(args.variants, args.tasks, args.seeds)
    ]
    start = time.perf_counter()
    done = []
    if args.summarise_only:
        adaptation = [j for j in jobs if j[0] == "adaptation"]
        jobs = [j for j in jobs if j[0] == "reference"]
        for _, t, s, v, *_ in adaptation:
            job = finished_job(t, s, v, args.preset, args.out)
            if job is not None:
                done.append(job)
    with mp.get_context("spawn").Pool(args.workers) as pool:
        for job in pool.imap_unordered(_job, jobs):
            done.append(job)
            what = job.get("variant", "source only + oracle")
            print(
                f"[{(time.perf_counter() - start) / 60:5.1f} min] {job['task']} seed {job['seed']} {what}", flush=True
            )
    tasks = summarise(done, args.tasks, args.seeds)
    common = {
        "preset_name": args.preset,
        "preset": {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("out", "run_name", "device")},
        "generator_version": GENERATOR_VERSION,
        "seeds": args.seeds,
        "workers": args.workers,
        # Summarising only, the run's wall time is unknown here: the jobs' own times are summed instead.
        "wall_minutes": None if args.summarise_only else round((time.perf_counter() - start) / 60, 1),
        "job_minutes_total": round(
            sum(j.get("train_wall_s", 0) + j.get("selection_wall_s", 0) + j.get("wall_s", 0) for j in done) / 60, 1
        ),
        "snapshot_every": args.snapshot_every,
        "note": args.note,
        "paper_rhd_h3d": PAPER,
        "reused": [f"{j['task']}-seed{j['seed']}: {j['reused']}" for j in done if j.get("reused")]
        + [f"{j['task']}-seed{j['seed']}-{j['variant']}: {j['reused_from']}" for j in done if j.get("reused_from")],
        "seconds": {
            f"{j['task']}-seed{j['seed']}-{j.get('variant', 'reference')}": j.get("train_wall_s", j.get("wall_s"))
            for j in done
        },
    }
    for name, rows, with_selection, title in (
        (f"table1_{args.suffix}", TABLE1, True, "Table 1 on the synthetic tasks: baselines, RegDA, selection"),
        (
            f"table2_{args.suffix}",
            TABLE2,
            False,
            "Table 2 on the synthetic tasks: the ablation of the two minimisations",
        ),
    ):
        data = {
            task: {
                "pck": {r: v for r, v in t["pck"].items() if r in rows},
                "selection": {r: v for r, v in t["selection"].items() if r in rows} if with_selection else {},
                "validator_scores_at_last": {r: v for r, v in t["validator_scores_at_last"].items() if r in rows},
                "ordering": _ordering(t["pck"], rows),
            }
            for task, t in tasks.items()
        }
        result = {**common, "rows": list(rows), "tasks": data}
        path = write(name, result)
        text = markdown(
            title, {**result, "provenance": json.loads(path.read_text())["provenance"]}, rows, with_selection
        )
        path.with_suffix(".md").write_text(text + "\n")
        print(text)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
