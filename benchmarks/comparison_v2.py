"""Tables 1 and 2 of the paper on the synthetic tasks, v2: the fair protocol of issue 18.

What changed from ``benchmarks/comparison_benchmark.py`` (v1, kept because the committed v1 tables and
notebook 05 name it as the script that made them):

* **One starting point.** Every adaptation run starts from the *shipped* source-only model of its seed
  (``--init_checkpoint`` = :func:`regdakit.pretrained.checkpoint_path`), as the paper starts from its
  source training; a seed that does not ship is trained first with the shipped models' recipe
  (:func:`regdakit.pretrained.retrain_config`, a ``pretrain`` job).
* **One budget.** ``--adapt_iterations`` for every method (continue-ERM, the control, the baselines,
  RegDA, the target fine-tune); the warm-start and reversal horizons scale with it
  (:func:`budget_config`), evaluations every tenth of it.
* **Rows.** Source only (the shipped model), continue-ERM (``continue``: the same extra iterations of
  plain ERM), the control (RegDA's schedule, game off), DAN, DANN, MCD, DD (bounded adversary), RegDA,
  the target fine-tune (``finetune``: the source-only model trained on target labels for the budget)
  and the oracles (the shipped ones, :func:`regdakit.pretrained.oracle_path`; a reported seed's oracle that
  does not ship is trained last with their recipe, ``--shipped-oracles-only`` leaves it out); Table 2: DD,
  ``f'`` min ``L_F`` / ``psi`` max ``L_F`` and RegDA. ``dd_unbounded`` (the paper's DD row, which diverges) on request.
* **Tuned alike, without target labels.** Every method with a trade-off gets the grid
  :data:`regdakit.tuning.GRID` on a tuning seed that is never reported; :func:`regdakit.tuning.choose`
  keeps the candidates within a margin of the pre-trained source PCK and lets a label-free validator
  decide; the choice per method is recorded.
* **Reported numbers** are the mean of the last ``--last_evals`` evaluations of a run
  (:func:`reported_metrics`), not one snapshot; per row the mean over seeds with a 95 % t-interval,
  paired differences against source only, continue-ERM and the control, the gap closed per seed and
  as a ratio of means against the stronger of the oracle and the fine-tune (both reported), each
  pair's agreement with the paper's order (the paper's numbers labelled by their own benchmark), and
  a flag on any run whose source PCK fell more than 10 points.

Jobs run one thread each in ``--workers`` processes; each writes ``<results>/jobs/<id>.json`` when it
finishes and is skipped when that exists, and an interrupted training run resumes from its ``last.pt``:
the comparison completes across interruptions. Stages: the source-only models that do not ship and
the evaluations; the tuning grid (with the untuned reported rows beside it); the tuned rows' reported
seeds with the chosen trade-offs. Wall time is recorded per invocation and per job.

    python benchmarks/comparison_v2.py --dry-run          # the job list and its estimated CPU time (rates:
                                                          # <results>/rates_<preset>.json, measured if missing)
    python benchmarks/comparison_v2.py                    # everything (resumable)
    python benchmarks/comparison_v2.py --summarise-only   # the tables from the finished jobs

Writes ``<results>/comparison_v2.json`` and ``<results>/comparison_v2.md`` (default
``benchmarks/results/comparison_v2``) of the selected tasks and rows only: after an invocation with a narrower
``--tasks`` or ``--rows`` (it says so when it ends), rerun with ``--summarise-only`` for the whole report.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing as mp
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _record import ROOT, portable, provenance

#: Reported PCK keys, read from the trainer's evaluations.
METRICS = ("pck@0.05/all", "pck@0.1/all")
MAIN = "pck@0.05/all"


@dataclass(frozen=True)
class Row:
    """One row of the tables: the method a run trains (``None``: a shipped model, evaluated only)."""

    label: str
    method: str | None = None
    settings: tuple[tuple[str, Any], ...] = ()
    tuned: bool = False
    core: bool = False  # run on every reported seed (else on --baseline_seeds)


ROWS: dict[str, Row] = {
    "source_only": Row("source only (shipped model)", core=True),
    "continue": Row("continue-ERM (same extra iterations)", "continue", core=True),
    "control": Row("control (RegDA's schedule, game off)", "control", core=True),
    "dan": Row("DAN", "dan", tuned=True),
    "dann": Row("DANN", "dann", tuned=True),
    "mcd": Row("MCD", "mcd", tuned=True),
    "dd": Row("DD, bounded (f' max L_T, psi min L_T)", "dd", tuned=True),
    "dd_unbounded": Row("DD, unbounded KL (the paper's row; diverges)", "dd_unbounded", tuned=True),
    "false_max": Row("f' min L_F, psi max L_F", "regda", (("regda.objective", "false_max"),), tuned=True),
    "regda": Row("RegDA (f' min L_F, psi min L_T)", "regda", tuned=True, core=True),
    "finetune": Row("target fine-tune (target labels)", "finetune", core=True),
    "oracle": Row("oracle (target labels; shipped, or trained with the shipped recipe)", core=True),
}
TABLE1 = ("source_only", "continue", "control", "dan", "dann", "mcd", "dd", "regda", "finetune", "oracle")
TABLE2 = ("dd", "false_max", "regda")
DEFAULT_ROWS = (*TABLE1, "false_max")
#: The rows trained with target labels: the top of the scale, not methods of unsupervised adaptation.
TARGET_LABELLED = ("finetune", "oracle")
#: The rows every method is compared with, seed by seed.
BASELINES = ("source_only", "continue", "control")


@dataclass(frozen=True)
class Job:
    """One unit of work: train (or evaluate) one row on one task and seed; tuning jobs carry their trade-off."""

    stage: str  # "pretrain", "tuning" or "reported"
    task: str
    row: str
    seed: int
    trade_off: float | None = None

    @property
    def id(self) -> str:
        tail = f"-t{self.trade_off:g}" if self.stage == "tuning" and self.trade_off is not None else ""
        return f"{self.stage}-{self.task}-{self.row}-seed{self.seed}{tail}"


# ----------------------------------------------------------------------------- models, configs, numbers


def source_checkpoint(task: str, seed: int, s: Mapping[str, Any]) -> tuple[Path, bool]:
    """``(path, ready)`` of the source-only model of ``task`` and ``seed`` every adaptation starts from.

    The shipped file (or the stand-in of the same name in ``s["checkpoints"]``); else the last checkpoint of
    a run of the shipped recipe under ``s["out"]`` (``ready`` False until a ``pretrain`` job has trained it).
    """
    from regdakit import pretrained

    name = pretrained.checkpoint_path(task, seed).name
    shipped = Path(s["checkpoints"]) / name if s["checkpoints"] else pretrained.checkpoint_path(task, seed)
    if shipped.is_file() and (s["checkpoints"] or seed in pretrained.SEEDS[task]):
        return shipped, True
    run = pretrained.retrain_config(task, seed, out=s["out"]).run_dir
    return run / "last.pt", (run / "final.json").is_file()


def oracle_checkpoint(task: str, seed: int, s: Mapping[str, Any]) -> Path | None:
    """The oracle of ``task`` (its default target) and ``seed``, None when absent.

    The shipped file (or its stand-in in ``s["checkpoints"]``); else, where ``s["train_oracles"]``, the last
    checkpoint of a finished run of the shipped oracles' recipe under ``s["out"]`` (an ``oracles`` job).
    """
    from regdakit import pretrained

    path = pretrained.oracle_path(task, None, seed)
    if s["checkpoints"]:
        path = Path(s["checkpoints"]) / path.name
    elif seed not in pretrained.ORACLE_SEEDS.get((task, _target(task)), ()):
        if not s.get("train_oracles"):
            return None
        run = pretrained.oracle_config(task, None, seed, out=s["out"]).run_dir
        return run / "last.pt" if (run / "final.json").is_file() else None
    return path if path.is_file() else None


def _oracle_ships(task: str, seed: int) -> bool:
    """Whether ``task``'s oracle of ``seed`` (its default target) is one of the shipped ones."""
    from regdakit import pretrained

    return seed in pretrained.ORACLE_SEEDS.get((task, _target(task)), ())


def _target(task: str) -> str:
    from regdakit.training import TASK_DOMAINS

    return TASK_DOMAINS[task][1]


def budget_config(cfg: Any, adapt_iterations: int, evals: int, last_evals: int = 3) -> Any:
    """``cfg`` with the budget: ``adapt_iterations``, ``evals`` evaluations, the last ``last_evals`` reported.

    The warm-start and reversal horizons are left to scale with ``adapt_iterations`` (RegDA's ``N`` = 1/15 of
    it, as the reference's 1000 of 15000; DANN's over the whole run: :func:`regdakit.methods.regda.warmup_horizon`,
    :func:`regdakit.methods.dann.reversal_horizon`); a preset that fixes them is refused. Checkpoints (to
    resume) at every evaluation.
    """
    from regdakit.training import replace_values

    if adapt_iterations < 1 or evals < 1 or not 1 <= last_evals <= evals:
        raise ValueError(
            f"need adapt_iterations >= 1, evals >= 1 and 1 <= last_evals <= evals, got {adapt_iterations}, {evals}, "
            f"{last_evals}"
        )
    if cfg.regda.warmup_iterations is not None or cfg.dann.reversal_iterations is not None:
        raise ValueError("the preset fixes regda.warmup_iterations or dann.reversal_iterations: one budget needs "
                         "them to scale with adapt_iterations (None)")  # fmt: skip
    every = max(1, adapt_iterations // evals)
    return replace_values(cfg, {"adapt_iterations": adapt_iterations, "eval_every": every, "checkpoint_every": every,
                                "summary_evals": last_evals})  # fmt: skip


def run_config(job: Job, s: Mapping[str, Any], trade_off: float | None) -> Any:
    """The :class:`regdakit.training.TrainConfig` of an adaptation job (a ``pretrain`` job: the shipped recipe)."""
    from regdakit import pretrained
    from regdakit.training import make_config, replace_values
    from regdakit.tuning import trade_off_setting

    if job.stage == "pretrain":
        if job.row == "oracle":
            return pretrained.oracle_config(job.task, None, job.seed, out=s["out"])
        return pretrained.retrain_config(job.task, job.seed, out=s["out"])
    row = ROWS[job.row]
    init, ready = source_checkpoint(job.task, job.seed, s)
    cfg = make_config(
        s["preset"],
        task=job.task,
        method=row.method,
        seed=job.seed,
        out=s["out"],
        run_name=job.id,
        device="cpu",
        init_checkpoint=os.fspath(init),
    )
    cfg = budget_config(cfg, s["adapt_iterations"], s["evals"], s["last_evals"])
    values = dict(row.settings)
    if row.tuned:
        if trade_off is None:
            raise ValueError(f"job {job.id}: the tuned row {job.row!r} needs a trade-off")
        values[trade_off_setting(row.method)] = trade_off
    return replace_values(cfg, values)


def reported_metrics(run_dir: Path, last: int) -> dict[str, Any]:
    """The reported numbers of a finished run, in percent: the mean of its last ``last`` evaluations.

    ``final.json``'s ``summary`` (the trainer's mean of the last ``summary_evals`` evaluations) when it has
    one, else the same mean computed from ``metrics.jsonl`` with the trainer's
    :func:`regdakit.training.evaluation.mean_of_last` (the final phase's evaluations).

    Returns:
        ``{"source_val": {metric: %}, "target_test": {...}, "iterations": [...], "last_iteration": {...}}``.

    Raises:
        ValueError: The run has no evaluation.
    """
    from regdakit.training.evaluation import mean_of_last

    final = run_dir / "final.json"
    data = json.loads(final.read_text()) if final.is_file() else {}
    if "summary" in data:
        summary, last_metrics = data["summary"], data["metrics"]
    else:
        log = run_dir / "metrics.jsonl"
        records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()] if log.is_file() else []
        evals = [r for r in records if "eval" in r]
        if not evals:
            raise ValueError(f"{run_dir} has no evaluation (no final.json summary, none in metrics.jsonl)")
        phase = evals[-1]["phase"]
        pairs = [(r["iteration"], r["eval"]) for r in evals if r["phase"] == phase]
        summary = mean_of_last(pairs, last)
        last_metrics = dict(pairs)[max(i for i, _ in pairs)]
    out: dict[str, Any] = {"iterations": summary["iterations"]}
    for split in ("source_val", "target_test"):
        out[split] = {m: round(100 * summary["metrics"][split][m], 3) for m in METRICS}
    out["last_iteration"] = {
        split: {m: round(100 * last_metrics[split][m], 3) for m in METRICS} for split in last_metrics
    }
    return out


# ----------------------------------------------------------------------------- jobs


def result_path(job: Job, s: Mapping[str, Any]) -> Path:
    return Path(s["results"]) / "jobs" / f"{job.id}.json"


def run_job(job: Job, s: Mapping[str, Any], trade_off: float | None = None) -> dict[str, Any]:
    """Run one job (or read its finished result) and write ``<results>/jobs/<id>.json``."""
    import torch

    torch.set_num_threads(1)
    path = result_path(job, s)
    # A pre-training's result says where its model is; the model, not the result, says it is done (the run
    # folder may be lost, e.g. a fresh checkout with the results committed but ``runs/`` not): train it again.
    lost = job.stage == "pretrain" and job.row == "source_only" and not source_checkpoint(job.task, job.seed, s)[1]
    if path.is_file() and not lost:
        done = json.loads(path.read_text())
        if job.stage == "reported" and ROWS[job.row].tuned and done.get("trade_off") != trade_off:
            raise ValueError(
                f"{path} was run with trade-off {done.get('trade_off')}, the tuning now chooses {trade_off}: "
                "delete it (and its run folder) to run it again"
            )
        budget = done.get("settings", {}).get("adapt_iterations")
        if budget is not None and budget != s["adapt_iterations"]:
            raise ValueError(
                f"{path} was run with adapt_iterations={budget}, this invocation {s['adapt_iterations']}: one budget "
                "for every run; use another --results and --out for another budget"
            )
        return done
    wall, cpu = time.perf_counter(), time.process_time()
    if job.stage == "pretrain":
        result = _pretrain(job, s)
    elif ROWS[job.row].method is None:
        result = _evaluate(job, s)
    else:
        result = _adapt(job, s, job.trade_off if job.stage == "tuning" else trade_off)
    result = {"id": job.id, **dataclasses.asdict(job), **result}
    if job.stage == "reported" and ROWS[job.row].tuned:
        result["trade_off"] = trade_off
    result |= {"wall_s": round(time.perf_counter() - wall, 1), "cpu_s": round(time.process_time() - cpu, 1)}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(portable(result), indent=2) + "\n")
    tmp.replace(path)  # a job's result appears whole or not at all
    return result


def _pretrain(job: Job, s: Mapping[str, Any]) -> dict[str, Any]:
    from regdakit import training as T

    cfg = run_config(job, s, None)
    T.train(cfg, resume=True, progress=False)
    return {"checkpoint": os.fspath(cfg.run_dir / "last.pt"), "kind": "pretrain"}


def _eval_config(job: Job, s: Mapping[str, Any]) -> Any:
    from regdakit.training import make_config

    return make_config(s["preset"], task=job.task, method="erm", seed=job.seed, device="cpu")


def _check_geometry(path: Path, saved: Any, cfg: Any) -> None:
    """A model made for other images or Gaussians than the preset's would be evaluated (or adapted) wrongly."""
    for key in ("image_size", "heatmap_size", "sigma", "backbone"):
        if getattr(saved, key) != getattr(cfg, key):
            raise ValueError(
                f"{path} has {key}={getattr(saved, key)!r}, the preset {getattr(cfg, key)!r}: "
                "not a model of this preset"
            )


def _evaluate(job: Job, s: Mapping[str, Any]) -> dict[str, Any]:
    """Source-only or oracle row: one evaluation of the shipped model on the trainer's fixed sets."""
    from regdakit import training as T
    from regdakit.data.synthetic import SKELETONS

    if job.row == "source_only":
        path, ready = source_checkpoint(job.task, job.seed, s)
        if not ready:
            raise FileNotFoundError(f"no source-only model of {job.task} seed {job.seed} at {path}")
    else:
        path = oracle_checkpoint(job.task, job.seed, s)
        if path is None:
            raise FileNotFoundError(f"no oracle of {job.task} seed {job.seed} (shipped or trained)")
    cfg = _eval_config(job, s)
    model, saved, _ = T.load_checkpoint(path, "cpu")
    _check_geometry(path, saved, cfg)
    metrics = {name: T.evaluate(model, data, SKELETONS[job.task]) for name, data in T.make_eval_sets(cfg).items()}
    percent = {split: {m: round(100 * v[m], 3) for m in METRICS} for split, v in metrics.items()}
    return {"kind": "evaluation", "checkpoint": os.fspath(path), **percent}


def _adapt(job: Job, s: Mapping[str, Any], trade_off: float | None) -> dict[str, Any]:
    """Train one adaptation run from the source-only model; its reported numbers and label-free scores."""
    from regdakit import training as T
    from regdakit.data.synthetic import SKELETONS, make_dataset
    from regdakit.methods.dann import reversal_horizon
    from regdakit.methods.regda import warmup_horizon
    from regdakit.tuning import score_model

    cfg = run_config(job, s, trade_off)
    init = Path(cfg.init_checkpoint)
    _, saved, _ = T.load_checkpoint(init, "cpu")
    _check_geometry(init, saved, cfg)
    out = {
        "kind": "adaptation",
        "method": cfg.method,
        "init_checkpoint": os.fspath(init),
        "run_dir": os.fspath(cfg.run_dir),
    }
    try:
        T.train(cfg, resume=True, progress=False)
    except T.NonFiniteLossError as err:  # a result, not a crash: the run is reported as failed, with why
        out["failed"] = str(err)
        return out
    out |= reported_metrics(cfg.run_dir, s["last_evals"])
    # The label-free scores of the final model: labelled *source* validation images, unlabelled *target
    # validation* images (not the test images of the reported PCK). Target labels are never loaded here.
    model, _, _ = T.load_checkpoint(cfg.run_dir / "last.pt", "cpu")
    images = make_dataset(job.task, cfg.target_domain, "val", cfg.image_size, cfg.eval_size, seed=0).tensors()[0]
    data = {
        "source_val": T.make_eval_sets(cfg)["source_val"],
        "target_images": images.split(64),
        "skeleton": SKELETONS[job.task],
    }
    out["label_free"] = score_model(model, data, s["validator"])
    out["settings"] = {
        "adapt_iterations": cfg.adapt_iterations,
        "eval_every": cfg.eval_every,
        "summary_evals": cfg.summary_evals,
        "warm_start_horizon": warmup_horizon(cfg.regda, cfg.adapt_iterations),
        "dann_reversal_horizon": reversal_horizon(cfg.dann, cfg.adapt_iterations),
        **dict(ROWS[job.row].settings),
    }
    if trade_off is not None:
        out["settings"]["trade_off"] = trade_off
    # Snapshots are not used (the reported numbers come from the log, the scores from last.pt): free the disk.
    for snapshot in cfg.run_dir.glob("iter_*.pt"):
        snapshot.unlink()
    return out


def _job_worker(args: tuple[Job, dict[str, Any], float | None]) -> dict[str, Any]:
    return run_job(*args)


# ----------------------------------------------------------------------------- the plan


def plan(
    tasks: Sequence[str],
    seeds: Sequence[int],
    baseline_seeds: Sequence[int],
    tuning_seed: int,
    rows: Sequence[str],
    grid: Sequence[float],
    s: Mapping[str, Any],
) -> tuple[dict[str, list[Job]], list[str]]:
    """The jobs by stage, and what is missing (oracles that neither ship nor are trained).

    Stages, each after the previous one: ``"pretrain"`` (source-only models that do not ship, trained with
    the shipped recipe), ``"tuning"`` (the evaluations of shipped models, the grid on the tuning seed, then
    the untuned rows on the reported seeds), ``"tuned"`` (the tuned rows on the reported seeds, with the
    trade-off the tuning chose), then, where ``s["train_oracles"]``, ``"oracles"`` (the oracles of reported
    seeds that do not ship, trained with the shipped oracles' recipe: last, as nothing before needs them)
    and ``"oracle_eval"`` (their evaluations). :func:`main` runs the tuning-stage jobs that do not start from
    a model being pre-trained beside the pre-training.
    """
    from regdakit.tuning import check_seeds

    check_seeds(tuning_seed, seeds)
    unknown = sorted(set(rows) - set(ROWS))
    if unknown:
        raise ValueError(f"unknown rows {unknown}; known: {list(ROWS)}")
    if not set(baseline_seeds) <= set(seeds):
        raise ValueError(f"--baseline_seeds {list(baseline_seeds)} must be among --seeds {list(seeds)}")
    pretrain, evaluations, tuning, untuned, tuned, missing = [], [], [], [], [], []
    oracles, oracle_eval = [], []
    for task in tasks:
        for seed in (tuning_seed, *seeds):
            if not source_checkpoint(task, seed, s)[1]:
                pretrain.append(Job("pretrain", task, "source_only", seed))
        evaluations.append(Job("tuning", task, "source_only", tuning_seed))  # the pre-trained source PCK of the rule
        for row in rows:
            spec = ROWS[row]
            row_seeds = seeds if spec.core else baseline_seeds
            if row == "oracle":
                # An oracle this comparison trains stays a job of its plan once trained (its result read back),
                # so that the report counts its time and marks it done; only a shipped one is merely evaluated.
                trains = bool(s.get("train_oracles")) and not s["checkpoints"]
                evaluated_only = [seed for seed in row_seeds if _oracle_ships(task, seed) or not trains]
                have = [seed for seed in evaluated_only if oracle_checkpoint(task, seed, s) is not None]
                absent = [seed for seed in row_seeds if seed not in have]
                evaluations += [Job("reported", task, row, seed) for seed in have]
                if s.get("train_oracles") and not s["checkpoints"]:
                    oracles += [Job("pretrain", task, row, seed) for seed in absent]
                    oracle_eval += [Job("reported", task, row, seed) for seed in absent]
                else:
                    missing += [f"oracle of {task} seed {seed}" for seed in absent]
            elif spec.method is None:
                evaluations += [Job("reported", task, row, seed) for seed in row_seeds]
            elif spec.tuned:
                tuning += [Job("tuning", task, row, tuning_seed, t) for t in grid]
                tuned += [Job("reported", task, row, seed) for seed in row_seeds]
            else:
                untuned += [Job("reported", task, row, seed) for seed in row_seeds]
    # The core rows (RegDA) first: an interrupted run then has the comparison the goals are about.
    tuned.sort(key=lambda job: not ROWS[job.row].core)
    # A model that is not there is trained only for jobs still to run: the tuning seed's, once its grid is
    # done, is not needed again (a fresh checkout holds the committed results but not runs/).
    todo = {(j.task, j.seed) for j in evaluations + tuning + untuned + tuned if not result_path(j, s).is_file()}
    pretrain = [j for j in pretrain if (j.task, j.seed) in todo]
    stages = {"pretrain": pretrain, "tuning": evaluations + tuning + untuned, "tuned": tuned}
    if oracles:
        stages |= {"oracles": oracles, "oracle_eval": oracle_eval}
    return stages, missing


def choices(results: Iterable[Mapping[str, Any]], s: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """``{task: {row: tuning.choose report}}`` from the finished tuning jobs (reads no target number)."""
    from regdakit.tuning import choose

    results = list(results)
    out: dict[str, dict[str, Any]] = {}
    for task in sorted({r["task"] for r in results if r["stage"] == "tuning"}):
        pre = [r for r in results if r["stage"] == "tuning" and r["task"] == task and r["row"] == "source_only"]
        if not pre:
            continue
        pretrained = pre[0]["source_val"][MAIN]
        for row in sorted(
            {r["row"] for r in results if r["stage"] == "tuning" and r["task"] == task} - {"source_only"}
        ):
            runs = [r for r in results if r["stage"] == "tuning" and r["task"] == task and r["row"] == row]
            cands = [
                {
                    "trade_off": r["trade_off"],
                    "source_pck": r["source_val"][MAIN],
                    s["validator"]: r["label_free"][s["validator"]],
                }
                for r in runs
                if not r.get("failed")
            ]
            failed = sorted(r["trade_off"] for r in runs if r.get("failed"))
            if not cands:
                out.setdefault(task, {})[row] = {
                    "chosen_trade_off": None,
                    "status": "all_failed",
                    "failed": failed,
                    "note": f"every tuning run failed: {failed}",
                    "kept": [],
                    "candidates": [],
                }
                continue
            choice = choose(cands, pretrained, validator=s["validator"], margin=s["margin"])
            if failed:  # a run that stopped on NaN/Inf is never chosen
                choice["note"] += f"; failed (NaN/Inf, not candidates): {failed}"
            out.setdefault(task, {})[row] = {**choice, "failed": failed}
    return out


# ----------------------------------------------------------------------------- cost


def measure_rates(s: Mapping[str, Any], methods: Iterable[str], iterations: int = 6) -> dict[str, Any]:
    """CPU seconds (one thread, process time) per iteration of each method, and of setting up and evaluating.

    Each method trains from a fresh stand-in source-only model once untimed (its first run in a process pays
    one-time costs: without it, a rate measured from 6 iterations came out negative), then for 2 and
    ``2 + iterations`` iterations (one evaluation at the end): the difference gives the per-iteration rate,
    the rest the fixed cost of a job (evaluation sets, model, one evaluation). ERM is timed as a from-scratch
    run (the ``pretrain`` jobs). Hands only (bodies renders 16 keypoints instead of 21).
    """
    import torch

    from regdakit import training as T
    from regdakit.data.synthetic import SKELETONS

    torch.set_num_threads(1)
    out: dict[str, Any] = {"preset": s["preset"], "threads": 1, "iterations": iterations, "methods": {}}
    with tempfile.TemporaryDirectory() as tmp:
        base = T.make_config(s["preset"], task="hands", method="erm", out=tmp, device="cpu")
        init = Path(tmp) / "init.pt"
        model = T.build_model(base, adversarial=False, seed=0)
        torch.save({"config": dataclasses.asdict(base), "model": model.state_dict()}, init)
        start = time.process_time()
        sets = T.make_eval_sets(base)
        out["eval_sets_s"] = round(time.process_time() - start, 3)
        start = time.process_time()
        for data in sets.values():
            T.evaluate(model, data, SKELETONS["hands"])
        out["evaluation_s"] = round(time.process_time() - start, 3)
        for method in methods:
            times = []
            for k in (1, 2, 2 + iterations):  # the first, untimed: a warm-up
                name = f"{method}-{k}"
                if method == "erm":
                    cfg = dataclasses.replace(
                        base, pretrain_iterations=k, eval_every=k, checkpoint_every=k, run_name=name
                    )
                else:
                    cfg = budget_config(
                        dataclasses.replace(base, method=method, init_checkpoint=os.fspath(init), run_name=name),
                        k,
                        1,
                        1,
                    )
                start = time.process_time()
                T.train(cfg, progress=False)
                times.append(time.process_time() - start)
            rate = (times[2] - times[1]) / iterations
            out["methods"][method] = {"iteration_s": round(rate, 4), "fixed_s": round(times[1] - 2 * rate, 2)}
            if rate <= 0:
                raise RuntimeError(f"measured a rate <= 0 for {method} ({times}): measure with more iterations")
    return out


def estimate(jobs: Mapping[str, list[Job]], rates: Mapping[str, Any], s: Mapping[str, Any]) -> dict[str, Any]:
    """Estimated CPU seconds of each job and in all, from :func:`measure_rates`'s numbers."""
    from regdakit import pretrained

    m = rates["methods"]
    eval_s = rates["evaluation_s"]
    fallbacks = {}

    def method_rate(method: str) -> Mapping[str, float]:
        if method in m:
            return m[method]
        fallbacks[method] = "erm"  # not measured (e.g. not in this checkout): ERM's rate, a plain step
        return m["erm"]

    per_job, per_stage = {}, {}
    for stage, stage_jobs in jobs.items():
        for job in stage_jobs:
            if job.stage == "pretrain":
                cfg = (pretrained.oracle_config(job.task, None, job.seed) if job.row == "oracle"
                       else pretrained.retrain_config(job.task, job.seed))  # fmt: skip
                r = method_rate("erm")
                cost = r["fixed_s"] + cfg.pretrain_iterations * r["iteration_s"]
                cost += (cfg.pretrain_iterations // cfg.eval_every - 1) * eval_s
            elif ROWS[job.row].method is None:
                cost = rates["eval_sets_s"] + eval_s
            else:
                r = method_rate(ROWS[job.row].method)
                # Fixed (with one evaluation) + the budget + the other evaluations + the label-free scores.
                cost = r["fixed_s"] + s["adapt_iterations"] * r["iteration_s"] + s["evals"] * eval_s
            per_job[job.id] = round(cost, 1)
            per_stage[stage] = per_stage.get(stage, 0.0) + cost
    total = sum(per_job.values())
    return {
        "per_job_s": per_job,
        "per_stage_cpu_hours": {k: round(v / 3600, 2) for k, v in per_stage.items()},
        "total_cpu_hours": round(total / 3600, 2),
        "fallback_rates": fallbacks,
    }


def largest_budget(jobs: Mapping[str, list[Job]], rates: Mapping[str, Any], s: Mapping[str, Any], hours: float) -> int:
    """The largest ``adapt_iterations`` (a multiple of 100) whose estimate fits ``hours`` of ``s["workers"]`` cores.

    The ``oracles`` stage is not counted: like the shipped models, the oracles are trained with the recipe
    (they cost the same at any budget), and a comparison whose oracles all ship has none.
    """
    best = 0
    jobs = {stage: stage_jobs for stage, stage_jobs in jobs.items() if stage != "oracles"}
    for n in range(100, 100001, 100):
        if estimate(jobs, rates, {**s, "adapt_iterations": n})["total_cpu_hours"] > hours * s["workers"]:
            break
        best = n
    return best


# ----------------------------------------------------------------------------- the tables


def tuning_audit(results: Iterable[Mapping[str, Any]], tuning: Mapping[str, Any]) -> dict[str, Any]:
    """How good each label-free choice was, judged with the tuning seed's target labels, after the choice.

    The trainer evaluates every run on the target test set; :func:`choices` never reads those numbers. Here
    they grade it: among the trade-offs the source margin kept, which one the target labels would have picked
    and how many target points the label-free choice gave up against it (0 when they agree).

    Returns:
        ``{"source_only": target PCK of the tuning seed's source-only model (None if absent), "rows": {row:
        {"target_by_trade_off": {trade-off: PCK}, "chosen", "label_pick", "points_lost"}}}``; rows without a
        chosen trade-off are left out.
    """
    by_trade_off: dict[str, dict[float, float]] = {}
    source_only = None
    for r in results:
        if r["stage"] != "tuning" or r.get("failed"):
            continue
        if r["row"] == "source_only":
            source_only = r["target_test"][MAIN]
        elif r.get("trade_off") is not None:
            by_trade_off.setdefault(r["row"], {})[r["trade_off"]] = r["target_test"][MAIN]
    rows = {}
    for row, c in tuning.items():
        if c.get("chosen_trade_off") is None or row not in by_trade_off:
            continue
        target = by_trade_off[row]
        kept = [t for t in c["kept"] if t in target]
        pick = max(kept, key=lambda t: (target[t], -t))  # ties to the smaller trade-off, as the choice
        rows[row] = {
            "target_by_trade_off": {str(t): target[t] for t in sorted(target)},
            "chosen": c["chosen_trade_off"],
            "label_pick": pick,
            "points_lost": round(target[pick] - target[c["chosen_trade_off"]], 3),
        }
    return {"source_only": source_only, "rows": rows}


def summarise(results: Sequence[Mapping[str, Any]], rows: Sequence[str], s: Mapping[str, Any]) -> dict[str, Any]:
    """Per task: the tuning, each row's numbers over seeds, paired differences, gap closed, the paper's order."""
    from regdakit import comparison
    from regdakit.stats import paired_differences, summary
    from regdakit.tuning import FLAG_DROP, source_drop_flag

    tuning = choices(results, s)
    tasks = {}
    for task in sorted({r["task"] for r in results if r["stage"] == "reported"}):
        reported = [r for r in results if r["stage"] == "reported" and r["task"] == task]
        pretrained = {r["seed"]: r["source_val"][MAIN] for r in reported if r["row"] == "source_only"}
        per_row: dict[str, dict[int, float]] = {}
        table: dict[str, Any] = {}
        flags, failed = [], {}
        for row in rows:
            runs = sorted((r for r in reported if r["row"] == row), key=lambda r: r["seed"])
            failed.update({f"{row} seed {r['seed']}": r["failed"] for r in runs if r.get("failed")})
            runs = [r for r in runs if not r.get("failed")]
            if not runs:
                continue
            per_row[row] = {r["seed"]: r["target_test"][MAIN] for r in runs}
            entry = {
                "label": ROWS[row].label,
                "seeds": [r["seed"] for r in runs],
                "target": {m: summary([r["target_test"][m] for r in runs]) for m in METRICS},
                "source": summary([r["source_val"][MAIN] for r in runs]),
            }
            if ROWS[row].tuned:
                entry["trade_off"] = sorted({r.get("trade_off") for r in runs})
            if ROWS[row].method is not None:
                entry["wall_s"] = round(sum(r["wall_s"] for r in runs), 1)
                for r in runs:
                    if r["seed"] in pretrained and source_drop_flag(r["source_val"][MAIN], pretrained[r["seed"]]):
                        drop = round(pretrained[r["seed"]] - r["source_val"][MAIN], 1)
                        flags.append({"row": row, "seed": r["seed"], "source_drop_points": drop})
            table[row] = entry
        for row in table:
            table[row]["minus"] = {}
            for base in BASELINES:
                if base != row and base in per_row:
                    try:
                        table[row]["minus"][base] = paired_differences(per_row[row], per_row[base], digits=3)
                    except ValueError:
                        pass
        benchmark = comparison.PAPER_BENCHMARK_OF.get((task, _target(task)))
        orders = {}
        for name in dict.fromkeys([benchmark, "RHD -> H3D"]):  # the task's own benchmark, and Table 1's
            if name is not None:
                paper = comparison.PAPER_BENCHMARKS[name]
                orders[name] = comparison.ordering_agreement(per_row, paper, [r for r in rows if r in per_row])
        tasks[task] = {
            "target": _target(task),
            "paper_benchmark": benchmark,
            "rows": table,
            "gap_closed": comparison.gap_report(per_row, [r for r in rows if r in per_row]),
            "ordering": orders,
            "flags": {"limit_points": FLAG_DROP, "runs": flags},
            "failed": failed,
            "tuning": tuning.get(task, {}),
            "tuning_audit": tuning_audit((r for r in results if r["task"] == task), tuning.get(task, {})),
        }
        tasks[task]["goals"] = goals(tasks[task])
    return {"tasks": tasks}


def goals(t: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Issue 18's goals for one task, each with the number it is judged on (``met`` None: not measured).

    RegDA above the control and above continue-ERM with the 95 % interval of the paired difference
    excluding 0; the gap closed (ratio of means, against the stronger reference) at least 0.30 (the issue
    asks it on hands); no run of a method without target labels whose source PCK fell more than the flag's
    limit. The rows trained on target labels (:data:`TARGET_LABELLED`) are flagged in the tables but not
    counted here: they train on the target and nothing else, so forgetting the source is what they do.
    """
    regda = t["rows"].get("regda", {})
    out = {}
    for base in ("control", "continue"):
        diff = regda.get("minus", {}).get(base, {})
        ci = diff.get("ci95")
        out[f"regda_above_{base}"] = {"value": ci, "met": None if ci is None else ci[0] > 0}
    gap = t["gap_closed"]["rows"].get("regda", {}).get(t["gap_closed"]["reference"] or "")
    ratio = gap["ratio_of_means"] if gap else None
    out["gap_closed_at_least_0.30"] = {"value": ratio, "met": None if ratio is None else ratio >= 0.30}
    flagged = [f"{f['row']} seed {f['seed']}" for f in t["flags"]["runs"] if f["row"] not in TARGET_LABELLED]
    out["no_source_collapse"] = {"value": flagged, "met": not flagged}
    return out


def _ci(stat: Mapping[str, Any], digits: int = 1) -> str:
    from regdakit.stats import format_interval

    return format_interval(stat, digits, show_n=True)


def markdown(result: Mapping[str, Any]) -> str:
    """The tables as Markdown: per task Table 1, Table 2, gap closed, the paper's order, tuning, flags."""
    from regdakit import comparison

    prov, info = result["provenance"], result["settings"]
    lines = [
        "# Tables 1 and 2 on the synthetic tasks, v2 protocol (issue 18)",
        "",
        f"Command: `{prov['command']}`  ",
        f"Commit {prov['commit'][:10]}, {prov['device']}, torch {prov['torch']}. Preset `{info['preset']}`, "
        f"adaptation budget {info['adapt_iterations']} iterations for every method, reported number = mean of the "
        f"last {info['last_evals']} of {info['evals']} evaluations; seeds {info['seeds']} "
        f"(baselines {info['baseline_seeds']}), tuning seed {info['tuning_seed']} (never reported). "
        f"Wall time {result['wall_hours']} h over {len(result['invocations'])} invocation(s), "
        f"{result['job_cpu_hours']} CPU hours in jobs.",
        "",
        *(
            [
                f"**Partial: {result['jobs_done']} of {result['jobs_planned']} jobs done.** The run resumes where it "
                "stopped; rows and seeds missing below are still to run, and no conclusion should be drawn yet.",
                "",
            ]
            if result.get("jobs_done", 0) < result.get("jobs_planned", 0)
            else []
        ),
        "Target test PCK (%): mean [95 % t-interval] (n seeds). Differences are paired by seed. The paper's "
        "numbers are from a different, real benchmark (named in each column): compare orders, not values.",
        "",
    ]
    for task, t in result["tasks"].items():
        bench = t["paper_benchmark"]
        paper = comparison.PAPER_BENCHMARKS.get(bench, {})
        rhd = comparison.PAPER_BENCHMARKS["RHD -> H3D"]
        for title, rows in (("Table 1", TABLE1), ("Table 2", TABLE2)):
            have = [r for r in rows if r in t["rows"]]
            if not have:
                continue
            lines += [f"## {task} (target {t['target']}): {title}", ""]
            head = "| row | PCK@0.05 | PCK@0.1 | source PCK@0.05 | − source only | − continue-ERM | − control |"
            head += f" paper, {bench} |" + (" paper, RHD -> H3D |" if bench != "RHD -> H3D" else "")
            lines += [head, "|---" * (head.count("|") - 1) + "|"]
            for row in have:
                e = t["rows"][row]
                minus = [_ci(e["minus"][b]) if b in e["minus"] else "" for b in BASELINES]
                name = row  # the paper's DD is the unbounded one; ours is bounded, as its label says
                cells = [
                    e["label"],
                    _ci(e["target"][MAIN]),
                    _ci(e["target"]["pck@0.1/all"]),
                    _ci(e["source"]),
                    *minus,
                    str(paper.get(name, "")),
                ]
                if bench != "RHD -> H3D":
                    cells.append(str(rhd.get(name, "")))
                lines.append("| " + " | ".join(cells) + " |")
            lines.append("")
        gap = t["gap_closed"]
        if gap["rows"]:
            lines += [
                f"### {task}: gap closed (0 = source only, 1 = reference)",
                "",
                f"Reference: the stronger of the oracle and the target fine-tune, here **{gap['reference']}** "
                f"(mean target PCK {gap['means']}). Per seed: mean [95 % interval]; and the ratio of means.",
                "",
                "| row | " + " | ".join(f"vs {ref} per seed | vs {ref} ratio of means" for ref in gap["means"]) + " |",
                "|---" * (1 + 2 * len(gap["means"])) + "|",
            ]
            for row, by_ref in gap["rows"].items():
                cells = []
                for ref in gap["means"]:
                    g = by_ref.get(ref)
                    cells += [_ci(g["summary"], 2), f"{g['ratio_of_means']:.2f}"] if g else ["", ""]
                lines.append(f"| {ROWS[row].label} | " + " | ".join(cells) + " |")
            lines.append("")
        for name, pairs in t["ordering"].items():
            if not pairs:
                continue
            agree = sum(p["verdict"] == "agrees" for p in pairs)
            lines += [
                f"### {task}: the paper's order ({name}), pair by pair",
                "",
                f"{agree} of {len(pairs)} pairs agree with the 95 % interval excluding 0.",
                "",
                "| paper: higher > lower | paper | measured difference | verdict |",
                "|---|---|---|---|",
            ]
            for p in pairs:
                hi, lo = p["pair"]
                lines.append(
                    f"| {hi} > {lo} | {p['paper'][0]} > {p['paper'][1]} | {_ci(p['difference'])} | {p['verdict']} |"
                )
            lines.append("")
        if t["tuning"]:
            lines += [
                f"### {task}: tuning (seed {info['tuning_seed']}, never reported)",
                "",
                f"Rule: keep the trade-offs whose source-validation PCK@0.05 is within {info['margin']} points "
                f"of the pre-trained model, then `{info['validator']}` decides (label-free); ties to the "
                "smallest trade-off.",
                "",
                "| row | trade-off: source PCK (points lost) | kept | chosen | status |",
                "|---|---|---|---|---|",
            ]
            for row, c in t["tuning"].items():
                if c["chosen_trade_off"] is None:
                    lines.append(f"| {ROWS[row].label} | | [] | none | {c['note']} |")
                    continue
                cands = ", ".join(
                    f"{x['trade_off']:g}: {x['source_pck']:.1f} ({x['source_drop']:+.1f})" for x in c["candidates"]
                )
                note = c["note"]
                grid = info.get("grid") or []
                if len(c["candidates"]) < len(grid):  # a partial report: the rest of the grid is still to run
                    note = f"**provisional: {len(c['candidates'])} of {len(grid)} trade-offs run**; {note}"
                lines.append(f"| {ROWS[row].label} | {cands} | {c['kept']} | {c['chosen_trade_off']:g} | {note} |")
            lines.append("")
        audit = t.get("tuning_audit", {})
        if audit.get("rows"):
            before = audit["source_only"]
            lines += [
                f"### {task}: the tuning graded with target labels (after the choice; the choice never reads them)",
                "",
                f"The source-only model of the tuning seed: {'not run' if before is None else f'{before:.1f}'}.",
                "",
                "| row | trade-off: target PCK@0.05 on the tuning seed | chosen | target labels' pick among kept "
                "| points given up |",
                "|---|---|---|---|---|",
            ]
            for row, a in audit["rows"].items():
                cells = ", ".join(f"{float(k):g}: {v:.1f}" for k, v in a["target_by_trade_off"].items())
                lines.append(
                    f"| {ROWS[row].label} | {cells} | {a['chosen']:g} | {a['label_pick']:g} | {a['points_lost']:.1f} |"
                )
            lines.append("")
        if t["failed"]:
            lines += [
                "Failed runs (NaN/Inf; left out of the rows): "
                + "; ".join(f"{k}: {v}" for k, v in t["failed"].items()),
                "",
            ]
        lines += [f"### {task}: the issue's goals", ""]
        for name, g in t["goals"].items():
            verdict = {True: "met", False: "not met", None: "not measured"}[g["met"]]
            lines.append(f"- {name}: {verdict} ({g['value']})")
        lines.append("")
        flagged = t["flags"]["runs"]
        lines += [
            f"Runs whose source PCK fell more than {t['flags']['limit_points']:g} points: "
            + (", ".join(f"{f['row']} seed {f['seed']} ({f['source_drop_points']})" for f in flagged) or "none"),
            "",
        ]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- main


def _run_stage(
    jobs: Sequence[tuple[Job, dict, float | None]],
    workers: int,
    start: float,
    on_result: Callable[[], None] = lambda: None,
) -> list[dict[str, Any]]:
    done = []
    if workers == 0:  # in this process (tests, debugging)
        results: Iterable[dict] = map(_job_worker, jobs)
        pool = None
    else:
        pool = mp.get_context("spawn").Pool(workers)
        results = pool.imap_unordered(_job_worker, jobs)
    try:
        for i, result in enumerate(results, 1):
            done.append(result)
            print(
                f"[{(time.perf_counter() - start) / 60:6.1f} min] {i}/{len(jobs)} {result['id']} "
                f"({result.get('wall_s', 0) / 60:.1f} min)",
                flush=True,
            )
            on_result()
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    return done


def _finished(s: Mapping[str, Any]) -> list[dict[str, Any]]:
    folder = Path(s["results"]) / "jobs"
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))] if folder.is_dir() else []


def _missing_methods(rows: Sequence[str]) -> list[str]:
    from regdakit.training.config import run_methods

    return [r for r in rows if ROWS[r].method is not None and ROWS[r].method not in run_methods()]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--tasks", nargs="+", default=["hands", "bodies"], choices=["hands", "bodies"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3, 4, 5], help="reported seeds")
    parser.add_argument(
        "--baseline_seeds",
        nargs="+",
        type=int,
        default=None,
        help="seeds of the rows that are not core (DAN, DANN, MCD, DD, false_max); default the first 3",
    )
    parser.add_argument("--tuning_seed", type=int, default=6, help="the seed of the grid, never reported")
    parser.add_argument("--rows", nargs="+", default=list(DEFAULT_ROWS), choices=list(ROWS))
    parser.add_argument("--grid", nargs="+", type=float, default=None, help="trade-offs (default regdakit.tuning.GRID)")
    parser.add_argument("--validator", default="neg_entropy", help="label-free validator deciding the tuning")
    parser.add_argument("--margin", type=float, default=None, help="source PCK points (default tuning.SOURCE_MARGIN)")
    parser.add_argument("--preset", default="cpu-bench")
    # 800: the largest multiple of 100 whose estimate fits 6 wall hours on 2 one-thread workers, from the rates
    # of benchmarks/results/comparison_v2/rates_cpu-bench.json, once the source-only models of seeds 1-5 ship
    # (118 adaptation runs and the tuning seed's two source-only models: about 10.9 CPU hours).
    parser.add_argument("--adapt_iterations", type=int, default=800, help="the adaptation budget of every method")
    parser.add_argument("--evals", type=int, default=10, help="evaluations per run (every adapt_iterations / evals)")
    parser.add_argument("--last_evals", type=int, default=3, help="the reported number: mean of the last this many")
    parser.add_argument("--workers", type=int, default=2, help="one-thread worker processes (0: in this process)")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "comparison_v2", help="run folders")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results" / "comparison_v2")
    parser.add_argument(
        "--checkpoints",
        type=Path,
        default=None,
        help="a folder of stand-in source-only and oracle models named as the shipped ones (tests)",
    )
    parser.add_argument(
        "--shipped-oracles-only",
        dest="train_oracles",
        action="store_false",
        help="report only the oracles that ship (default: train the reported seeds' others, last)",
    )
    parser.add_argument(
        "--dry-run", dest="dry_run", action="store_true", help="print the jobs and their cost; train nothing"
    )
    parser.add_argument(
        "--rates",
        type=Path,
        default=None,
        help="measured rates (JSON): read when the file exists, else measured now and written there; "
        "default <results>/rates_<preset>.json",
    )
    parser.add_argument("--measure_iterations", type=int, default=12, help="iterations per method to time")
    parser.add_argument("--budget_hours", type=float, default=6.0, help="wall hours on --workers cores, for --dry-run")
    parser.add_argument(
        "--summarise-only", dest="summarise_only", action="store_true", help="tables from finished jobs"
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    from regdakit import tuning

    if not 1 <= args.last_evals <= args.evals:
        parser.error(f"--last_evals must be in [1, --evals={args.evals}], got {args.last_evals}")
    if args.workers < 0:
        parser.error("--workers must be >= 0")
    baseline_seeds = args.baseline_seeds if args.baseline_seeds is not None else args.seeds[:3]
    s = {
        "preset": args.preset,
        "adapt_iterations": args.adapt_iterations,
        "evals": args.evals,
        "last_evals": args.last_evals,
        "out": os.fspath(args.out.resolve()),
        "results": os.fspath(args.results.resolve()),
        "checkpoints": os.fspath(args.checkpoints.resolve()) if args.checkpoints else None,
        "validator": args.validator,
        "margin": tuning.SOURCE_MARGIN if args.margin is None else args.margin,
        "workers": args.workers,
        "train_oracles": args.train_oracles,
    }
    grid = tuple(args.grid) if args.grid else tuning.GRID
    try:
        jobs, absent = plan(args.tasks, args.seeds, baseline_seeds, args.tuning_seed, args.rows, grid, s)
    except ValueError as err:
        parser.error(str(err))
    if absent:
        print(f"not available, left out: {', '.join(absent)}", flush=True)
    missing = _missing_methods(args.rows)
    if args.dry_run:
        _dry_run(jobs, s, args, missing)
        return
    if missing and not args.summarise_only:
        parser.error(
            f"the rows {missing} need methods this checkout lacks ({[ROWS[r].method for r in missing]}): "
            "leave them out with --rows"
        )
    ledger = args.results / "invocations.json"
    invocations = json.loads(ledger.read_text()) if ledger.is_file() else []
    start = time.perf_counter()
    if not args.summarise_only:
        args.results.mkdir(parents=True, exist_ok=True)
        this = {"date": provenance()["date"], "wall_s": 0.0, "workers": args.workers}

        def record_wall() -> None:
            # After every job (finished or read back), so that an interrupted or failed invocation still
            # counts the time it took.
            if not invocations or invocations[-1] is not this:
                invocations.append(this)
            this["wall_s"] = round(time.perf_counter() - start, 1)
            ledger.write_text(json.dumps(invocations, indent=2) + "\n")

        # The pre-trainings (longest first) share a pool with every tuning-stage job that does not start from
        # their models, so that no worker waits for them idle; the jobs that do start from them come after.
        waiting = {(j.task, j.seed) for j in jobs["pretrain"]}
        first = jobs["pretrain"] + [j for j in jobs["tuning"] if (j.task, j.seed) not in waiting]
        _run_stage([(j, s, None) for j in first], args.workers, start, record_wall)
        then = [j for j in jobs["tuning"] if (j.task, j.seed) in waiting]
        _run_stage([(j, s, None) for j in then], args.workers, start, record_wall)
        chosen = choices(_finished(s), s)
        stage = []
        for j in jobs["tuned"]:
            trade_off = chosen.get(j.task, {}).get(j.row, {}).get("chosen_trade_off")
            if trade_off is None:
                print(f"no trade-off chosen for {j.task} {j.row} (its tuning failed or did not run): {j.id} left out")
                continue
            stage.append((j, s, trade_off))
        _run_stage(stage, args.workers, start, record_wall)
        for name in ("oracles", "oracle_eval"):
            _run_stage([(j, s, None) for j in jobs.get(name, [])], args.workers, start, record_wall)
        record_wall()
    wanted = {j.id for stage in jobs.values() for j in stage}
    results = [r for r in _finished(s) if r["id"] in wanted]
    summary = summarise(results, args.rows, s)
    result = {
        "provenance": provenance(),
        "settings": {
            **{k: v for k, v in s.items() if k not in ("out", "results", "checkpoints")},
            "seeds": args.seeds,
            "baseline_seeds": baseline_seeds,
            "tuning_seed": args.tuning_seed,
            "grid": list(grid),
            "rows": args.rows,
            "stand_in_checkpoints": bool(args.checkpoints),
        },
        "invocations": invocations,
        "wall_hours": round(sum(i["wall_s"] for i in invocations) / 3600, 2),
        "job_cpu_hours": round(sum(r.get("cpu_s", 0) for r in results) / 3600, 2),
        "jobs_done": len(results),
        "jobs_planned": len(wanted),
        "not_available": absent,
        **summary,
    }
    result = portable(result)
    (args.results / "comparison_v2.json").write_text(json.dumps(result, indent=2) + "\n")
    text = markdown(result)
    (args.results / "comparison_v2.md").write_text(text + "\n")
    print(text)
    print(f"wrote {portable(os.fspath(args.results / 'comparison_v2.json'))} and comparison_v2.md")
    narrower = narrower_than_default(args.tasks, args.rows, parser.get_default("tasks"))
    if narrower:
        print(
            f"this report covers only {narrower}: rerun with --summarise-only (no --tasks, --rows) for the whole plan"
        )


def narrower_than_default(tasks: Sequence[str], rows: Sequence[str], default_tasks: Sequence[str]) -> str:
    """What a selection leaves out of the default plan, in words (empty when it leaves nothing out)."""
    left_out = [f"--tasks {' '.join(tasks)}"] if set(default_tasks) - set(tasks) else []
    left_out += (
        [f"--rows without {' '.join(r for r in DEFAULT_ROWS if r not in rows)}"]
        if set(DEFAULT_ROWS) - set(rows)
        else []
    )
    return ", ".join(left_out)


def _dry_run(jobs: Mapping[str, list[Job]], s: Mapping[str, Any], args: argparse.Namespace, missing: list[str]) -> None:
    from regdakit.training.config import run_methods

    if args.rates is None:
        args.rates = args.results / f"rates_{args.preset}.json"
    if args.rates.is_file():
        rates = json.loads(args.rates.read_text())
        where = f"read from {portable(os.fspath(args.rates))}"
    else:
        methods = sorted({"erm"} | {ROWS[r].method for r in args.rows if ROWS[r].method in run_methods()})
        print(f"measuring {methods} at one thread ({args.measure_iterations} iterations each) ...", flush=True)
        rates = measure_rates(s, methods, args.measure_iterations)
        rates["provenance"] = provenance()
        args.rates.parent.mkdir(parents=True, exist_ok=True)
        args.rates.write_text(json.dumps(portable(rates), indent=2) + "\n")
        where = f"measured now, written to {portable(os.fspath(args.rates))}"
    est = estimate(jobs, rates, s)
    for stage, stage_jobs in jobs.items():
        print(f"\nstage {stage}: {len(stage_jobs)} jobs")
        for job in stage_jobs:
            done = " (done)" if result_path(job, s).is_file() else ""
            print(f"  {job.id:48s} {est['per_job_s'][job.id] / 60:7.1f} CPU min{done}")
    n = sum(len(v) for v in jobs.values())
    print(f"\n{n} jobs; rates {where} (preset {rates['preset']}, CPU seconds per iteration at one thread):")
    for method, r in rates["methods"].items():
        print(f"  {method:14s} {r['iteration_s']:.3f} s/iteration, {r['fixed_s']:.1f} s fixed per job")
    print(
        f"  evaluation (source val + target test) {rates['evaluation_s']:.1f} s, "
        f"evaluation sets {rates['eval_sets_s']:.1f} s"
    )
    if est["fallback_rates"]:
        print(f"  not measured, ERM's rate used: {sorted(est['fallback_rates'])}")
    if missing:
        print(f"  rows whose method this checkout lacks (a real run refuses them): {missing}")
    print(f"CPU hours by stage: {est['per_stage_cpu_hours']}")
    hours = est["total_cpu_hours"]
    print(
        f"estimated {hours} CPU hours at adapt_iterations={s['adapt_iterations']}: about "
        f"{hours / max(1, s['workers']):.1f} wall hours on {max(1, s['workers'])} one-thread workers"
    )
    best = largest_budget(jobs, rates, {**s, "workers": max(1, s["workers"])}, args.budget_hours)
    print(f"the largest adapt_iterations (multiple of 100) within {args.budget_hours:g} wall hours: {best or 'none'}")


if __name__ == "__main__":
    main()
