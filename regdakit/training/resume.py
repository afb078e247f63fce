"""What may change when a run resumes, and the check that refuses everything else.

Resume refuses settings that differ from the ones the run ran with
(:class:`ResumeError` lists them); ``resume_allow`` lets those of
:data:`RESUME_SAFE` change.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from regdakit.methods import METHODS, contract
from regdakit.training.config import TrainConfig, adapt_methods
from regdakit.training.files import check_keys, read_checkpoint, read_json
from regdakit.training.settings import config_from_dict, flatten, override_types

__all__ = ["RESUME_SAFE", "ResumeError", "check_resume", "check_resume_allow", "saved_config"]


#: Settings that ``resume_allow`` / ``--resume_allow`` may change when a run resumes: how often it logs,
#: evaluates and checkpoints, how many evaluations its summary averages, where and with how many loader
#: workers it runs, how long collectives wait, and the length of its last phase (to extend a finished run;
#: never below the checkpoint's iteration).
#: None changes the model or the batches (``pretrain_iterations`` does for the adaptation methods, whose
#: pre-training it selects: for them it is not allowed; ``adapt_iterations`` does for the methods whose
#: schedules scale with it, those with it in their ``RUN_SETTINGS``: RegDA's warm start, DANN's reversal
#: weight). ``out`` and ``run_name`` only find the run: they are never compared.
RESUME_SAFE = (
    "eval_every",
    "summary_evals",
    "log_every",
    "checkpoint_every",
    "workers",
    "device",
    "dist_timeout",
    "adapt_iterations",
    "pretrain_iterations",
)


class ResumeError(ValueError):
    """A run was resumed with other settings than it ran with."""


def _resume_safe(cfg: TrainConfig) -> tuple[str, ...]:
    """The settings of :data:`RESUME_SAFE` that may change when ``cfg``'s run resumes."""
    # adapt_methods() now, not ADAPT_METHODS: a method registered after import is an adaptation method too.
    adapting = cfg.method in adapt_methods()
    scaled = adapting and "adapt_iterations" in contract.run_settings(METHODS[cfg.method])
    fixed = {"pretrain_iterations"} if adapting else set()
    if scaled:  # a longer run would stretch the schedule of the iterations still to come
        fixed.add("adapt_iterations")
    return tuple(k for k in RESUME_SAFE if k not in fixed)


def check_resume_allow(cfg: TrainConfig, allow: tuple[str, ...]) -> None:
    """Refuse (``ValueError``) an ``allow`` naming an unknown setting, or one that cannot change in ``cfg``'s run."""
    unknown = sorted(set(allow) - set(override_types()))
    if unknown:
        raise ValueError(f"resume_allow: unknown setting {unknown[0]!r}")
    unsafe = [k for k in allow if k not in _resume_safe(cfg)]
    if unsafe:
        raise ValueError(
            f"resume_allow: {', '.join(unsafe)} cannot change in a run (it changes what the {cfg.method} run "
            f"computes); allowed: {', '.join(_resume_safe(cfg))}"
        )


def saved_config(run_dir: Path) -> dict[str, Any] | None:
    """The settings the run in ``run_dir`` ran with: its ``config.json`` (or ``last.pt``'s), None for a new run."""
    path = run_dir / "config.json"
    if path.is_file():
        return read_json(path, f"{path} is not JSON", "the settings of the run to resume are unknown")
    last = run_dir / "last.pt"
    if last.exists():
        return check_keys(read_checkpoint(last, "cpu", "the checkpoint"), last, "the checkpoint", ("config",))["config"]
    return None


def check_resume(cfg: TrainConfig, saved: Any, allow: tuple[str, ...], run_dir: Path) -> None:
    """Raise :class:`ResumeError` when ``cfg`` differs from ``saved`` other than in ``allow``."""
    safe = _resume_safe(cfg)
    try:
        if not isinstance(saved, Mapping):
            raise TypeError(f"a JSON {type(saved).__name__}")
        before = flatten(json.loads(json.dumps(dataclasses.asdict(config_from_dict(saved)))))
    except (TypeError, ValueError) as err:
        raise ValueError(f"{run_dir / 'config.json'} holds no valid config ({err}): cannot check the resume") from None
    after = flatten(json.loads(json.dumps(dataclasses.asdict(cfg))))
    changed = [k for k in after if k not in ("out", "run_name") and before.get(k) != after[k] and k not in allow]
    if not changed:
        return
    diffs = "; ".join(f"{k}: {json.dumps(before.get(k))} -> {json.dumps(after[k])}" for k in changed)
    fixed, allowable = [k for k in changed if k not in safe], [k for k in changed if k in safe]
    hints = []
    if fixed:
        hints.append(f"{', '.join(fixed)} cannot change in a run: start another run (another run_name)")
    if allowable:
        hints.append(f"to continue with the new {', '.join(allowable)}, pass --resume_allow={','.join(allowable)}")
    raise ResumeError(f"cannot resume {run_dir} with other settings than it ran with: {diffs} ({'; '.join(hints)})")
