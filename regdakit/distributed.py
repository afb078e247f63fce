"""Multi-process training with ``torch.distributed``: one process per device, launched by ``torchrun``.

The trainer (:mod:`regdakit.train`) runs unchanged in one process; under
``torchrun`` (which sets ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``) it opens a
process group (NCCL on CUDA, gloo on CPU) and every rank trains on its own
share of the batch. :class:`Context` is everything the trainer needs to know
about the other processes; with one process all its methods are no-ops, so
the single-process path pays nothing.

How the model is wrapped (:meth:`Context.wrap`). The method steps
(:mod:`regdakit.methods`) call the *players* of the model separately:
``model.features`` (``psi`` = backbone + upsampling), ``model.head`` (``f``),
``model.head_adv`` (``f'``) and a method's own modules (DANN's
``domain_discriminator``), and a step often trains only some of them:
RegDA's step B trains ``f'`` on detached features, step C back-propagates
into ``psi`` only (``backward(inputs=psi's parameters)``) through ``f'``.
One ``DistributedDataParallel`` around the whole model would not even see
these calls (DDP synchronises through its own ``forward``), and calling it
as ``model(x)`` in every step would need ``find_unused_parameters=True``: a
graph traversal after every forward, and every bucket all-reduced, the
parameters no gradient reached included. Instead every player (every direct
child with parameters) gets its own DDP, and the steps receive a *view* of
the model whose children are those wrappers; the step code does not change. Every
backward of every method reaches either all or none of a player's
parameters; in the second case no gradient hook fires, the player's reducer
launches no collective on any rank, and its next forward starts afresh
(this is what ``no_sync`` would do, without the step having to say it). So
gradients are averaged exactly for the players that a backward trains, and
for no other. A future step that trains only *part* of a player breaks this
rule: DDP then raises "Expected to have finished reduction" at the next
forward (on every rank, no hang).

BatchNorm. Per rank by default: each process normalises with the statistics
of its own share of the batch. ``sync_batchnorm=True`` converts every
BatchNorm to :class:`torch.nn.SyncBatchNorm` (statistics over the global
batch, as one process would compute them; CUDA only in PyTorch). Running
statistics are not broadcast from rank 0 at every forward (DDP's buffer
sync, which would also put a collective in every gradient-free forward);
they are averaged over the ranks before every evaluation and checkpoint
(:meth:`Context.average_batchnorm`), a no-op with SyncBatchNorm.

>>> ctx = Context()
>>> ctx.world_size, ctx.is_main, ctx.mean({"loss": 1.5})
(1, True, {'loss': 1.5})
>>> stream_seed(7, rank=0), stream_seed(7, rank=0) == stream_seed(7, rank=1)
(7, False)
>>> shard_range(10, rank=1, world_size=3)
(3, 6)
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import gc
import hashlib
import inspect
import os
import threading
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

__all__ = [
    "Context",
    "DistributedError",
    "is_collective_failure",
    "session",
    "shard_range",
    "stream_seed",
    "world_from_env",
]

T = TypeVar("T")


# No buffer broadcast in every forward (running statistics are averaged by Context.average_batchnorm);
# torch 2.13 renamed the option (broadcast_buffers is deprecated there, the only spelling before).
_NO_BUFFER_SYNC = (
    {"forward_sync_buffers": False}
    if "forward_sync_buffers" in inspect.signature(DistributedDataParallel.__init__).parameters
    else {"broadcast_buffers": False}
)


#: Objects of failed runs that must never be destroyed (:meth:`Context.abandon`).
_ABANDONED: list[Any] = []


class DistributedError(RuntimeError):
    """A collective failed or timed out: another rank crashed, hung or was killed."""


def world_from_env() -> tuple[int, int, int]:
    """``(rank, world_size, local_rank)`` from torchrun's environment; ``(0, 1, 0)`` outside it."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))


def stream_seed(seed: int, rank: int, start: int = 0) -> int:
    """The seed of rank ``rank``'s training stream (source or target) for a run seeded ``seed``.

    Rank 0 of a fresh run keeps ``seed``, so one process draws exactly the
    batches it drew before distributed training existed. Other ranks, and
    every rank of a run resumed at iteration ``start`` with another world size
    (when the saved stream states no longer fit), get a seed hashed from
    ``(seed, rank, start)``: distinct per rank, and never a replay of the
    batches drawn before the resume.
    """
    if rank == 0 and start == 0:
        return seed
    digest = hashlib.sha256(f"regdakit-stream/{seed}/{rank}/{start}".encode()).hexdigest()
    return int(digest[:15], 16)  # 60 bits: a valid seed for torch.Generator and LoaderStream


def shard_range(n: int, rank: int, world_size: int) -> tuple[int, int]:
    """The contiguous items ``[lo, hi)`` of ``n`` that rank ``rank`` evaluates; the shards cover each item once."""
    return n * rank // world_size, n * (rank + 1) // world_size


def is_collective_failure(err: BaseException) -> bool:
    """Whether ``err`` is, by its type, an error of ``torch.distributed`` (a backend, network or store error).

    The type alone does not catch everything: gloo reports a dead or hung peer
    as a plain ``RuntimeError`` (from ``backward()`` when DDP's all-reduce
    fails). :meth:`Context.collective_failed` adds what the process saw: a
    collective of its own that failed.
    """
    return isinstance(err, dist.DistError)


@dataclass
class Context:
    """This process's place among the training processes (defaults: one process).

    Attributes:
        rank: Global rank, 0 writes every file.
        world_size: Number of processes.
        local_rank: Rank on this machine (the CUDA device index).
        device: This process's device.
        timeout: Seconds a collective waits for the other ranks before it fails.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    timeout: float = 600.0
    #: The first error of a collective of this process (its own or DDP's gradient all-reduce); ``None`` while
    #: every collective succeeded. State, not message text, tells a failed peer from a bug of this rank.
    collective_error: BaseException | None = field(default=None, repr=False, compare=False)

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that reads and writes files and shows progress."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """More than one process."""
        return self.world_size > 1

    # ------------------------------------------------------ failure state

    def collective_failed(self, err: BaseException) -> bool:
        """Whether ``err`` means that a collective failed: another rank crashed, hung or was killed.

        True, with several processes, when ``err`` is a ``torch.distributed``
        error by type (:func:`is_collective_failure`) or when a collective of
        this process has failed since the group opened
        (:attr:`collective_error`: DDP's gradient all-reduce is watched by a
        communication hook, the context's own collectives by
        :meth:`_collective`). An error of this rank's own code while every
        collective succeeded is not a collective failure.
        """
        if not self.distributed:
            return False
        return is_collective_failure(err) or self.collective_error is not None

    def abandon(self, *objects: Any) -> None:
        """Keep ``objects`` (DDP wrappers, optimisers) alive for the life of the process after a failed collective.

        Destroying a DDP reducer whose all-reduce failed can block on the
        broken connection (seen with gloo: the process hung when the traceback
        that held the wrappers was freed). The process is about to report the
        failure and exit, so they are never destroyed instead.
        """
        _ABANDONED.extend(objects)

    def _record(self, err: BaseException) -> None:
        if self.collective_error is None:
            self.collective_error = err

    @contextlib.contextmanager
    def _collective(self) -> Iterator[None]:
        """Run one of the context's own collectives; an error in it is recorded (:attr:`collective_error`)."""
        try:
            yield
        except Exception as err:
            self._record(err)
            raise

    # ------------------------------------------------------------ the model

    def wrap(self, model: nn.Module, sync_batchnorm: bool = False) -> nn.Module:
        """A view of ``model`` whose players (children with trainable parameters) are each in their own DDP.

        The view shares parameters, buffers and submodules with ``model``;
        only its table of children differs, so ``model`` (its state dict,
        evaluation, checkpoints) is untouched and the method steps call
        ``view.features(x)``, ``view.head(psi)``... as on ``model``. Why one
        DDP per player and not ``find_unused_parameters``: see the module
        docstring. With one process ``model`` itself is returned.

        Args:
            model: The detector (with any modules its method attached), on :attr:`device`.
            sync_batchnorm: Convert ``model``'s BatchNorm layers to SyncBatchNorm first (in place; CUDA only).

        Raises:
            ValueError: ``sync_batchnorm`` on a CPU device (PyTorch's SyncBatchNorm runs on GPUs only).
        """
        if not self.distributed:
            return model
        if sync_batchnorm:
            if self.device.type != "cuda":
                raise ValueError(
                    "sync_batchnorm=True needs CUDA devices (torch.nn.SyncBatchNorm does not run on CPU); "
                    "on CPU BatchNorm is per rank: leave sync_batchnorm=False"
                )
            nn.SyncBatchNorm.convert_sync_batchnorm(model)  # children replaced in place, same parameters
        view = copy.copy(model)  # shallow: the same parameter, buffer and hook dicts
        view.__dict__["_modules"] = dict(model._modules)  # its own children table, so wrapping leaves `model` alone
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        for name, child in model.named_children():
            if any(p.requires_grad for p in child.parameters()):
                # no buffer sync per forward: running statistics are averaged explicitly (average_batchnorm);
                # find_unused_parameters=False: every backward uses all or none of a player (module docstring).
                ddp = DistributedDataParallel(
                    child, device_ids=device_ids, find_unused_parameters=False, **_NO_BUFFER_SYNC
                )
                # The default averaging, through a hook that records a failed all-reduce (collective_failed).
                ddp.register_comm_hook(self, _recording_allreduce)
                view._modules[name] = ddp
        return view

    def average_batchnorm(self, model: nn.Module) -> None:
        """Average the BatchNorm running means and variances over the ranks (one all-reduce), in place.

        Training uses batch statistics, so per-rank running statistics drift
        apart harmlessly; evaluation and checkpoints use their mean, which
        equals what one process would have accumulated from the per-rank
        batches (the running average is linear in the batch statistics).
        """
        if not self.distributed:
            return
        buffers = [
            b
            for m in model.modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm)
            for b in (m.running_mean, m.running_var)
            if b is not None
        ]
        if not buffers:
            return
        flat = torch.cat([b.detach().flatten().to(torch.float64) for b in buffers])
        with self._collective():
            dist.all_reduce(flat)
        flat /= self.world_size
        for b, value in zip(buffers, flat.split([b.numel() for b in buffers]), strict=True):
            b.copy_(value.view_as(b))

    # ------------------------------------------------------- communication

    def mean(self, values: Mapping[str, float]) -> dict[str, float]:
        """The mean over the ranks of each value (one all-reduce): losses of the global batch, NaN on every rank."""
        if not self.distributed:
            return dict(values)
        flat = torch.tensor(list(values.values()), dtype=torch.float64, device=self.device)
        with self._collective():
            dist.all_reduce(flat)
        return dict(zip(values, (flat / self.world_size).tolist(), strict=True))

    def broadcast(self, obj: T) -> T:
        """Rank 0's ``obj`` on every rank (pickled; tensors should be on the CPU)."""
        if not self.distributed:
            return obj
        box = [obj]
        with self._collective():
            dist.broadcast_object_list(box, src=0, device=self.device if self.device.type == "cuda" else None)
        return box[0]

    def gather(self, obj: T) -> list[T]:
        """Every rank's ``obj``, in rank order, on every rank."""
        if not self.distributed:
            return [obj]
        out: list[Any] = [None] * self.world_size
        with self._collective():
            dist.all_gather_object(out, obj)
        return out

    def on_main(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on rank 0 only and return its result on every rank; its exception is raised on all.

        This is how only rank 0 touches the filesystem (existence checks,
        loading checkpoints) while every rank takes the same branch.
        """
        if not self.distributed:
            return fn(*args)
        payload: tuple[str, Any] = ("ok", None)
        if self.is_main:
            try:
                payload = ("ok", fn(*args))
            except Exception as err:  # noqa: BLE001 - re-raised on every rank below
                payload = ("error", err)
        kind, value = self.broadcast(payload)
        if kind == "error":
            raise value
        return value

    def check_same(self, obj: Any, what: str) -> None:
        """Raise on every rank when ranks disagree on ``obj`` (e.g. the config: a mistyped launch on one node)."""
        if not self.distributed:
            return
        seen = self.gather(obj)
        differing = [r for r, value in enumerate(seen) if value != seen[0]]
        if differing:
            raise ValueError(f"ranks {differing} have another {what} than rank 0: launch every rank with the same one")

    def failure(self, err: BaseException, where: str) -> DistributedError:
        """A :class:`DistributedError` that says which rank saw what, where, and what it means."""
        return DistributedError(
            f"rank {self.rank} of {self.world_size}: a collective failed {where} ({type(err).__name__}: "
            f"{str(err).strip().splitlines()[0][:300]}). Another rank crashed, hung or was killed: its own log "
            f"has the cause. Collectives give up after {self.timeout:g} s (dist_timeout)."
        )


# No annotations: DDP checks a hook's annotations against the real classes, and this module's are strings.
def _recording_allreduce(ctx, bucket):
    """DDP's averaging of one gradient bucket (sum over the ranks / world size); a failure is recorded in ``ctx``.

    The communication hook of :meth:`Context.wrap`: the same arithmetic as
    DDP's default, plus the state that :meth:`Context.collective_failed` reads.
    """
    buffer = bucket.buffer()
    buffer.div_(ctx.world_size)

    def done(fut):
        try:
            return fut.value()[0]
        except Exception as err:
            ctx._record(err)
            raise

    return dist.all_reduce(buffer, async_op=True).get_future().then(done)


def _device(name: str, local_rank: int, world_size: int) -> torch.device:
    """This rank's device: ``cuda:LOCAL_RANK`` for ``auto`` / ``cuda`` with several processes."""
    if world_size == 1:
        if name == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(name)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return torch.device("cpu")
    if name != "cuda":
        raise ValueError(
            f"device={name!r} with {world_size} processes: give 'auto', 'cuda' or 'cpu' "
            "(each process takes cuda:LOCAL_RANK; restrict the GPUs with CUDA_VISIBLE_DEVICES)"
        )
    if local_rank >= torch.cuda.device_count():
        raise ValueError(f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} CUDA devices are visible")
    return torch.device("cuda", local_rank)


@contextlib.contextmanager
def session(device: str = "auto", timeout: float = 600.0) -> Iterator[Context]:
    """The :class:`Context` of this process; opens (and finally closes) the process group under torchrun.

    Outside torchrun (``WORLD_SIZE`` unset or 1) nothing is initialised. A
    process group that the caller already opened (``torch.multiprocessing``
    tests, notebooks) is used as it is and left open.

    Args:
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` (``cuda:LOCAL_RANK`` per process) or, with one process, any device.
        timeout: Seconds before a collective that waits for a dead or hung rank fails (both backends).

    Yields:
        The context; the backend is NCCL on CUDA devices, gloo on CPU.
    """
    if dist.is_available() and dist.is_initialized():
        rank, world_size = dist.get_rank(), dist.get_world_size()
        local_rank = int(os.environ.get("LOCAL_RANK", rank))
        yield Context(rank, world_size, local_rank, _device(device, local_rank, world_size), timeout)
        return
    rank, world_size, local_rank = world_from_env()
    ctx = Context(rank, world_size, local_rank, _device(device, local_rank, world_size), timeout)
    if world_size == 1:
        yield ctx
        return
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    if ctx.device.type == "cuda":
        torch.cuda.set_device(ctx.device)
    # env:// rendezvous: torchrun sets MASTER_ADDR / MASTER_PORT. The timeout bounds every collective, so a
    # rank waiting for a crashed or hung peer fails instead of hanging (NCCL's watchdog aborts the process).
    dist.init_process_group(
        "nccl" if ctx.device.type == "cuda" else "gloo",
        timeout=datetime.timedelta(seconds=timeout),
        device_id=ctx.device if ctx.device.type == "cuda" else None,
    )
    try:
        yield ctx
    except BaseException:
        _close_group(wait=30.0 if ctx.collective_error is not None else None)
        raise
    # Every rank got here. Meet once more before destroying the group, so that no rank tears its side of the
    # connections down while a peer still uses them or has already exited: without this barrier, on torch
    # 2.4.1 a rank whose peer had finished first hung in destroy_process_group (2 of 19 torchrun runs beside
    # a CPU burner; 0 of 25 with it). gc.collect() frees DDP wrappers left in reference cycles, whose
    # reducers hold the group, while the interpreter is fully alive.
    with ctx._collective():
        dist.barrier()
    gc.collect()
    _close_group(wait=None)


def _close_group(wait: float | None) -> None:
    """Destroy the default process group; after a failed collective give up waiting after ``wait`` seconds.

    With a dead or hung peer, tearing gloo down can block on the failed
    pair's sockets; the error that the caller is about to raise (which names
    the failed rank) matters more than a tidy teardown, so the process group
    is then destroyed in a daemon thread and abandoned if it does not finish.
    """
    if wait is None:
        dist.destroy_process_group()
        return
    closer = threading.Thread(target=dist.destroy_process_group, name="regdakit-close-group", daemon=True)
    closer.start()
    closer.join(wait)
    if closer.is_alive():
        warnings.warn(
            f"the process group did not close within {wait:g} s after a failed collective; abandoned",
            RuntimeWarning,
            stacklevel=3,
        )
