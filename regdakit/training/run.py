"""A run from start to end: :func:`train`, and reading back what it wrote (:func:`load_checkpoint`).

One loop (:mod:`regdakit.training.loop`) runs every method of
:data:`regdakit.methods.METHODS`; :func:`train` chooses its phases: ERM and
the oracle train from scratch, an adaptation method (and continue-ERM and the
target fine-tune, its baseline and upper bound) starts from the source-only
model (:mod:`regdakit.training.pretraining`). It holds the run
folder's lock for the whole run, writes ``config.json`` and, at the end,
``final.json`` (the last evaluation and the mean of the last few); a resume
is checked by :mod:`regdakit.training.resume`.

Under ``torchrun`` the same :func:`train` runs in every process and trains
with DistributedDataParallel (:mod:`regdakit.distributed`,
``docs/distributed.md``): ``batch_size`` is the global batch, each rank draws
its share from its own streams, and rank 0 alone writes the run's files
(:mod:`regdakit.training.files`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

from regdakit import distributed
from regdakit.data.synthetic import SKELETONS
from regdakit.distributed import Context, DistributedError
from regdakit.methods import METHODS, contract
from regdakit.models import PoseResNet
from regdakit.training.config import TrainConfig, adapt_methods, check_device, method_config
from regdakit.training.evaluation import evaluate, mean_of_last
from regdakit.training.files import (
    CheckpointError,
    check_keys,
    load_weights,
    locked,
    make_dir,
    read_checkpoint,
    write_json,
)
from regdakit.training.loop import Phase, StreamSpec, run_phase
from regdakit.training.pretraining import adaptation_model, build_model, prepare_for_method
from regdakit.training.resume import check_resume, check_resume_allow, saved_config
from regdakit.training.settings import config_from_dict
from regdakit.training.streams import make_eval_sets

__all__ = ["evaluate_checkpoint", "load_checkpoint", "train"]


def train(
    cfg: TrainConfig,
    *,
    resume: bool = False,
    resume_allow: Iterable[str] = (),
    stop_after: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run ``cfg`` to the end and return its last-iteration evaluation.

    Launched by ``torchrun`` (``WORLD_SIZE`` > 1), every process runs this
    function: it opens the process group (NCCL on CUDA, gloo on CPU), trains
    with DistributedDataParallel on ``cfg.batch_size / WORLD_SIZE`` images per
    process, and rank 0 alone writes files; see :mod:`regdakit.distributed`
    and ``docs/distributed.md``.

    Args:
        cfg: The run.
        resume: Continue from ``<run_dir>/last.pt`` (exactly: model, optimisers, schedulers, iteration,
            streams, RNG; with another world size than the one that saved it, the streams start afresh).
            Without it an existing run directory with a checkpoint is an error. The run must be resumed
            with the settings it ran with (its ``config.json``), except ``out`` and ``run_name``, which
            only find it; any other difference is a :class:`~regdakit.training.resume.ResumeError` that
            lists them.
        resume_allow: Settings of :data:`~regdakit.training.resume.RESUME_SAFE` that may differ on this
            resume (they change neither the model nor its batches, e.g. ``("eval_every", "device")``);
            ``config.json`` then records the new values.
        stop_after: Stop after this many iterations of the final phase, with a checkpoint, as if
            interrupted (tests, time-boxed jobs); ``resume=True`` later continues.
        progress: Show tqdm bars (rank 0 only).

    Returns:
        ``{"run_dir", "iteration", "metrics": {"source_val": {...}, "target_test": {...}}, "summary": {...}}``,
        also written to ``<run_dir>/final.json``: ``metrics`` is the last evaluation (a snapshot) and
        ``summary`` ``{"statistic": "mean", "evaluations": n, "iterations": [...], "metrics": {...}}`` the
        mean of the final phase's last ``cfg.summary_evals`` evaluations (``n`` of them, fewer when the
        phase has fewer: :func:`~regdakit.training.evaluation.mean_of_last`). When stopped early,
        ``metrics`` is ``None`` and there is no summary. The same on every rank.

    Raises:
        NonFiniteLossError: A loss became NaN/Inf; ``last.pt`` still holds the last good state.
        NonFiniteStateError: (a :class:`NonFiniteLossError`) the model's weights or buffers (BatchNorm
            running variances) became NaN/Inf; ``last.pt`` still holds the last good state.
        ResumeError: ``resume`` with other settings than the run's (the message lists them).
        CheckpointError: ``last.pt``, the cached pre-training or ``init_checkpoint`` is unusable.
        RunFileError: A file or folder of the run cannot be written or read (disk full, a file in the way...).
        RunInUseError: Another process is writing the same run folder.
        FileExistsError: The run folder holds a checkpoint and ``resume`` is False.
        ValueError: ``cfg.device`` is not available here, or a setting only the run can check.
        DistributedError: Under torchrun, another rank crashed or hung (after ``cfg.dist_timeout`` at most).
    """
    resume_allow = tuple(resume_allow)
    if resume_allow and not resume:
        raise ValueError("resume_allow applies to a resumed run only (pass resume=True / --resume)")
    check_resume_allow(cfg, resume_allow)
    check_device(cfg.device)
    with distributed.session(cfg.device, cfg.dist_timeout) as ctx:
        try:
            return _train(cfg, ctx, resume=resume, resume_allow=resume_allow, stop_after=stop_after, progress=progress)
        except DistributedError:
            raise
        except Exception as err:
            if ctx.collective_failed(err):
                raise ctx.failure(err, "outside the training loop") from err
            raise


def _train(
    cfg: TrainConfig,
    ctx: Context,
    *,
    resume: bool,
    resume_allow: tuple[str, ...],
    stop_after: int | None,
    progress: bool,
) -> dict[str, Any]:
    """:func:`train` in the process group ``ctx`` (one process: a plain :class:`~regdakit.distributed.Context`)."""
    if ctx.distributed:
        # A launch whose ranks got different settings would train nonsense or deadlock; only rank 0's out is used.
        ctx.check_same({k: v for k, v in dataclasses.asdict(cfg).items() if k != "out"}, "config")
        if cfg.batch_size % ctx.world_size:
            raise ValueError(
                f"batch_size {cfg.batch_size} (the global batch) must be a multiple of the {ctx.world_size} processes"
            )
    eval_sets = make_eval_sets(cfg)
    run_dir = cfg.run_dir
    # Rank 0 holds the run folder's lock for the whole run: a second process on the same folder stops at once.
    with contextlib.ExitStack() as held:

        def claim() -> tuple[bool, dict[str, Any] | None]:
            make_dir(run_dir, "the run folder")
            held.enter_context(locked(run_dir, wait=False, what="the run folder"))
            return (run_dir / "last.pt").exists(), saved_config(run_dir) if resume else None

        has_checkpoint, saved = ctx.on_main(claim)
        if has_checkpoint and not resume:  # before any pre-training, and before config.json is touched
            raise FileExistsError(f"{run_dir} already holds a run; resume it or choose another out / run_name")
        if saved is not None:
            check_resume(cfg, saved, resume_allow, run_dir)
        if ctx.is_main:  # what runs from now on (a refused resume never gets here)
            write_json(dataclasses.asdict(cfg), run_dir / "config.json")
        model, phase = _model_and_phase(cfg, eval_sets, ctx, progress=progress)
        metrics = run_phase(
            cfg, phase, model, eval_sets, resume=resume, stop_after=stop_after, progress=progress, ctx=ctx
        )
        result = {"run_dir": str(run_dir), "iteration": phase.iterations if metrics else stop_after, "metrics": metrics}
        if metrics is not None:
            # Rank 0 read the log it wrote; every rank returns the same summary.
            result["summary"] = ctx.on_main(_summary, phase, cfg.summary_evals)
            if ctx.is_main:
                write_json(result, run_dir / "final.json")
        return result


def _summary(phase: Phase, last: int) -> dict[str, Any]:
    """The mean of the phase's last ``last`` evaluations, from its ``metrics.jsonl`` (:func:`mean_of_last`)."""
    log = phase.directory / "metrics.jsonl"
    records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    evaluations = [(r["iteration"], r["eval"]) for r in records if "eval" in r and r.get("phase") == phase.name]
    return {"statistic": "mean", **mean_of_last(evaluations, last)}


def _model_and_phase(
    cfg: TrainConfig, eval_sets: Mapping[str, Iterable[tuple[torch.Tensor, ...]]], ctx: Context, *, progress: bool
) -> tuple[PoseResNet, Phase]:
    """The model the run's last phase starts from, and that phase (for an adaptation, after its pre-training)."""
    if cfg.method in adapt_methods():  # all adapt the same cached source-only model
        model = adaptation_model(cfg, eval_sets, ctx, progress=progress)
        method = METHODS[cfg.method]
        # Seeds 2s / 2s+1: the adaptation's streams never replay the pre-training's batches. The labelled
        # stream is the source's, but the target's for the target fine-tune (an upper bound that declares it).
        labelled = cfg.target_domain if contract.labelled_domain(method) == "target" else cfg.source_domain
        source = StreamSpec(labelled, 2 * cfg.seed + 1, labels=True)
        target = None  # continue-ERM and the fine-tune see no unlabelled target batch
        if contract.target_images(method):
            target = StreamSpec(cfg.target_domain, 2 * cfg.seed + 1, labels=False)  # no labels, by structure
        return model, Phase("adapt", cfg.method, method_config(cfg), cfg.adapt_iterations, cfg.run_dir, source, target)
    model = build_model(cfg, adversarial=False, seed=cfg.seed, device=ctx.device)
    # The oracle is ERM on the *target*'s labelled stream.
    domain = cfg.target_domain if cfg.method == "oracle" else cfg.source_domain
    source = StreamSpec(domain, 2 * cfg.seed, labels=True)
    return model, Phase(cfg.method, "erm", cfg.erm, cfg.pretrain_iterations, cfg.run_dir, source, None)


def evaluate_checkpoint(path: str | os.PathLike, device: str = "auto") -> dict[str, Any]:
    """Evaluate a checkpoint (``last.pt`` or a snapshot) on its run's fixed evaluation sets.

    Returns:
        ``{"checkpoint", "iteration", "metrics": {"source_val": {...}, "target_test": {...}}}``.
    """
    model, cfg, state = load_checkpoint(path, device)
    skeleton = SKELETONS[cfg.task]
    metrics = {name: evaluate(model, data, skeleton) for name, data in make_eval_sets(cfg).items()}
    return {"checkpoint": os.fspath(path), "iteration": state.get("iteration"), "metrics": metrics}


def load_checkpoint(path: str | os.PathLike, device: str = "auto") -> tuple[PoseResNet, TrainConfig, dict[str, Any]]:
    """The model of a checkpoint (``last.pt``, a snapshot or a shipped one), in eval mode.

    The parts beyond ``psi`` and ``f`` (``f'``, DANN's discriminator) are those the checkpoint records in
    ``"parts"``; a checkpoint written before that entry existed has them guessed from its weights' names.

    Returns:
        ``(model, config, state)``: the :class:`PoseResNet` with the saved weights (``f'`` too when the
        checkpoint has one), the run's :class:`TrainConfig` and the raw checkpoint dict.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CheckpointError: (a ``ValueError``) a directory, an empty, truncated or foreign file, or weights that
            do not fit the model its config describes.
        ValueError: ``device`` is not available here.
    """
    path = Path(path)
    dev = check_device(device)
    what = "checkpoint"
    state = check_keys(read_checkpoint(path, dev, what), path, what, ("config", "model"))
    try:
        cfg = config_from_dict(state["config"])
    except (AttributeError, TypeError, ValueError) as err:
        raise CheckpointError(f"{what} {path} holds no valid regdakit config ({err})") from None
    weights = state["model"]
    if not isinstance(weights, Mapping):
        raise CheckpointError(f"{what} {path} holds no model weights (a dict of tensors)")
    parts = state.get("parts")
    if parts is None:
        parts = _guess_parts(weights)
    elif not isinstance(parts, list) or not all(isinstance(p, str) for p in parts):
        raise CheckpointError(f"{what} {path} has a damaged 'parts' entry (not a list of names): {parts!r}")
    model = build_model(cfg, adversarial="head_adv" in parts, seed=cfg.seed, device=dev, load_backbone_weights=False)
    if any(p != "head_adv" for p in parts):
        prepare_for_method(model, cfg)  # the parts the run's method attaches (DANN's discriminator)
    missing = sorted(set(parts) - set(contract.parts_of(model)))
    if missing:
        raise CheckpointError(
            f"{what} {path} has the parts {missing}, which method {cfg.method!r} of its config does not attach"
        )
    load_weights(model, weights, path, what)
    return model.eval(), cfg, state


def _guess_parts(weights: Mapping[str, Any]) -> list[str]:
    """The parts of a checkpoint written without a ``"parts"`` entry, read off its weights' top-level names.

    Kept for the checkpoints of earlier versions (and the shipped source-only models, which hold only
    ``config`` and ``model``): a weight outside ``psi`` and ``f`` belongs to a part the run had.
    """
    detector = ("backbone", "upsampling", "head")
    return list(dict.fromkeys(k.split(".", 1)[0] for k in weights if k.split(".", 1)[0] not in detector))
