"""The synthetic CPU benchmark of the trainer issue: ERM, AdaBN, control, RegDA and the oracle.

For each task (hands: rendered -> studio; bodies: synthetic -> lab) and seed,
with the trainer's ``cpu-bench`` preset (or ``--preset``):

* **ERM**: the source-only pre-training (the same run RegDA and the control
  start from, cached by the trainer);
* **AdaBN**: that model with BatchNorm statistics re-estimated on unlabelled
  target training images (:mod:`regdakit.methods.adabn`);
* **control**: RegDA's schedule without the adversarial game
  (:mod:`regdakit.methods.control`): same iterations, optimisers and source
  loss, target batches forwarded in train mode;
* **RegDA**: steps A, B, C (fused);
* **oracle**: ERM on labelled target batches with the pre-training's budget.

Every number is the last iteration's (no checkpoint is chosen). PCK@0.05 and
@0.1 ("all" and per group) on the fixed target test set, mean and std over
seeds (in %), and ``gap_closed = (X - ERM) / (oracle - ERM)`` per seed for RegDA and
the control. Jobs (task, seed) run in ``--workers`` processes of one thread
each; the wall time of the whole run and the CPU seconds of each stage are
recorded.

    python benchmarks/synthetic_benchmark.py [--preset cpu-bench] [--seeds 0 1 2] [--workers 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import multiprocessing as mp
import os
import statistics
import time

from _record import ROOT, write

METHODS = ("erm", "adabn", "control", "regda", "oracle")


def _timed(fn, *args, **kwargs):
    """``(result, wall seconds, CPU seconds of this process)``."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    return out, round(time.perf_counter() - wall, 1), round(time.process_time() - cpu, 1)


def run_job(task: str, seed: int, preset: str, out: str, adabn_batches: int) -> dict:
    """All five methods for one (task, seed), in this process, on one thread."""
    import torch

    torch.set_num_threads(1)
    from regdakit import train as T
    from regdakit.keypoints import BODY16, HAND21
    from regdakit.methods.adabn import recompute_batchnorm

    skeleton = {"hands": HAND21, "bodies": BODY16}[task]
    base = T.make_config(preset, task=task, seed=seed, out=out, device="cpu")
    results, seconds = {}, {}

    # Stages whose run folders exist already are resumed (finished ones only re-evaluated): recorded, so that
    # their near-zero times are not mistaken for the cost of the stage.
    reused = []
    if (T.pretrain_cache_dir(base) / "model.pt").exists():
        reused.append("pretrain")

    def run(method: str) -> dict:
        cfg = dataclasses.replace(base, method=method)
        if (cfg.run_dir / "last.pt").exists():
            reused.append(method)
        result, wall, cpu = _timed(T.train, cfg, resume=True, progress=False)
        seconds[method] = {"wall": wall, "cpu": cpu}
        return result["metrics"]["target_test"]

    # RegDA first: it runs (and caches) the source-only pre-training that ERM, AdaBN and the control reuse.
    results["regda"] = run("regda")
    pretrained = T.source_only_weights(base)  # the cache RegDA's run wrote
    eval_sets = T.make_eval_sets(base)
    model = T.build_model(base, adversarial=False, seed=seed, load_backbone_weights=False)
    model.load_state_dict(pretrained)
    results["erm"] = T.evaluate(model, eval_sets["target_test"], skeleton)
    # AdaBN sees the unlabelled target images of the adaptation stream (labels=False: images only).
    stream = T.make_stream(base, base.target_domain, 2 * seed + 1, labels=False)
    images = (next(stream)["image"] for _ in range(adabn_batches))
    _, wall, cpu = _timed(recompute_batchnorm, model, images)
    seconds["adabn"] = {"wall": wall, "cpu": cpu}
    results["adabn"] = T.evaluate(model, eval_sets["target_test"], skeleton)
    results["control"] = run("control")
    results["oracle"] = run("oracle")
    percent = {m: {k: round(100 * v, 2) for k, v in r.items()} for m, r in results.items()}
    return {"task": task, "seed": seed, "target_test": percent, "seconds": seconds, "reused": reused}


def _job(args: tuple) -> dict:
    return run_job(*args)


def summarise(jobs: list[dict], tasks: list[str], seeds: list[int]) -> dict:
    """Per task: per-method per-seed PCK, mean / std, gap_closed and the goals' checks."""
    out = {}
    for task in tasks:
        rows = {j["seed"]: j["target_test"] for j in jobs if j["task"] == task}
        per_method = {}
        for method in METHODS:
            seeds_pck = {s: rows[s][method] for s in seeds}
            stats = {}
            for key in seeds_pck[seeds[0]]:
                values = [seeds_pck[s][key] for s in seeds]
                stats[key] = {
                    "mean": round(statistics.fmean(values), 2),
                    "std": round(statistics.stdev(values), 2) if len(values) > 1 else 0.0,
                }
            per_method[method] = {"per_seed": {str(s): seeds_pck[s] for s in seeds}, "summary": stats}
        gap = {}
        for method in ("regda", "control", "adabn"):
            closed = []
            for s in seeds:
                erm, oracle = rows[s]["erm"]["pck@0.05/all"], rows[s]["oracle"]["pck@0.05/all"]
                closed.append(round((rows[s][method]["pck@0.05/all"] - erm) / (oracle - erm), 3))
            gap[method] = {"per_seed": closed, "mean": round(statistics.fmean(closed), 3)}
        checks = {
            "regda_above_erm_every_seed": all(
                rows[s]["regda"]["pck@0.05/all"] > rows[s]["erm"]["pck@0.05/all"] for s in seeds
            ),
            "regda_above_control_every_seed": all(
                rows[s]["regda"]["pck@0.05/all"] > rows[s]["control"]["pck@0.05/all"] for s in seeds
            ),
        }
        out[task] = {"methods": per_method, "gap_closed": gap, "checks": checks}
    return out


def markdown(result: dict) -> str:
    """A table per task: PCK@0.05 / @0.1 (all) mean ± std, gap closed."""
    lines = [
        "# Synthetic benchmark (target test set, last iteration)",
        "",
        f"Command: `{result['provenance']['command']}`  ",
        f"Commit {result['provenance']['commit'][:10]}, {result['provenance']['device']}, "
        f"torch {result['provenance']['torch']}, preset `{result['preset_name']}`, seeds {result['seeds']}, "
        f"generator {result['generator_version']}, wall time {result['wall_minutes']} min with "
        f"{result['workers']} one-thread workers.",
        "",
    ]
    for task, data in result["tasks"].items():
        lines += [f"## {task}", "", "| method | PCK@0.05 | PCK@0.1 | gap closed |", "|---|---|---|---|"]
        for method in METHODS:
            s = data["methods"][method]["summary"]
            gap = data["gap_closed"].get(method, {}).get("mean", "")
            lines.append(
                f"| {method} | {s['pck@0.05/all']['mean']} ± {s['pck@0.05/all']['std']} "
                f"| {s['pck@0.1/all']['mean']} ± {s['pck@0.1/all']['std']} | {gap} |"
            )
        lines += ["", f"Checks: {data['checks']}", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="cpu-bench")
    parser.add_argument("--tasks", nargs="+", default=["hands", "bodies"], choices=["hands", "bodies"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--workers", type=int, default=2, help="one-thread worker processes")
    parser.add_argument("--adabn-batches", type=int, default=16, help="target batches for AdaBN's statistics")
    parser.add_argument("--out", default=str(ROOT / "runs" / "synthetic_benchmark"), help="run folders")
    parser.add_argument("--name", default="synthetic_benchmark")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    from regdakit.data.synthetic import GENERATOR_VERSION
    from regdakit.train import make_config

    jobs = [(t, s, args.preset, args.out, args.adabn_batches) for t, s in itertools.product(args.tasks, args.seeds)]
    start = time.perf_counter()
    with mp.get_context("spawn").Pool(args.workers) as pool:
        done = []
        for job in pool.imap_unordered(_job, jobs):
            done.append(job)
            print(f"done {job['task']} seed {job['seed']}: {job['seconds']}", flush=True)
    wall = round((time.perf_counter() - start) / 60, 1)
    cfg = make_config(args.preset)
    result = {
        "preset_name": args.preset,
        "preset": {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("out", "run_name", "device")},
        "generator_version": GENERATOR_VERSION,
        "seeds": args.seeds,
        "workers": args.workers,
        "wall_minutes": wall,
        "adabn_batches": args.adabn_batches,
        "tasks": summarise(done, args.tasks, args.seeds),
        "reused": {f"{j['task']}-seed{j['seed']}": j["reused"] for j in done if j["reused"]},
        "seconds": {
            f"{j['task']}-seed{j['seed']}": j["seconds"] for j in sorted(done, key=lambda j: (j["task"], j["seed"]))
        },
    }
    path = write(args.name, result)
    result_md = markdown({**result, "provenance": __import__("json").loads(path.read_text())["provenance"]})
    path.with_suffix(".md").write_text(result_md)
    print(result_md)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
