"""What a training run costs in floating-point operations, and in minutes at a given rate.

Used to size the ``gpu-student`` preset (about 20 minutes on one mid-range GPU) before any GPU has run it, and
by notebook 04 to say what a preset will cost before it starts. The operations are *counted*
(:class:`torch.utils.flop_counter.FlopCounterMode`: convolutions and matrix products, forward and backward) on
one real iteration of the method's own step, on the CPU, with a small batch scaled to the preset's: every
counted operation is linear in the batch. Element-wise work (BatchNorm, ReLU, the optimiser) is not counted;
it is a few per cent of a ResNet's.

Turning operations into minutes needs a *sustained* rate, which only a measurement on the machine gives:
:data:`MID_RANGE_GPU_TFLOPS` is an assumption, stated where it is used, and the trainer's progress bar shows
the measured rate once a run starts.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from regdakit.methods import METHODS, contract
from regdakit.training.config import TrainConfig, method_config
from regdakit.training.pretraining import build_model, prepare_for_method

__all__ = [
    "MID_RANGE_GPU_TFLOPS",
    "Phase",
    "RunCost",
    "batch_seconds",
    "evaluation_flops",
    "iteration_flops",
    "run_cost",
    "run_flops",
    "run_seconds",
]

#: Sustained float32 training rate assumed for "one mid-range GPU", in 10^12 operations per second: about 40 %
#: of the float32 peak of an RTX 3060 (12.7) or an RTX 4060 (15.1), the share a ResNet's training typically
#: sustains. An assumption, not a measurement: ``benchmarks/gpu_check.sh`` measures the rate of a real GPU.
MID_RANGE_GPU_TFLOPS = 5.0


def _batch(cfg: TrainConfig, domain: str, size: int, labels: bool) -> dict[str, Any]:
    """One batch of ``size`` images of the trainer's own stream of ``domain`` (augmentation included)."""
    from regdakit.training.streams import make_stream

    return next(iter(make_stream(dataclasses.replace(cfg, batch_size=size), domain, 0, labels)))


def iteration_flops(cfg: TrainConfig, method: str | None = None, batch: int = 2) -> float:
    """Operations of one training iteration of ``method`` (default ``cfg.method``) at ``cfg.batch_size``.

    One iteration of the method's own step (RegDA: steps A, B and C; ERM: one supervised update) is run and
    counted on ``batch`` images per stream, on the CPU, from a fresh model of ``cfg`` (random weights: the
    count does not depend on them), and scaled by ``cfg.batch_size / batch``.

    Args:
        cfg: Gives the model (backbone, heads, image and heatmap sizes), the task and the batch size.
        method: A key of :data:`regdakit.methods.METHODS`, or ``"oracle"`` (ERM).
        batch: Images per stream actually run; 2 is the least BatchNorm accepts in training mode.

    Returns:
        Floating-point operations (multiply and add counted as two).
    """
    name = method or cfg.method
    step_name = "erm" if name == "oracle" else name
    if step_name not in METHODS:
        raise ValueError(f"method must be one of {sorted(METHODS)} or 'oracle', got {name!r}")
    if batch < 2:
        raise ValueError(f"batch must be at least 2 (BatchNorm in training mode), got {batch}")
    cfg = dataclasses.replace(cfg, method=name, device="cpu", backbone_weights=None)
    module = METHODS[step_name]
    model = build_model(cfg, adversarial="head_adv" in getattr(module, "PARTS", ()), load_backbone_weights=False)
    prepare_for_method(model, cfg)
    model.train()
    method_cfg = method_config(cfg)
    optimizers = module.make_optimizers(model, method_cfg)
    batch_s = _batch(cfg, cfg.source_domain, batch, labels=True)
    wants_target = step_name != "erm" and contract.target_images(module)
    batch_t = _batch(cfg, cfg.target_domain, batch, labels=False) if wants_target else None
    settings = {key: getattr(cfg, key) for key in contract.run_settings(module)}
    with FlopCounterMode(display=False) as counter:
        # A late iteration: every warm start is over, so the count is the steady state's.
        module.step(model, batch_s, batch_t, optimizers, method_cfg, 10**6, **settings)
    return counter.get_total_flops() * cfg.batch_size / batch


def evaluation_flops(cfg: TrainConfig, batch: int = 2) -> float:
    """Operations of one evaluation: ``f`` forward on ``cfg.eval_size`` images of each of the two sets."""
    model = build_model(cfg, adversarial=False, load_backbone_weights=False).eval()
    images = _batch(cfg, cfg.target_domain, batch, labels=False)["image"]
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(images)
    return counter.get_total_flops() * 2 * cfg.eval_size / batch


@dataclass(frozen=True)
class Phase:
    """One phase of a run: ``iterations`` steps of ``method`` and the evaluations made during them."""

    method: str  #: "erm" for the source-only pre-training, else the adaptation method
    iterations: int
    flops_per_iteration: float
    target_batches: bool  #: whether each iteration also draws a target batch
    evaluations: int


@dataclass(frozen=True)
class RunCost:
    """The counted parts of a run, each method counted once; :meth:`flops` and :meth:`seconds` add them up."""

    phases: tuple[Phase, ...]
    evaluation_flops: float  #: operations of one evaluation

    def flops(self) -> dict[str, float]:
        """``{"pretrain", "adapt", "evaluation", "total"}``, operations."""
        parts = {
            "pretrain": sum(p.iterations * p.flops_per_iteration for p in self.phases if p.method == "erm"),
            "adapt": sum(p.iterations * p.flops_per_iteration for p in self.phases if p.method != "erm"),
            "evaluation": sum(p.evaluations for p in self.phases) * self.evaluation_flops,
        }
        parts["total"] = sum(parts.values())
        return parts

    def seconds(self, tflops: float, source_batch_s: float, target_batch_s: float) -> dict[str, float]:
        """Seconds of the run: ``{"compute", "data", "total"}``.

        Compute is the operations at a sustained ``tflops`` x 10^12 per second; data is ``source_batch_s``
        (and ``target_batch_s`` where a phase takes a target batch) per iteration, for drawing the batches.
        """
        if not tflops > 0:
            raise ValueError(f"tflops must be positive, got {tflops}")
        compute = self.flops()["total"] / (tflops * 1e12)
        data = sum(p.iterations * (source_batch_s + (target_batch_s if p.target_batches else 0.0)) for p in self.phases)
        return {"compute": compute, "data": data, "total": compute + data}


def run_cost(cfg: TrainConfig, *, pretrain: bool = True, also: tuple[str, ...] = ()) -> RunCost:
    """Count the parts of a run of ``cfg`` (and of ``also``, more adaptation methods from the same model).

    Each method's iteration is counted once (:func:`iteration_flops`, a real step), and one evaluation
    (:func:`evaluation_flops`); start-up and checkpoints are left out.

    Args:
        cfg: An adaptation method's config (then ``pretrain`` decides whether its source-only pre-training
            counts) or ERM / the oracle (the pre-training is the run).
        pretrain: Count the pre-training of ``cfg.pretrain_iterations`` ERM iterations.
        also: Other methods run for ``cfg.adapt_iterations`` from the same pre-trained model (notebook 04 runs
            ``("continue",)`` beside RegDA).
    """
    adapting = cfg.method not in ("erm", "oracle")
    phases = []
    if pretrain or not adapting:
        iterations = cfg.pretrain_iterations
        phases.append(Phase("erm", iterations, iteration_flops(cfg, "erm"), False, -(-iterations // cfg.eval_every)))
    for method in (cfg.method, *also) if adapting else ():
        module = METHODS["erm" if method == "oracle" else method]
        iterations = cfg.adapt_iterations
        phases.append(
            Phase(
                method,
                iterations,
                iteration_flops(cfg, method),
                bool(contract.target_images(module)),
                -(-iterations // cfg.eval_every),
            )
        )
    return RunCost(tuple(phases), evaluation_flops(cfg))


def run_flops(cfg: TrainConfig, *, pretrain: bool = True, also: tuple[str, ...] = ()) -> dict[str, float]:
    """Operations of a whole run of ``cfg``, by part: ``{"pretrain", "adapt", "evaluation", "total"}``.

    Arguments as :func:`run_cost`.
    """
    return run_cost(cfg, pretrain=pretrain, also=also).flops()


def batch_seconds(cfg: TrainConfig, domain: str, labels: bool = True, repeats: int = 3) -> float:
    """Median seconds to draw one batch of ``cfg.batch_size`` from the trainer's stream of ``domain``, here.

    Synthetic batches are rendered on the CPU, one after the other with the GPU's work: on a fast GPU this,
    not the model, can set the pace, so :func:`run_seconds` adds it. Measured on this machine, now.
    """
    import statistics
    import time

    from regdakit.training.streams import make_stream

    stream = iter(make_stream(cfg, domain, 0, labels))
    next(stream)  # the first batch builds caches
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        next(stream)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run_seconds(
    cfg: TrainConfig, tflops: float = MID_RANGE_GPU_TFLOPS, *, pretrain: bool = True, also: tuple[str, ...] = ()
) -> dict[str, float]:
    """Estimated seconds of a run of ``cfg``: ``{"compute", "data", "total"}``.

    Each iteration costs its counted operations at ``tflops`` plus the time, measured here now
    (:func:`batch_seconds`), of drawing its batches; each evaluation its operations. Other arguments as
    :func:`run_cost`.
    """
    if not tflops > 0:
        raise ValueError(f"tflops must be positive, got {tflops}")
    estimate = run_cost(cfg, pretrain=pretrain, also=also)
    source = batch_seconds(cfg, cfg.source_domain, labels=True)
    wants_target = any(p.target_batches for p in estimate.phases)
    target = batch_seconds(cfg, cfg.target_domain, labels=False) if wants_target else 0.0
    return estimate.seconds(tflops, source, target)
