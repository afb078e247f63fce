"""The shipped source-only models: small detectors trained on the source style only.

Notebooks 01 and 02 study what a source-only model does on the target domain;
training one takes minutes, so the package ships one per task (a few MB each;
package data read with :mod:`regdakit.resources`, in the repository's
``data_samples/checkpoints/``). Each was produced by exactly
the command in :data:`RETRAIN_COMMANDS`; ``load_source_only(task,
retrain=True)`` runs that recipe again instead of loading the file.

>>> sorted(CHECKPOINTS)
['bodies', 'hands']
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from regdakit import resources
from regdakit.models import PoseResNet

__all__ = ["CHECKPOINTS", "PRESET", "RETRAIN_COMMANDS", "load_source_only", "retrain_config", "source_only_files"]

#: Where the shipped checkpoints live, per task: package data (``samples/checkpoints/`` of
#: :mod:`regdakit.resources`), wherever regdakit is installed.
CHECKPOINTS = {task: resources.path(f"samples/checkpoints/{task}_source_only.pt") for task in ("hands", "bodies")}
#: The training preset of the shipped models (:data:`regdakit.training.PRESETS`).
PRESET = "cpu-bench"
#: The one command that retrains each shipped checkpoint: ``tools/ship_checkpoints.py`` copies its
#: ``last.pt`` (model and config only) and ``metrics.jsonl`` into ``data_samples/checkpoints/``.
RETRAIN_COMMANDS = {
    task: f"python -m regdakit train --task {task} --method erm --preset {PRESET} --seed=0 "
    f"--run_name={task}-source-only"
    for task in CHECKPOINTS
}


def retrain_config(task: str, out: str | os.PathLike = "runs") -> Any:
    """The :class:`regdakit.training.TrainConfig` of :data:`RETRAIN_COMMANDS` ``[task]``."""
    from regdakit.training import make_config

    _check_task(task)
    return make_config(PRESET, task=task, method="erm", seed=0, out=os.fspath(out), run_name=f"{task}-source-only")


def _check_task(task: str) -> None:
    if task not in CHECKPOINTS:
        raise ValueError(f"task must be one of {sorted(CHECKPOINTS)}, got {task!r}")


def source_only_files(
    task: str = "hands", *, retrain: bool = False, out: str | os.PathLike = "runs"
) -> tuple[Path, Path]:
    """``(checkpoint, metrics log)`` of the source-only model of ``task``.

    The shipped files (:data:`CHECKPOINTS` and the training log beside each, ``*.metrics.jsonl``),
    or, with ``retrain=True``, those of a run of :data:`RETRAIN_COMMANDS` in ``<out>/<task>-source-only``
    (trained now if not finished yet: minutes on a CPU).

    Raises:
        ValueError: Unknown task.
        FileNotFoundError: A shipped file is missing (a partial checkout); ``retrain=True`` rebuilds it.
    """
    from regdakit.training import train

    _check_task(task)
    if not retrain:
        path = CHECKPOINTS[task]
        log = path.with_suffix(".metrics.jsonl")
        for needed in (path, log):
            if not needed.is_file():
                raise FileNotFoundError(
                    f"the shipped file {needed} is missing; pass retrain=True or run: {RETRAIN_COMMANDS[task]}"
                )
        return path, log
    cfg = retrain_config(task, out)
    last = cfg.run_dir / "last.pt"
    if not (cfg.run_dir / "final.json").is_file():
        train(cfg, resume=last.is_file())
    return last, cfg.run_dir / "metrics.jsonl"


def load_source_only(
    task: str = "hands", *, retrain: bool = False, out: str | os.PathLike = "runs", device: str = "cpu"
) -> tuple[PoseResNet, Any]:
    """The source-only model of ``task`` in eval mode, and its training config.

    Args:
        task: ``"hands"`` (rendered -> studio) or ``"bodies"`` (synthetic -> lab).
        retrain: Train it again with :data:`RETRAIN_COMMANDS` (see :func:`source_only_files`).
        out: Root folder of the retraining run.
        device: Where the model goes.

    Returns:
        ``(model, config)``: a :class:`PoseResNet` (``model.head(model.features(x))`` gives
        ``(B, K, H/4, W/4)`` logits for images ``(B, 3, H, W)`` in ``[0, 1]``) and its
        :class:`regdakit.training.TrainConfig` (task, domains, image size).

    Raises:
        ValueError: Unknown task.
        FileNotFoundError: The shipped checkpoint is missing (a partial checkout); ``retrain=True`` rebuilds it.
    """
    from regdakit.training import load_checkpoint

    path, _ = source_only_files(task, retrain=retrain, out=out)
    model, cfg, _ = load_checkpoint(path, device)
    return model, cfg
