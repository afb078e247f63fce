"""The shipped detectors: small source-only models, several seeds per task.

Notebooks 01 and 02 study what a source-only model does on the target domain,
and the comparison starts every adaptation from one; training one takes
minutes to half an hour on a CPU, so the package ships them (half-precision
weights, about 1.3 MB each; package data read with :mod:`regdakit.resources`,
in the repository's ``data_samples/checkpoints/``), each with its training
log. Each was produced by exactly the command :func:`retrain_command` gives;
``load_source_only(task, seed=..., retrain=True)`` runs that recipe again
instead of loading the file.

>>> sorted(SEEDS)
['bodies', 'hands']
>>> retrain_command("hands", 1)
'python -m regdakit train --task hands --method erm --preset cpu-bench --seed=1 --run_name=hands-source-only-seed1'
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from regdakit import resources
from regdakit.models import PoseResNet

__all__ = [
    "LEGACY_SEED",
    "LEGACY_SETTINGS",
    "NOT_THE_RECIPE",
    "ORACLE_SEEDS",
    "PRESET",
    "SEEDS",
    "checkpoint_path",
    "load_oracle",
    "load_source_only",
    "oracle_command",
    "oracle_config",
    "oracle_path",
    "recipe_differences",
    "retrain_command",
    "retrain_config",
    "source_only_files",
]

#: The training preset of the shipped models (:data:`regdakit.training.PRESETS`).
PRESET = "cpu-bench"
#: The seeds whose source-only model of this version's recipe ships, per task, the first one the default.
SEEDS: dict[str, tuple[int, ...]] = {"hands": (1, 2, 3, 4, 5), "bodies": (1, 2, 3, 4, 5)}
#: The single model of the first version (sigma 2, 600 iterations: :data:`LEGACY_SETTINGS`), still shipped for
#: the first version's benchmarks; loadable by ``seed=LEGACY_SEED`` but not one of :data:`SEEDS`. Stored in half
#: precision like the others since the second version (the size budget); the first version's tables were computed
#: on its float32 weights, whose heatmap logits differ from these by at most 0.1 % of their range.
LEGACY_SEED = 0
#: The first version's recipe (seed 0 only): :data:`PRESET` as it was then, batch 32, 600 constant-rate iterations
#: at ``sigma`` 2 cells. The bodies model of that version was trained on generator ``synthetic-1.0``,
#: which no command of this version renders (see ``data_samples/README.md``).
LEGACY_SETTINGS = {
    "sigma": "2.0",
    "batch_size": "32",
    "pretrain_iterations": "600",
    "erm.milestones": "",
    "eval_every": "100",
    "checkpoint_every": "200",
    "dann.reversal_iterations": "1000",  # the preset's value then; no effect on a source-only run
}


#: Config fields that cannot change the weights of a source-only or oracle run: where it ran and what it
#: logs, and the sections of the adaptation methods, which a supervised run never reads. Their defaults may
#: change after a model shipped (DANN's trade-off did) without making its recipe another one.
NOT_THE_RECIPE = frozenset(
    {"out", "device", "summary_evals", "log_every", "dist_timeout", "regda", "dan", "dann", "mcd"}
)


def recipe_differences(saved: dict[str, Any], cfg: Any) -> list[str]:
    """The recipe settings in which a run's ``saved`` config differs from ``cfg``, as ``key: saved != cfg``.

    Fields in :data:`NOT_THE_RECIPE` are ignored; an empty list means the run is the recipe of ``cfg``.
    """
    expected = json.loads(json.dumps(dataclasses.asdict(cfg)))
    saved = json.loads(json.dumps(saved))
    return [
        f"{key}: {saved.get(key)!r} != {expected.get(key)!r}"
        for key in sorted(set(saved) | set(expected))
        if key not in NOT_THE_RECIPE and saved.get(key) != expected.get(key)
    ]


def _check(task: str, seed: int | None) -> int:
    if task not in SEEDS:
        raise ValueError(f"task must be one of {sorted(SEEDS)}, got {task!r}")
    if seed is None:
        return SEEDS[task][0]
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    return seed


def checkpoint_path(task: str = "hands", seed: int | None = None) -> Path:
    """Where the shipped source-only model of ``task`` and ``seed`` lives (it need not exist).

    ``seed=None`` is the task's first shipped seed. The training log is the same path with the suffix
    ``.metrics.jsonl``.

    Raises:
        ValueError: Unknown task, or a seed that is not an int >= 0.
    """
    seed = _check(task, seed)
    name = f"{task}_source_only.pt" if seed == 0 else f"{task}_source_only_seed{seed}.pt"
    return resources.path(f"samples/checkpoints/{name}")


def retrain_command(task: str = "hands", seed: int | None = None) -> str:
    """The one command that trains the source-only model of ``task`` and ``seed`` (into ``runs/``)."""
    seed = _check(task, seed)
    legacy = "".join(f" --{key}={value}" for key, value in LEGACY_SETTINGS.items()) if seed == 0 else ""
    return (
        f"python -m regdakit train --task {task} --method erm --preset {PRESET} --seed={seed}{legacy} "
        f"--run_name={_run_name(task, seed)}"
    )


def _run_name(task: str, seed: int) -> str:
    return f"{task}-source-only" if seed == 0 else f"{task}-source-only-seed{seed}"


def retrain_config(task: str = "hands", seed: int | None = None, out: str | os.PathLike = "runs") -> Any:
    """The :class:`regdakit.training.TrainConfig` of :func:`retrain_command`."""
    from regdakit.training import apply_overrides, make_config

    seed = _check(task, seed)
    cfg = make_config(PRESET, task=task, method="erm", seed=seed, out=os.fspath(out), run_name=_run_name(task, seed))
    return apply_overrides(cfg, LEGACY_SETTINGS) if seed == 0 else cfg


def source_only_files(
    task: str = "hands", *, seed: int | None = None, retrain: bool = False, out: str | os.PathLike = "runs"
) -> tuple[Path, Path]:
    """``(checkpoint, metrics log)`` of the source-only model of ``task`` and ``seed``.

    The shipped files (:func:`checkpoint_path` and the training log beside it, ``*.metrics.jsonl``),
    or, with ``retrain=True``, those of a run of :func:`retrain_command` in ``<out>/<run name>``
    (trained now if not finished yet: minutes to half an hour on a CPU; an interrupted run resumes).

    Raises:
        ValueError: Unknown task or bad seed.
        FileNotFoundError: The seed does not ship (the message lists those that do), or a shipped file is
            missing (a partial checkout); ``retrain=True`` trains it.
    """
    from regdakit.training import train

    seed = _check(task, seed)
    if not retrain:
        if seed not in SEEDS[task] and seed != LEGACY_SEED:
            raise FileNotFoundError(
                f"no shipped {task} model of seed {seed} (shipped seeds: {list(SEEDS[task])}, and the first "
                f"version's seed {LEGACY_SEED}); pass retrain=True "
                f"or run: {retrain_command(task, seed)}"
            )
        path = checkpoint_path(task, seed)
        log = path.with_suffix(".metrics.jsonl")
        for needed in (path, log):
            if not needed.is_file():
                raise FileNotFoundError(
                    f"the shipped file {needed} is missing; pass retrain=True or run: {retrain_command(task, seed)}"
                )
        return path, log
    cfg = retrain_config(task, seed, out)
    last = cfg.run_dir / "last.pt"
    if not (cfg.run_dir / "final.json").is_file():
        train(cfg, resume=last.is_file())
    return last, cfg.run_dir / "metrics.jsonl"


def load_source_only(
    task: str = "hands",
    *,
    seed: int | None = None,
    retrain: bool = False,
    out: str | os.PathLike = "runs",
    device: str = "cpu",
) -> tuple[PoseResNet, Any]:
    """The source-only model of ``task`` in eval mode (float32), and its training config.

    Args:
        task: ``"hands"`` (rendered -> studio) or ``"bodies"`` (synthetic -> lab and wild).
        seed: One of :data:`SEEDS` ``[task]``; ``None`` for the first.
        retrain: Train it again with :func:`retrain_command` (see :func:`source_only_files`).
        out: Root folder of the retraining run.
        device: Where the model goes.

    Returns:
        ``(model, config)``: a :class:`PoseResNet` (``model.heatmaps(x)`` gives ``(B, K, H/4, W/4)``
        logits for images ``(B, 3, H, W)`` in ``[0, 1]``) and its :class:`regdakit.training.TrainConfig`
        (task, domains, image size, ``sigma``).

    Raises:
        ValueError: Unknown task or bad seed.
        FileNotFoundError: The seed does not ship, or its file is missing; ``retrain=True`` trains it.
    """
    from regdakit.training import load_checkpoint

    path, _ = source_only_files(task, seed=seed, retrain=retrain, out=out)
    model, cfg, _ = load_checkpoint(path, device)
    return model, cfg


# ------------------------------------------------------------------ oracles

#: The seeds whose oracle ships, per ``(task, target domain)``: the source-only recipe (:data:`PRESET`,
#: ``--method oracle``) trained on the *target's* labels, the upper reference of every comparison.
ORACLE_SEEDS: dict[tuple[str, str], tuple[int, ...]] = {
    ("hands", "studio"): (1, 2, 3),
    ("bodies", "lab"): (1, 2, 3),
    ("bodies", "wild"): (1, 2, 3),
}


def _check_target(task: str, target: str | None) -> str:
    from regdakit.training import TASK_DOMAINS

    _check(task, 1)
    if target is None:
        return TASK_DOMAINS[task][1]
    from regdakit.data.synthetic import DOMAINS

    targets = [d for d in DOMAINS[task] if d != TASK_DOMAINS[task][0]]
    if target not in targets:
        raise ValueError(f"target of task {task!r} must be one of {targets}, got {target!r}")
    return target


def oracle_path(task: str = "hands", target: str | None = None, seed: int = 1) -> Path:
    """Where the shipped oracle of ``task`` on ``target`` (``None``: the task's default) and ``seed`` lives."""
    target, seed = _check_target(task, target), _check(task, seed)
    return resources.path(f"samples/checkpoints/{task}_oracle_{target}_seed{seed}.pt")


def oracle_command(task: str = "hands", target: str | None = None, seed: int = 1) -> str:
    """The one command that trains the oracle of ``task`` on ``target`` and ``seed`` (into ``runs/``)."""
    target, seed = _check_target(task, target), _check(task, seed)
    return (
        f"python -m regdakit train --task {task} --target {target} --method oracle --preset {PRESET} "
        f"--seed={seed} --run_name={task}-{target}-oracle-seed{seed}"
    )


def oracle_config(
    task: str = "hands", target: str | None = None, seed: int = 1, out: str | os.PathLike = "runs"
) -> Any:
    """The :class:`regdakit.training.TrainConfig` of :func:`oracle_command`."""
    from regdakit.training import make_config

    target, seed = _check_target(task, target), _check(task, seed)
    return make_config(
        PRESET, task=task, target=target, method="oracle", seed=seed, out=os.fspath(out),
        run_name=f"{task}-{target}-oracle-seed{seed}",
    )  # fmt: skip


def load_oracle(
    task: str = "hands",
    target: str | None = None,
    *,
    seed: int | None = None,
    retrain: bool = False,
    out: str | os.PathLike = "runs",
    device: str = "cpu",
) -> tuple[PoseResNet, Any]:
    """The oracle of ``task`` on ``target`` in eval mode (float32), and its training config.

    ``seed=None`` is the first of :data:`ORACLE_SEEDS`; ``retrain=True`` runs :func:`oracle_command`
    (resuming an interrupted run) instead of loading a shipped file.

    Raises:
        ValueError: Unknown task or target, or a bad seed.
        FileNotFoundError: No oracle of that seed ships, or its file is missing; ``retrain=True`` trains it.
    """
    from regdakit.training import load_checkpoint, train

    target = _check_target(task, target)
    shipped = ORACLE_SEEDS.get((task, target), ())
    if seed is None:
        if not shipped and not retrain:
            raise FileNotFoundError(f"no oracle of {task} on {target} ships; pass retrain=True and a seed")
        seed = shipped[0] if shipped else 1
    seed = _check(task, seed)
    if retrain:
        cfg = oracle_config(task, target, seed, out)
        if not (cfg.run_dir / "final.json").is_file():
            train(cfg, resume=(cfg.run_dir / "last.pt").is_file())
        path = cfg.run_dir / "last.pt"
    else:
        path = oracle_path(task, target, seed)
        if seed not in shipped or not path.is_file():
            raise FileNotFoundError(
                f"no shipped oracle of {task} on {target} with seed {seed} (shipped seeds: {list(shipped)}); "
                f"pass retrain=True or run: {oracle_command(task, target, seed)}"
            )
    model, cfg, _ = load_checkpoint(path, device)
    return model, cfg
