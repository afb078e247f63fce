"""What notebook 04 costs with the ``gpu-student`` preset (and the ``paper`` preset), before any GPU has run it.

The fair-comparison-v2 issue asks for a GPU preset that a student on one mid-range GPU finishes in about
20 minutes, estimated from FLOPs and measured rates. Notebook 04 with a large preset trains, per task, the
source-only model (``pretrain_iterations`` of ERM), then RegDA and continue-ERM for ``adapt_iterations`` each,
with their evaluations. The estimate (:mod:`regdakit.training.cost`, each method's iteration counted once)
adds up

* the operations of one iteration of each step, *counted* here on the CPU (``torch.utils.flop_counter``);
* a sustained GPU rate, **assumed** (``--tflops``, default
  :data:`regdakit.training.cost.MID_RANGE_GPU_TFLOPS`): no GPU has measured it yet;
* the time of rendering each synthetic batch on the CPU, **measured** here (the trainer draws its batches in
  the training process, between the GPU's steps, so a fast GPU waits for them).

Run it on a quiet machine (the rendering time is a wall time; a busy machine overstates it)::

    python benchmarks/gpu_preset_cost.py [--tflops 5] [--presets gpu-student [paper]]

Writes ``benchmarks/results/gpu_preset_cost.json``.
"""

from __future__ import annotations

import argparse

from _record import write

from regdakit.training import cost, make_config

TASKS = ("hands", "bodies")


def notebook_cost(preset: str, tflops: float) -> dict:
    """Estimated minutes of notebook 04's training with ``preset``, per task and in all."""
    per_task = {}
    for task in TASKS:
        cfg = make_config(preset, task=task, method="regda")
        estimate = cost.run_cost(cfg, also=("continue",))  # each method's iteration counted once
        render = {
            "source": cost.batch_seconds(cfg, cfg.source_domain),
            "target": cost.batch_seconds(cfg, cfg.target_domain, labels=False),
        }
        seconds = estimate.seconds(tflops, render["source"], render["target"])
        per_task[task] = {
            "pretrain_iterations": cfg.pretrain_iterations,
            "adapt_iterations": cfg.adapt_iterations,
            "tflop_per_iteration": {p.method: round(p.flops_per_iteration / 1e12, 3) for p in estimate.phases},
            "run_tflop": {k: round(v / 1e12, 1) for k, v in estimate.flops().items()},
            "render_seconds_per_batch": {k: round(v, 4) for k, v in render.items()},
            "minutes": {k: round(v / 60, 1) for k, v in seconds.items()},
        }
    total = {k: round(sum(t["minutes"][k] for t in per_task.values()), 1) for k in ("compute", "data", "total")}
    cfg = make_config(preset)
    return {
        "backbone": cfg.backbone,
        "image_size": cfg.image_size,
        "batch_size": cfg.batch_size,
        "tasks": per_task,
        "notebook_minutes": total,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--tflops",
        type=float,
        default=cost.MID_RANGE_GPU_TFLOPS,
        help="assumed sustained GPU rate, 10^12 operations per second (default: %(default)s)",
    )
    parser.add_argument("--presets", nargs="+", default=["gpu-student"])
    parser.add_argument("--name", default="gpu_preset_cost")
    args = parser.parse_args()
    result = {
        "assumed_tflops": args.tflops,
        "what": "notebook 04 with a large preset: per task the source-only pre-training, then RegDA and "
        "continue-ERM, with their evaluations. Compute: counted operations at the assumed rate; data: the "
        "synthetic batches rendered on this machine's CPU, measured (start-up and checkpoints left out)",
        "presets": {preset: notebook_cost(preset, args.tflops) for preset in args.presets},
    }
    for preset, entry in result["presets"].items():
        print(preset, entry["notebook_minutes"])
    print("wrote", write(args.name, result))


if __name__ == "__main__":
    main()
