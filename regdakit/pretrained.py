"""The shipped source-only models: small detectors trained on the source style only.

Notebooks 01 and 02 study what a source-only model does on the target domain;
training one takes minutes, so the repository ships one per task in
``data_samples/checkpoints/`` (a few MB each). Each was produced by exactly
the command in :data:`RETRAIN_COMMANDS`; ``load_source_only(task,
retrain=True)`` runs that recipe again instead of loading the file.

>>> sorted(CHECKPOINTS)
['bodies', 'hands']
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from regdakit.models import PoseResNet

__all__ = ["CHECKPOINTS", "PRESET", "RETRAIN_COMMANDS", "load_source_only", "retrain_config"]

_ROOT = Path(__file__).resolve().parent.parent
#: Where the shipped checkpoints live, per task.
CHECKPOINTS = {task: _ROOT / "data_samples" / "checkpoints" / f"{task}_source_only.pt" for task in ("hands", "bodies")}
#: The training preset of the shipped models (:data:`regdakit.train.PRESETS`).
PRESET = "cpu-bench"
#: The one command that retrains each shipped checkpoint (then copy ``model.pt`` over the shipped file).
RETRAIN_COMMANDS = {
    task: f"python -m regdakit train --task {task} --method erm --preset {PRESET} --seed=0 "
    f"--run_name={task}-source-only"
    for task in CHECKPOINTS
}


def retrain_config(task: str, out: str | os.PathLike = "runs") -> Any:
    """The :class:`regdakit.train.TrainConfig` of :data:`RETRAIN_COMMANDS` ``[task]``."""
    from regdakit.train import make_config

    _check_task(task)
    return make_config(PRESET, task=task, method="erm", seed=0, out=os.fspath(out), run_name=f"{task}-source-only")


def _check_task(task: str) -> None:
    if task not in CHECKPOINTS:
        raise ValueError(f"task must be one of {sorted(CHECKPOINTS)}, got {task!r}")


def load_source_only(
    task: str = "hands", *, retrain: bool = False, out: str | os.PathLike = "runs", device: str = "cpu"
) -> tuple[PoseResNet, Any]:
    """The source-only model of ``task`` in eval mode, and its training config.

    Args:
        task: ``"hands"`` (rendered -> studio) or ``"bodies"`` (synthetic -> lab).
        retrain: Train it again with :data:`RETRAIN_COMMANDS` (minutes on a CPU; the run goes to
            ``<out>/<task>-source-only``, and an existing finished run there is reused).
        out: Root folder of the retraining run.
        device: Where the model goes.

    Returns:
        ``(model, config)``: a :class:`PoseResNet` (``model.head(model.features(x))`` gives
        ``(B, K, H/4, W/4)`` logits for images ``(B, 3, H, W)`` in ``[0, 1]``) and its
        :class:`regdakit.train.TrainConfig` (task, domains, image size).

    Raises:
        ValueError: Unknown task.
        FileNotFoundError: The shipped checkpoint is missing (a partial checkout); ``retrain=True`` rebuilds it.
    """
    from regdakit.train import load_checkpoint, train

    _check_task(task)
    if not retrain:
        path = CHECKPOINTS[task]
        if not path.is_file():
            raise FileNotFoundError(
                f"the shipped {task} checkpoint {path} is missing; pass retrain=True or run: {RETRAIN_COMMANDS[task]}"
            )
        model, cfg, _ = load_checkpoint(path, device)
        return model, cfg
    cfg = retrain_config(task, out)
    last = cfg.run_dir / "last.pt"
    done = (cfg.run_dir / "final.json").is_file()
    if not done:
        train(cfg, resume=last.is_file())
    model, cfg, _ = load_checkpoint(last, device)
    return model, cfg
