"""The training loop: one optimisation phase of a run, checkpointed for an exact resume, stopped by NaN/Inf.

A run trains one or two :class:`Phase` s (pre-training / ERM / oracle, then
an adaptation) with :func:`run_phase`: every iteration draws a source batch
(and a target batch), lets the method of :data:`regdakit.methods.METHODS`
step, checks the losses it returns (keys ``"<step>/<name>"``, the vocabulary of
:mod:`regdakit.methods`: a NaN names the method's step), logs their means every ``log_every``
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
from regdakit.methods import METHODS, contract
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


@dataclass
class StreamSpec:
    """How to open one training stream; under torchrun every rank opens its own (seeds by :func:`_open`)."""

    domain: str
    seed: int
    labels: bool


@dataclass
class Phase:
    """One optimisation phase: pre-training / ERM / oracle, or an adaptation (RegDA, the control, a baseline)."""

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


def _upgrade_window(window: Mapping[str, Any]) -> dict[str, Any]:
    """A checkpoint's loss window with this version's key names, in its order (a run resumed across the rename)."""
    return {contract.upgrade_key(k): v for k, v in window.items()}


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

    Args:
        cfg: The run (logging, evaluation and checkpoint periods; ``sync_batchnorm``).
        phase: What to train, and the folder of its ``last.pt`` and ``metrics.jsonl``.
        model: Trained in place, on its own device.
        eval_sets: ``name -> (images (b, 3, S, S), keypoints (b, K, 2) in pixels, visible (b, K))`` batches,
            the whole sets (each rank evaluates its shard).
        resume: Continue from the phase's ``last.pt`` when it has one (without: an error if it has one).
        stop_after: Stop after this many iterations, with a checkpoint, as if interrupted.
        progress: Show a tqdm bar (rank 0 only).
        ctx: The process group; one process on the model's device when ``None``.
    """
    device = next(model.parameters()).device
    ctx = ctx if ctx is not None else Context(device=device)
    return _PhaseRun(cfg, phase, model, eval_sets, ctx, resume=resume).train(stop_after=stop_after, progress=progress)


class _PhaseRun:
    """One phase of :func:`run_phase` while it trains: its optimisers, schedules, streams and loss window.

    Built fresh, or restored from the phase's ``last.pt``; :meth:`train` then runs the iterations, each
    a :meth:`_step`, with :meth:`_log_losses`, :meth:`_evaluate` and :meth:`_checkpoint` when they are due.
    """

    def __init__(
        self,
        cfg: TrainConfig,
        phase: Phase,
        model: PoseResNet,
        eval_sets: Mapping[str, Iterable[tuple[torch.Tensor, ...]]],
        ctx: Context,
        *,
        resume: bool,
    ) -> None:
        self.cfg, self.phase, self.model, self.ctx = cfg, phase, model, ctx
        self.device = next(model.parameters()).device
        self.method = METHODS[phase.method]
        self.last, self.log_path = phase.directory / "last.pt", phase.directory / "metrics.jsonl"
        self.skeleton = SKELETONS[cfg.task]
        state = self._read_last(resume)
        if state is not None:
            load_weights(model, state["model"], self.last, "the checkpoint")
        self.optimizers = self.method.make_optimizers(model, phase.method_cfg)
        self.schedulers = contract.make_schedulers(self.method, self.optimizers, phase.method_cfg, cfg.adapt_iterations)
        #: The run-level settings the step takes as keywords (the pseudo-labels' ``sigma``).
        self.step_settings = {name: getattr(cfg, name) for name in contract.run_settings(self.method)}
        self.start, self.window = 0, {}
        if state is not None:
            self.start, self.window = int(state["iteration"]), _upgrade_window(state["window"])
        self._check_length()
        # Saved per-rank stream states fit only the world size that saved them; with another one every rank opens
        # fresh streams, seeded by the iteration too, so no batch drawn before the resume is drawn again.
        same_world = state is None or int(state.get("world_size", 1)) == ctx.world_size
        self.streams = {"source": _open(cfg, phase.source, ctx, 0 if same_world else self.start)}
        if phase.target is not None:
            self.streams["target"] = _open(cfg, phase.target, ctx, 0 if same_world else self.start)
        #: The log records kept from before the resume (rank 0's; the others log nothing).
        self.logged: list[dict[str, Any]] = []
        if state is not None:
            self._restore(state, same_world)
            if ctx.is_main:
                self.logged = truncate_log(self.log_path, self.start)
        elif ctx.is_main:
            self.log_path.unlink(missing_ok=True)
        self.shards = {name: shard_eval_set(data, ctx) for name, data in eval_sets.items()}
        self.have_checkpoint = state is not None

    # ------------------------------------------------------------ set-up

    def _read_last(self, resume: bool) -> dict[str, Any] | None:
        """The state in the phase's ``last.pt`` on every rank, or None when there is none yet."""
        ctx = self.ctx
        if ctx.is_main:
            make_dir(self.phase.directory, "the run folder")
        exists = ctx.on_main(self.last.exists)
        if exists and not resume:
            raise FileExistsError(
                f"{self.phase.directory} already holds a run; resume it or choose another out / run_name"
            )
        if not exists:
            return None
        # Every rank needs the whole state (optimisers step on every rank); rank 0 reads it and sends it.
        return ctx.on_main(_read_state, self.last, "cpu" if ctx.distributed else self.device)

    def _check_length(self) -> None:
        """Refuse a checkpoint past the phase's end: a run cannot be shortened."""
        if self.start > self.phase.iterations:
            length = "adapt_iterations" if self.phase.name == "adapt" else "pretrain_iterations"
            raise ValueError(
                f"the checkpoint {self.last} is at iteration {self.start}, past this run's {length}="
                f"{self.phase.iterations}: a run cannot be shortened (its model is the later one); "
                "start another run for fewer iterations"
            )

    def _restore(self, state: Mapping[str, Any], same_world: bool) -> None:
        """Load the optimisers, schedules and (with the same world size) this rank's streams and RNG of ``state``."""
        try:
            for name, opt in self.optimizers.items():
                opt.load_state_dict(state["optimizers"][name])
            for name, sched in self.schedulers.items():
                sched.load_state_dict(state["schedulers"][name])
            if same_world:
                mine = state["ranks"][self.ctx.rank] if "ranks" in state else state
                for name, stream in self.streams.items():
                    stream.load_state_dict(mine["streams"][name])
                _set_rng_state(mine["rng"])
        except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as err:
            raise CheckpointError(
                f"the checkpoint {self.last} does not fit this run's optimisers, schedules or streams "
                f"({type(err).__name__}: {str(err).strip().splitlines()[0][:120] if str(err).strip() else ''})"
            ) from err

    # ------------------------------------------------------------ the loop

    def train(self, *, stop_after: int | None, progress: bool) -> dict[str, Any] | None:
        """Run the remaining iterations; the last evaluation, or None when stopped at ``stop_after``."""
        cfg, phase, ctx = self.cfg, self.phase, self.ctx
        metrics = None
        # The steps get a view of the model whose players are DDP-wrapped (the model itself with one process).
        net = ctx.wrap(self.model, cfg.sync_batchnorm)
        net.train()
        bar = tqdm(
            range(self.start, phase.iterations),
            initial=self.start,
            total=phase.iterations,
            desc=phase.name,
            disable=not (progress and ctx.is_main),
        )
        it = self.start
        # NaN checks inside the public functions would sync the device several times per
        # iteration; the loop checks the losses the step returns instead (one sync).
        try:
            with value_checks(False):
                for it in bar:
                    losses = self._step(net, it)
                    done = it + 1
                    self._log_losses(losses, done, bar)
                    if self._due(done, cfg.eval_every):
                        metrics = self._evaluate(done)
                    if self._due(done, cfg.checkpoint_every) or done == stop_after:
                        self._checkpoint(done)
                        if phase.snapshots and done % cfg.checkpoint_every == 0:
                            self._snapshot(done)
                    if done == stop_after and done < phase.iterations:
                        bar.close()
                        return None
        except Exception as err:
            if ctx.collective_failed(err):
                ctx.abandon(net, self.optimizers)  # their destructors would wait on the failed gloo / NCCL work
                raise ctx.failure(err, f"in phase {phase.name!r} at iteration {it}") from err
            raise
        bar.close()
        if metrics is None:  # resumed from the final checkpoint: evaluate again, logged only if the log lacks it
            final = any(r["iteration"] == phase.iterations and "eval" in r for r in self.logged)  # rank 0's: it logs
            metrics = self._evaluate(phase.iterations, log=not final)
        return metrics

    def _due(self, done: int, every: int) -> bool:
        """Whether a periodic action (log, evaluation, checkpoint) is due after ``done`` iterations: and at the end."""
        return done % every == 0 or done == self.phase.iterations

    def _step(self, net: torch.nn.Module, it: int) -> dict[str, float]:
        """Iteration ``it``: this rank's batches, the method's step, the losses checked, the schedules advanced.

        Returns:
            The step's losses by name (means over the ranks under torchrun).
        """
        batch_s = _to(next(self.streams["source"]), self.device)
        batch_t = _to(next(self.streams["target"]), self.device) if self.phase.target is not None else None
        losses = self.method.step(
            net, batch_s, batch_t, self.optimizers, self.phase.method_cfg, it, **self.step_settings
        )
        if self.ctx.distributed:  # the global batch's losses, and a NaN on one rank stops every rank
            losses = self.ctx.mean(losses)
        self._check_losses(losses, it)
        for sched in self.schedulers.values():
            sched.step()
        return losses

    def _check_losses(self, losses: Mapping[str, float], it: int) -> None:
        """Stop the run (:class:`NonFiniteLossError`, naming the loss and its step) when a loss is NaN/Inf."""
        bad = {k: v for k, v in losses.items() if not math.isfinite(v)}
        if bad:
            key = next(iter(bad))
            letter, steps = contract.step_of(key), self.method.STEPS
            method = self.phase.method
            where = f"{method}'s step {letter} ({steps[letter]})" if letter in steps else f"{method}'s step"
            raise NonFiniteLossError(
                f"{self.phase.name}: loss {key!r} of {where} is {bad[key]} at iteration {it} "
                f"(method {method}); stopping, {self._kept()}"
            )

    def _log_losses(self, losses: Mapping[str, float], done: int, bar: tqdm) -> None:
        """Add ``losses`` to the window; every ``log_every`` iterations log the window's means and empty it."""
        for k, v in losses.items():
            self.window[k] = self.window.get(k, 0.0) + v
        self.window["n"] = self.window.get("n", 0) + 1
        if self._due(done, self.cfg.log_every):
            n = self.window.pop("n")
            means = {k: v / n for k, v in self.window.items()}
            if self.ctx.is_main:
                append_log(self.log_path, {"phase": self.phase.name, "iteration": done, "train": means})
            bar.set_postfix({k: f"{v:.3g}" for k, v in means.items()})
            self.window = {}

    # ------------------------------------------------------------ evaluation and checkpoints

    def _kept(self) -> str:
        """What a failed run leaves, for its error message."""
        return (
            f"the last good checkpoint {self.last} is kept" if self.have_checkpoint else "no checkpoint was written yet"
        )

    def _check_state(self, done: int) -> None:
        """Stop the run (:class:`NonFiniteStateError`) when a weight or buffer of the model is NaN/Inf."""
        # BatchNorm running variances can overflow before any loss does (training normalises with the batch's
        # statistics): such a model evaluates to nonsense, so it is neither evaluated nor checkpointed.
        bad = _first_nonfinite(self.model)
        if bad is not None:
            raise NonFiniteStateError(
                f"{self.phase.name}: the model's {bad!r} holds NaN/Inf at iteration {done} "
                f"(method {self.phase.method}); stopping, {self._kept()}"
            )

    def _evaluate(self, done: int, log: bool = True) -> dict[str, Any]:
        """PCK on every evaluation set after ``done`` iterations (sharded over the ranks), logged when ``log``."""
        self.ctx.average_batchnorm(self.model)
        self._check_state(done)
        metrics = {
            name: evaluate_sharded(self.model, data, self.skeleton, self.ctx) for name, data in self.shards.items()
        }
        self.model.train()
        if self.ctx.is_main and log:
            append_log(self.log_path, {"phase": self.phase.name, "iteration": done, "eval": metrics})
        return metrics

    def _checkpoint(self, done: int) -> None:
        """Write ``last.pt``: everything to resume exactly after ``done`` iterations, every rank's streams and RNG."""
        ctx, model = self.ctx, self.model
        ctx.average_batchnorm(model)
        self._check_state(done)
        mine = {"streams": {k: s.state_dict() for k, s in self.streams.items()}, "rng": _rng_state()}
        ranks = ctx.gather(mine) if ctx.distributed else None
        self.have_checkpoint = True
        if not ctx.is_main:
            return
        state = {
            "config": dataclasses.asdict(self.cfg),
            "phase": self.phase.name,
            "parts": contract.parts_of(model),  # what load_checkpoint builds before loading the weights
            "iteration": done,
            "model": model.state_dict(),
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()},
            "streams": mine["streams"],
            "rng": mine["rng"],
            "window": self.window,
        }
        if ranks is not None:  # every rank's streams and RNG, to resume with the same world size exactly
            state.update(world_size=ctx.world_size, ranks=ranks)
        atomic_save(state, self.last)

    def _snapshot(self, done: int) -> None:
        """Rank 0 writes ``iter_<done>.pt``: the model and config only, to evaluate or select later."""
        if self.ctx.is_main:
            atomic_save(
                {
                    "config": dataclasses.asdict(self.cfg),
                    "parts": contract.parts_of(self.model),
                    "model": self.model.state_dict(),
                },
                self.phase.directory / f"iter_{done:07d}.pt",
            )
