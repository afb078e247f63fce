"""Helpers of tests/test_distributed.py that run inside spawned ranks (importable by name: pytest's pythonpath).

Functions given to ``torch.multiprocessing`` must be importable in a spawned
child process; test modules imported by pytest (``--import-mode=importlib``)
are not, this module is.
"""

from __future__ import annotations

import datetime
import faulthandler
import os
import signal
import socket
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.multiprocessing as mp


def free_port() -> int:
    """A TCP port that is free now (the rendezvous of one launch)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _entry(rank: int, world: int, port: int, job: Callable[..., Any], args: tuple, out: str, init: bool) -> None:
    # Everything this rank prints, and a traceback of every thread on a fatal signal or on SIGUSR1 (the launcher
    # sends it before killing a rank that outlived its time), goes to its own log.
    log = open(Path(out) / f"rank{rank}.log", "w", buffering=1)  # noqa: SIM115 - open for the process's life
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    faulthandler.enable(file=log, all_threads=True)
    faulthandler.register(signal.SIGUSR1, file=log, all_threads=True)
    # torchrun's environment: the trainer's own session() reads it when `init` is False.
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank)
    )
    torch.set_num_threads(1)
    result: dict[str, Any] = {}
    try:
        if init:
            torch.distributed.init_process_group("gloo", timeout=datetime.timedelta(seconds=60))
        result["value"] = job(rank, *args)
    except BaseException as err:  # noqa: BLE001 - reported to the test
        result["error"] = (type(err).__name__, str(err), traceback.format_exc())
    # The result is on disk before any teardown, which can block when a peer died.
    result["time"] = time.monotonic()
    torch.save(result, Path(out) / f"rank{rank}.pt")
    if init and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def launch(
    job: Callable[..., Any],
    args: tuple,
    out: Path,
    world: int = 2,
    init: bool = True,
    wait: float = 240.0,
    grace: float = 30.0,
) -> list[dict[str, Any]]:
    """Run ``job(rank, *args)`` in ``world`` forked processes; each rank's result.

    A result is ``{"value" | "error", "time", "exitcode", "log"}``: the job's
    return value or its exception ``(type name, message, traceback)``, the
    process's exit code and the tail of its output (``rank<r>.log`` in
    ``out``, with faulthandler's tracebacks). A rank that wrote no result has
    ``"error": ("no result", <how it ended>, <log tail>)``.

    ``init``: open a gloo group around the job (else the job's ``train()`` opens it from the environment).
    A rank still alive after ``wait`` seconds, or ``grace`` seconds after rank 0 finished, gets SIGUSR1 (its
    threads' tracebacks go to its log) and is then killed.
    """
    out.mkdir(parents=True, exist_ok=True)
    # fork: the ranks start with torch and regdakit already imported (seconds of CPU each); the parent ran no
    # CUDA and, with one torch thread, no OpenMP pool that a forked child could inherit locked.
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    port = free_port()
    procs = [ctx.Process(target=_entry, args=(r, world, port, job, args, str(out), init)) for r in range(world)]
    for p in procs:
        p.start()
    deadline = time.monotonic() + wait
    procs[0].join(max(0.0, deadline - time.monotonic()))
    for p in procs[1:]:
        p.join(min(grace, max(0.0, deadline - time.monotonic())))
    killed = set()
    for r, p in enumerate(procs):
        if p.is_alive():
            os.kill(p.pid, signal.SIGUSR1)
            time.sleep(1.0)
            p.kill()
            p.join()
            killed.add(r)
    results = []
    for r, p in enumerate(procs):
        path, log = out / f"rank{r}.pt", out / f"rank{r}.log"
        tail = log.read_text(errors="replace")[-4000:] if log.exists() else ""
        if path.exists():
            result = torch.load(path, weights_only=False)
        else:
            how = "killed after its time was up" if r in killed else f"exited with code {p.exitcode}"
            result = {"error": ("no result", how, tail)}
        result.update(exitcode=p.exitcode, log=tail)
        results.append(result)
    return results


# ----------------------------------------------------------------- jobs


def train_runs(rank: int, configs: dict[str, Any], out_root: str, eval_cfg: Any) -> dict[str, Any]:
    """Train every config in order, then :func:`sharded_evaluation` of ``eval_cfg`` (under ``"eval"``).

    Each rank trains with its own ``out`` (``out_root/rank<r>``): rank 0 alone may write anything.
    """
    import dataclasses

    from regdakit import train as T

    results = {}
    for name, (cfg, kwargs) in configs.items():
        cfg = dataclasses.replace(cfg, out=str(Path(out_root) / f"rank{rank}"))
        results[name] = T.train(cfg, progress=False, **kwargs)
    results["eval"] = sharded_evaluation(rank, eval_cfg)
    return results


def sharded_evaluation(rank: int, cfg: Any) -> dict[str, dict[str, float]]:
    """The trainer's sharded evaluation of a freshly built (identical on every rank) model."""
    from regdakit import distributed
    from regdakit import train as T
    from regdakit.data.synthetic import SKELETONS

    model = T.build_model(cfg, adversarial=False, seed=0)
    with distributed.session("cpu") as ctx:
        skeleton = SKELETONS[cfg.task]
        return {
            name: T.evaluate_sharded(model, T.shard_eval_set(data, ctx), skeleton, ctx)
            for name, data in T.make_eval_sets(cfg).items()
        }


def failing_rank(rank: int, cfg: Any, how: str) -> dict[str, Any]:
    """Train ERM; rank 1 crashes (``how="crash"``) or hangs (``"hang"``) at iteration 2.

    Returns rank 0's error ``(type name, message)`` and the seconds from its iteration 2 to the error.
    """
    from regdakit import train as T
    from regdakit.methods import erm

    real_step, reached = erm.step, {}

    def step(model, batch_s, batch_t, optimizers, method_cfg, it):
        if it == 2:
            reached["time"] = time.monotonic()
            if rank == 1:
                if how == "crash":
                    os._exit(3)
                time.sleep(600)
        return real_step(model, batch_s, batch_t, optimizers, method_cfg, it)

    erm.step = step
    try:
        T.train(cfg, progress=False)
    except Exception as err:  # noqa: BLE001 - the test looks at it
        return {"error": (type(err).__name__, str(err)), "waited": time.monotonic() - reached["time"]}
    return {"error": None}
