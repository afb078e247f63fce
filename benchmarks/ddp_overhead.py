"""Cost of distributed training's machinery in one process: the DDP wrapper, and the trainer's single-process path.

Two measurements, one per mode:

* ``--mode wrapper`` (a GPU): RegDA's fused step (or ERM's) on one device,
  on the bare model against the model whose players are each wrapped in
  DistributedDataParallel (:meth:`regdakit.distributed.Context.wrap`) in a
  process group of one rank. Same model, fixed batches (no renderer), blocks
  of steps alternated between the two so drift hits both; median step time,
  source images per second and the ratio. Written to
  ``benchmarks/results/ddp_overhead_gpu.json``; the command of the issue::

      python benchmarks/ddp_overhead.py --device cuda --backbone resnet101 --size 256 --batch 32

  ``--device cpu`` runs the same comparison at a toy size (gloo) to check the
  script; it prints and writes nothing unless ``--name`` is given.

* ``--mode trainer`` (CPU): ``regdakit.train.train`` of this commit against
  the trainer of ``--before`` (the commit before distributed training,
  imported from git into a temporary module), single process, same config,
  runs alternated; median wall and CPU seconds per run and their ratios. Written to
  ``benchmarks/results/ddp_single_process_cpu.json``::

      python benchmarks/ddp_overhead.py --mode trainer --batch 8 --iterations 30 --repeats 3
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import datetime
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
from _record import ROOT, write
from _timing import time_calls

from regdakit import train as T
from regdakit.data.synthetic import SyntheticStream
from regdakit.distributed import Context
from regdakit.methods import erm, regda
from regdakit.models import pose_resnet

#: The last commit without distributed training (its parent is the trainer the single-process path is compared to).
BEFORE = "a083af0"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def wrapper_overhead(args: argparse.Namespace) -> dict:
    """Median step seconds of the bare model and of the DDP-wrapped view, alternated in blocks."""
    device = torch.device(args.device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    store = dist.HashStore()  # one rank: no rendezvous over the network
    dist.init_process_group(backend, store=store, rank=0, world_size=1, timeout=datetime.timedelta(seconds=120))
    method, cfg = (regda, regda.Config()) if args.method == "regda" else (erm, erm.Config())
    k = 21
    base = pose_resnet(args.backbone, k, adversarial=args.method == "regda").to(device)
    stream_s = SyntheticStream("hands", "rendered", args.batch, args.size, 0, heatmap_size=args.size // 4)
    stream_t = SyntheticStream("hands", "studio", args.batch, args.size, 0, labels=False)
    batches = [
        (
            {k: v.to(device) for k, v in next(stream_s).items() if isinstance(v, torch.Tensor)},
            {k: v.to(device) for k, v in next(stream_t).items() if isinstance(v, torch.Tensor)},
        )
        for _ in range(4)
    ]
    runners = {}
    for name in ("bare", "ddp"):
        model = copy.deepcopy(base)
        net = _force_wrap(Context(device=device), model) if name == "ddp" else model
        net.train()
        optimizers = method.make_optimizers(model, cfg)
        counter = iter(range(10**9))

        def step(net=net, optimizers=optimizers, counter=counter):
            i = next(counter)
            batch_s, batch_t = batches[i % len(batches)]
            method.step(net, batch_s, batch_t, optimizers, cfg, i)

        runners[name] = step
    times: dict[str, list[float]] = {"bare": [], "ddp": []}
    for name in runners:  # warm-up (cuDNN autotuning, DDP's bucket rebuild after the first iteration)
        time_calls(runners[name], 1, warmup=3, sync=lambda: _sync(device))
    for _ in range(args.blocks):
        for name, fn in runners.items():
            times[name] += time_calls(fn, args.repeats, warmup=1, sync=lambda: _sync(device))
    dist.destroy_process_group()
    out = {}
    for name, values in times.items():
        median = statistics.median(values)
        out[name] = {"median_s": median, "images_per_s": args.batch / median, "steps": len(values)}
    out["ddp_over_bare"] = out["ddp"]["median_s"] / out["bare"]["median_s"]
    return out


def _force_wrap(ctx: Context, model: torch.nn.Module) -> torch.nn.Module:
    """``ctx.wrap`` even with one rank (the trainer does not wrap then: there is nothing to synchronise)."""
    wide = dataclasses.replace(ctx, world_size=2)  # only `distributed` is read by wrap(); no collective is made
    view = wide.wrap(model)
    assert any(isinstance(m, torch.nn.parallel.DistributedDataParallel) for m in view.children())
    return view


def _trainer_before(rev: str):
    """``regdakit/train.py`` of ``rev`` as a module (it imports the rest of regdakit as it is now)."""
    source = subprocess.run(
        ["git", "show", f"{rev}:regdakit/train.py"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    path = Path(tempfile.mkdtemp()) / "train_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("regdakit_train_before", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def trainer_overhead(args: argparse.Namespace) -> dict:
    """Median seconds of whole single-process runs (ERM, and RegDA from a shared pre-training), old vs new."""
    before = _trainer_before(args.before)
    out_dir = Path(tempfile.mkdtemp())
    base = T.make_config(
        "ci",
        device="cpu",
        batch_size=args.batch,
        pretrain_iterations=args.iterations,
        adapt_iterations=args.iterations,
        eval_every=args.iterations,
        checkpoint_every=args.iterations,
        log_every=10,
        eval_size=32,
        out=str(out_dir),
    )
    T.train(dataclasses.replace(base, method="regda", run_name="warm"), progress=False)  # the shared pre-training
    trainers = {"before": before, "after": T}
    # Wall seconds, and CPU seconds of this process (the trainer runs in it, one thread: on a shared machine the
    # CPU time is what the code costs, the wall time also what the neighbours cost).
    times: dict[str, dict[str, list[float]]] = {m: {"before": [], "after": []} for m in ("erm", "regda")}
    cpu: dict[str, dict[str, list[float]]] = {m: {"before": [], "after": []} for m in ("erm", "regda")}
    for rep in range(args.repeats):
        for method in times:
            for name, module in trainers.items():
                cfg = module.config_from_dict(
                    dataclasses.asdict(dataclasses.replace(base, method=method, run_name=f"{method}-{name}-{rep}"))
                )
                start, start_cpu = time.perf_counter(), time.process_time()
                module.train(cfg, progress=False)
                times[method][name].append(time.perf_counter() - start)
                cpu[method][name].append(time.process_time() - start_cpu)
    result = {}
    for method, by_version in times.items():
        medians = {name: statistics.median(v) for name, v in by_version.items()}
        cpu_medians = {name: statistics.median(v) for name, v in cpu[method].items()}
        result[method] = {
            "wall_s": by_version,
            "cpu_s": cpu[method],
            "median_wall_s": medians,
            "median_cpu_s": cpu_medians,
            "after_over_before_wall": medians["after"] / medians["before"],
            "after_over_before_cpu": cpu_medians["after"] / cpu_medians["before"],
            "iterations_per_run": args.iterations,
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=("wrapper", "trainer"), default="wrapper")
    parser.add_argument("--device", default="cuda", help="wrapper mode: cuda (the measurement) or cpu (a check)")
    parser.add_argument("--method", choices=("regda", "erm"), default="regda", help="wrapper mode: the step timed")
    parser.add_argument("--backbone", default="resnet101")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=10, help="steps per block (wrapper) / runs (trainer)")
    parser.add_argument("--blocks", type=int, default=5, help="wrapper mode: alternated blocks per variant")
    parser.add_argument("--iterations", type=int, default=40, help="trainer mode: iterations per run")
    parser.add_argument("--before", default=BEFORE, help="trainer mode: the commit to compare against")
    parser.add_argument("--name", default=None, help="results file name (default by mode and device)")
    args = parser.parse_args()
    torch.manual_seed(0)
    if args.mode == "wrapper":
        settings = {k: getattr(args, k) for k in ("device", "method", "backbone", "size", "batch", "repeats", "blocks")}
        result = {"settings": settings, "wrapper": wrapper_overhead(args)}
        name = args.name or ("ddp_overhead_gpu" if args.device.startswith("cuda") else None)
    else:  # the trainer runs the "ci" preset on the CPU at --batch, --iterations; the model flags do not apply
        settings = {"device": "cpu", "preset": "ci"} | {k: getattr(args, k) for k in ("batch", "iterations", "repeats")}
        result = {"settings": settings, "before_commit": args.before, "trainer": trainer_overhead(args)}
        name = args.name or "ddp_single_process_cpu"
    print(result)
    if name is not None:
        print("wrote", write(name, result))


if __name__ == "__main__":
    sys.exit(main())
