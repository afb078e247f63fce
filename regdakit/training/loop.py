"""The training loop: one optimisation phase of a run, checkpointed for an exact resume, stopped by NaN/Inf.

A run trains one or two :class:`Phase` s (pre-training / ERM / oracle, then
an adaptation) with :func:`run_phase`: every iteration draws a source batch
(and a target batch), lets the method of :data:`regdakit.methods.METHODS`
step, checks the losses it returns, logs their means every ``log_every``
iterations, evaluates every ``eval_every`` and writes ``last.pt`` (everything
to resume exactly: model, optimisers, schedules, streams, RNG, the loss
window) every ``checkpoint_every``. A model whose weights or BatchNorm
statistics became NaN/Inf is never evaluated or checkpointed
(:class:`NonFiniteStateError`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from regdakit import distributed
from regdakit._validation import value_checks
from regdakit.data.synthetic import SKELETONS
from regdakit.distributed import Context
from regdakit.methods import METHODS
from regdakit.models import PoseResNet
from regdakit.training.config import TrainConfig
from regdakit.training.evaluation import evaluate_sharded, shard_eval_set
from regdakit.training.files import (
    CheckpointError,
    append_log,
    atomic_save,
    check_keys,
    load_weights,
    make_dir,
    read_checkpoint,
    truncate_log,
)
from regdakit.training.streams import make_stream

__all__ = ["NonFiniteLossError", "NonFiniteStateError", "Phase", "StreamSpec", "run_phase"]


class NonFiniteLossError(RuntimeError):
    """A loss became NaN or Inf; the run stops and its last good checkpoint is kept."""


class NonFiniteStateError(NonFiniteLossError):
    """The model's weights or buffers (e.g. BatchNorm running variances) became NaN or Inf; no checkpoint holds them."""


_STEP_NAMES = {"A": "step A (source)", "B": "step B (f' on target)", "C": "step C (psi on target)"}


@dataclass
class StreamSpec:
    """How to open one training stream; under torchrun every rank opens its own (seeds by :func:`_open`)."""

    domain: str
    seed: int
    labels: bool


@dataclass
class Phase:
    """One optimisation phase: pre-training / ERM / oracle, or RegDA's adaptation."""

    name: str
    method: str
    method_cfg: Any
    iterations: int
    directory: Path
    source: StreamSpec
    target: StreamSpec | None
    snapshots: bool = True  # model-only copies every checkpoint_every (not for the shared pre-training cache)


def _open(cfg: TrainConfig, spec: StreamSpec, ctx: Context, start: int) -> Iterator[dict[str, Any]]:
    """This rank's stream of ``spec``: its own seed (``spec.seed`` itself for rank 0 of a fresh run)."""
    seed = distributed.stream_seed(spec.seed, ctx.rank, start)
    return make_stream(cfg, spec.domain, seed, spec.labels, rank=ctx.rank, world_size=ctx.world_size)


def _rng_state() -> dict[str, Any]:
    """This process's RNG states: torch's CPU generator and, when there is CUDA, every GPU's."""
    rng = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    return rng


def _read_state(path: Path, map_location: torch.device | str) -> dict[str, Any]:
    """The resume state in ``last.pt``, checked for every part :func:`run_phase` restores."""
    state = check_keys(read_checkpoint(path, map_location, "the checkpoint"), path, "the checkpoint", ())
    keys = ("config", "model", "optimizers", "schedulers", "iteration", "window")
    return check_keys(state, path, "the checkpoint", (*keys, *(("ranks",) if "ranks" in state else ("streams", "rng"))))


def _set_rng_state(rng: Mapping[str, Any]) -> None:
    """Restore the RNG states of :func:`_rng_state` (the GPUs' only when there is CUDA here too)."""
    torch.set_rng_state(rng["torch"].cpu())
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in rng["cuda"]])


def _to(batch: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    """``batch`` with its tensors on ``device`` (other values, e.g. ``meta``, as they are)."""
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def _first_nonfinite(model: torch.nn.Module) -> str | None:
    """The name of the first weight or buffer that holds NaN/Inf, or None (one device sync)."""
    named = [(k, v) for k, v in model.state_dict().items() if v.is_floating_point()]
    finite = torch.stack([torch.isfinite(v).all() for _, v in named]).cpu()
    if bool(finite.all()):
        return None
    return named[int((~finite).nonzero()[0, 0])][0]


def run_phase(
    cfg: TrainConfig,
    phase: Phase,
    model: PoseResNet,
    eval_sets: Mapping[str, Iterable[tuple[torch.Tensor, ...]]],
    *,
    resume: bool,
    stop_after: int | None,
    progress: bool,
    ctx: Context | None = None,
) -> dict[str, Any] | None:
    """Train one phase to the end (or to ``stop_after`` iterations); returns the last evaluation, or None if stopped.

    Under torchrun (``ctx.distributed``) every rank runs this function in
    lockstep: rank 0 alone reads and writes files (the others receive what
    it read), each rank draws its own batches, DDP averages the gradients,
    the reported losses are means over the ranks, and evaluation is sharded.
    """
    device = next(model.parameters()).device
    ctx = ctx if ctx is not None else Context(device=device)
    method = METHODS[phase.method]
    last, log_path = phase.directory / "last.pt", phase.directory / "metrics.jsonl"
    skeleton = SKELETONS[cfg.task]
    if ctx.is_main:
        make_dir(phase.directory, "the run folder")
    exists = ctx.on_main(last.exists)
    if exists and not resume:
        raise FileExistsError(f"{phase.directory} already holds a run; resume it or choose another out / run_name")
    # Every rank needs the whole state (optimisers step on every rank); rank 0 reads it and sends it.
    state = ctx.on_main(_read_state, last, "cpu" if ctx.distributed else device) if exists else None
    if state is not None:
        load_weights(model, state["model"], last, "the checkpoint")
    optimizers = method.make_optimizers(model, phase.method_cfg)
    schedulers = method.make_schedulers(optimizers, phase.method_cfg)
    start, window = (int(state["iteration"]), dict(state["window"])) if state is not None else (0, {})
    if start > phase.iterations:
        length = "adapt_iterations" if phase.target is not None else "pretrain_iterations"
        raise ValueError(
            f"the checkpoint {last} is at iteration {start}, past this run's {length}={phase.iterations}: "
            "a run cannot be shortened (its model is the later one); start another run for fewer iterations"
        )
    # Saved per-rank stream states fit only the world size that saved them; with another one every rank opens
    # fresh streams, seeded by the iteration too, so no batch drawn before the resume is drawn again.
    same_world = state is None or int(state.get("world_size", 1)) == ctx.world_size
    streams = {"source": _open(cfg, phase.source, ctx, 0 if same_world else start)}
    if phase.target is not None:
        streams["target"] = _open(cfg, phase.target, ctx, 0 if same_world else start)
    logged: list[dict[str, Any]] = []
    if state is not None:
        try:
            for name, opt in optimizers.items():
                opt.load_state_dict(state["optimizers"][name])
            for name, sched in schedulers.items():
                sched.load_state_dict(state["schedulers"][name])
            if same_world:
                mine = state["ranks"][ctx.rank] if "ranks" in state else state
                for name, stream in streams.items():
                    stream.load_state_dict(mine["streams"][name])
                _set_rng_state(mine["rng"])
        except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as err:
            raise CheckpointError(
                f"the checkpoint {last} does not fit this run's optimisers, schedules or streams "
                f"({type(err).__name__}: {str(err).strip().splitlines()[0][:120] if str(err).strip() else ''})"
            ) from err
        if ctx.is_main:
            logged = truncate_log(log_path, start)
    elif ctx.is_main:
        log_path.unlink(missing_ok=True)
    shards = {name: shard_eval_set(data, ctx) for name, data in eval_sets.items()}
    have_checkpoint = exists

    def kept() -> str:
        return f"the last good checkpoint {last} is kept" if have_checkpoint else "no checkpoint was written yet"

    def check_state(done: int) -> None:
        # BatchNorm running variances can overflow before any loss does (training normalises with the batch's
        # statistics): such a model evaluates to nonsense, so it is neither evaluated nor checkpointed.
        bad = _first_nonfinite(model)
        if bad is not None:
            raise NonFiniteStateError(
                f"{phase.name}: the model's {bad!r} holds NaN/Inf at iteration {done} (method {phase.method}); "
                f"stopping, {kept()}"
            )

    def checkpoint(done: int) -> None:
        nonlocal have_checkpoint
        ctx.average_batchnorm(model)
        check_state(done)
        mine = {"streams": {k: s.state_dict() for k, s in streams.items()}, "rng": _rng_state()}
        ranks = ctx.gather(mine) if ctx.distributed else None
        have_checkpoint = True
        if not ctx.is_main:
            return
        state = {
            "config": dataclasses.asdict(cfg),
            "phase": phase.name,
            "adversarial": model.head_adv is not None,
            "iteration": done,
            "model": model.state_dict(),
            "optimizers": {k: o.state_dict() for k, o in optimizers.items()},
            "schedulers": {k: s.state_dict() for k, s in schedulers.items()},
            "streams": mine["streams"],
            "rng": mine["rng"],
            "window": window,
        }
        if ranks is not None:  # every rank's streams and RNG, to resume with the same world size exactly
            state.update(world_size=ctx.world_size, ranks=ranks)
        atomic_save(state, last)

    def run_eval(done: int, log: bool = True) -> dict[str, Any]:
        ctx.average_batchnorm(model)
        check_state(done)
        metrics = {name: evaluate_sharded(model, data, skeleton, ctx) for name, data in shards.items()}
        model.train()
        if ctx.is_main and log:
            append_log(log_path, {"phase": phase.name, "iteration": done, "eval": metrics})
        return metrics

    metrics = None
    # The steps get a view of the model whose players are DDP-wrapped (the model itself with one process).
    net = ctx.wrap(model, cfg.sync_batchnorm)
    net.train()
    bar = tqdm(
        range(start, phase.iterations),
        initial=start,
        total=phase.iterations,
        desc=phase.name,
        disable=not (progress and ctx.is_main),
    )
    it = start
    # NaN checks inside the public functions would sync the device several times per
    # iteration; the loop checks the losses the step returns instead (one sync).
    try:
        with value_checks(False):
            for it in bar:
                batch_s = _to(next(streams["source"]), device)
                batch_t = _to(next(streams["target"]), device) if phase.target is not None else None
                losses = method.step(net, batch_s, batch_t, optimizers, phase.method_cfg, it)
                if ctx.distributed:  # the global batch's losses, and a NaN on one rank stops every rank
                    losses = ctx.mean(losses)
                bad = {k: v for k, v in losses.items() if not math.isfinite(v)}
                if bad:
                    key = next(iter(bad))
                    where = _STEP_NAMES.get(key[:1], "the step") if "_" in key else "the ERM step"
                    raise NonFiniteLossError(
                        f"{phase.name}: loss {key!r} of {where} is {bad[key]} at iteration {it} "
                        f"(method {phase.method}); stopping, {kept()}"
                    )
                for sched in schedulers.values():
                    sched.step()
                done = it + 1
                for k, v in losses.items():
                    window[k] = window.get(k, 0.0) + v
                window["n"] = window.get("n", 0) + 1
                if done % cfg.log_every == 0 or done == phase.iterations:
                    n = window.pop("n")
                    means = {k: v / n for k, v in window.items()}
                    if ctx.is_main:
                        append_log(log_path, {"phase": phase.name, "iteration": done, "train": means})
                    bar.set_postfix({k: f"{v:.3g}" for k, v in means.items()})
                    window = {}
                if done % cfg.eval_every == 0 or done == phase.iterations:
                    metrics = run_eval(done)
                if done % cfg.checkpoint_every == 0 or done == phase.iterations or done == stop_after:
                    checkpoint(done)
                    if ctx.is_main and phase.snapshots and done % cfg.checkpoint_every == 0:
                        atomic_save(
                            {"config": dataclasses.asdict(cfg), "model": model.state_dict()},
                            phase.directory / f"iter_{done:07d}.pt",
                        )
                if done == stop_after and done < phase.iterations:
                    bar.close()
                    return None
    except Exception as err:
        if ctx.collective_failed(err):
            ctx.abandon(net, optimizers)  # their destructors would wait on the failed gloo / NCCL work
            raise ctx.failure(err, f"in phase {phase.name!r} at iteration {it}") from err
        raise
    bar.close()
    if metrics is None:  # resumed from the final checkpoint: evaluate again, logged only if the log lacks it
        final = any(r["iteration"] == phase.iterations and "eval" in r for r in logged)  # rank 0's: it logs
        metrics = run_eval(phase.iterations, log=not final)
    return metrics
