"""The run configuration: :class:`TrainConfig`, its presets, and what a method's step receives.

Everything that defines a run is a :class:`TrainConfig` (a frozen dataclass,
saved as JSON beside the run and inside every checkpoint); variants are
:func:`dataclasses.replace` of a preset of :data:`PRESETS`
(:func:`make_config`) or ``--key=value`` on the command line
(:mod:`regdakit.training.settings`).

>>> cfg = make_config("ci", method="erm")
>>> cfg.backbone, cfg.image_size, cfg.heatmap_size
('tiny', 64, 16)
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from regdakit.data.synthetic import DOMAINS, SKELETONS
from regdakit.methods import METHODS, contract, dan, dann, erm, mcd, regda
from regdakit.models import BACKBONES

__all__ = [
    "ADAPT_METHODS",
    "DEFAULT_SIGMA",
    "LEGACY_SIGMA",
    "PAPER_SIGMA",
    "PRESETS",
    "ROTATION",
    "RUN_METHODS",
    "TASK_DOMAINS",
    "TrainConfig",
    "adapt_methods",
    "check_device",
    "paper_sigma",
    "make_config",
    "method_config",
    "real_datasets",
    "run_methods",
]

#: Default (source, target) domains per task: RHD -> H3D-like hands, SURREAL -> Human3.6M-like bodies.
TASK_DOMAINS = {"hands": ("rendered", "studio"), "bodies": ("synthetic", "lab")}


def adapt_methods() -> tuple[str, ...]:
    """The methods that adapt a source-only pre-training with unlabelled target batches, now.

    Every method of :data:`regdakit.methods.METHODS` but ERM, which trains from scratch on labelled
    batches; read when called, so that a method registered after import is one. ``continue`` and
    ``finetune`` count: they start from the source-only model and train ``adapt_iterations`` (their
    labelled domain and their lack of target images are their own, :mod:`regdakit.methods.contract`).
    """
    return tuple(name for name in METHODS if name != "erm")


def run_methods() -> tuple[str, ...]:
    """What ``--method`` accepts, now: the methods of :data:`regdakit.methods.METHODS` and ``oracle``.

    ``oracle`` is ERM on labelled *target* batches from scratch; ``control`` is RegDA's schedule without
    the adversarial game (:mod:`regdakit.methods.control`); ``continue`` and ``finetune`` train the
    source-only model on for ``adapt_iterations`` on the source (continue-ERM) or on labelled target
    batches (the target fine-tune, an upper bound).
    """
    return ("erm", "oracle", *adapt_methods())


#: :func:`adapt_methods` of the methods registered at import (for help texts and tests).
ADAPT_METHODS = adapt_methods()
#: :func:`run_methods` of the methods registered at import (for help texts and tests).
RUN_METHODS = run_methods()
#: The paper's heatmap Gaussian width, cells of its 64 x 64 maps (256-pixel images).
PAPER_SIGMA = 2.0


def paper_sigma(heatmap_size: int) -> float:
    """The paper's *relative* Gaussian width on a ``heatmap_size`` map: 2 cells on 64, 1 on 32, 0.5 on 16.

    Every preset uses it, so that a Gaussian covers the same share of the object on a CPU-sized map as in
    the paper: 2 cells on a 32 x 32 map (the width of v1) made ``P_F`` cover twice the paper's share of the
    map and lost precision at the PCK@0.05 radius (``docs/source_recipe.md``: 51.0 % against 60.3 % source
    PCK@0.05 after the same 3000 iterations).

    >>> paper_sigma(64), paper_sigma(32), paper_sigma(16)
    (2.0, 1.0, 0.5)
    """
    return PAPER_SIGMA * heatmap_size / 64


#: The default ``sigma``: the paper's relative width on the default 32 x 32 map.
DEFAULT_SIGMA = paper_sigma(32)
#: The width of every run saved before ``sigma`` was a setting (their targets were always 2.0 cells):
#: a saved config without ``sigma`` is read with it, and the pre-training cache key leaves it out.
LEGACY_SIGMA = 2.0
#: Rotation of the training augmentation per task (the reference's recipes: 180 for hands, 30 for bodies).
ROTATION = {"hands": 180.0, "bodies": 30.0}

# Aliases so that the field names ``erm`` / ``regda`` below do not shadow the modules in type hints.
ERMConfig = erm.Config
RegDAConfig = regda.Config
DANConfig = dan.Config
DANNConfig = dann.Config
MCDConfig = mcd.Config

#: The multiple of the reference's adaptation rates (SGD ``lr`` 0.01 for ``psi``, ``head_lr`` 0.1) that the
#: ``cpu-bench`` preset uses for every adaptation method alike: the largest scale at which continue-ERM from
#: the shipped models kept their source-validation PCK within 2 points at every evaluation
#: (``python benchmarks/adapt_rates.py``, :func:`regdakit.tuning.choose_rate_scale`, no target label read).
CPU_BENCH_RATE_SCALE = 0.1


def _adaptation_rates(scale: float) -> dict[str, Any]:
    """Every adaptation section at ``scale`` x the reference's rates, everything else at its default.

    The sections: RegDA's (which DD, the control and continue-ERM use too), DAN's, DANN's and MCD's.
    """
    sections = {"regda": RegDAConfig, "dan": DANConfig, "dann": DANNConfig, "mcd": MCDConfig}
    return {
        name: config(lr=round(config().lr * scale, 10), head_lr=round(config().head_lr * scale, 10))
        for name, config in sections.items()
    }


def real_datasets() -> dict[str, Any]:
    """The real-dataset loaders by name (imported lazily: they pull in PIL and friends)."""
    from regdakit.data.real import DATASETS

    return DATASETS


_DEVICE_HINT = "give auto, cpu, cuda, cuda:N or mps"


def _parse_device(name: str) -> torch.device | None:
    """``None`` for ``"auto"``, else the :class:`torch.device` that ``name`` spells (a ValueError if none)."""
    if name == "auto":
        return None
    try:
        return torch.device(name)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"device {name!r} is not a device: {_DEVICE_HINT}") from None


def check_device(name: str) -> torch.device:
    """The device ``name`` means here, after checking that this machine has it.

    ``"auto"`` is CUDA when available, else the CPU. A device that this torch
    build or machine lacks (``"cuda"`` without a GPU, ``"cuda:3"`` with two)
    is an error that says so, instead of a failure deep inside the first
    ``.to(device)``.

    Raises:
        ValueError: Not a device name, or not available here.
    """
    device = _parse_device(name)
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cpu":
        return device
    if device.type == "cuda":
        if not torch.cuda.is_available():
            why = "this torch build has no CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise ValueError(f"device {name!r}: CUDA is not available here ({why}); use --device=cpu or auto")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device {name!r}: only {torch.cuda.device_count()} CUDA device(s) are visible")
        return device
    if device.type == "mps":
        available = torch.backends.mps.is_available()
    else:
        backend = getattr(torch, device.type, None)
        available = bool(getattr(backend, "is_available", lambda: False)())
    if not available:
        raise ValueError(f"device {name!r} is not available here: {_DEVICE_HINT}")
    return device


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a run. Variants by :func:`dataclasses.replace` or ``--key=value``.

    Attributes:
        task: ``"hands"`` or ``"bodies"``.
        method: One of :data:`RUN_METHODS`: ``"erm"``, ``"oracle"``, ``"regda"``, ``"control"`` or a
            baseline ``"dd"``, ``"mcd"``, ``"dan"``, ``"dann"`` (``"dd_unbounded"``: DD's unbounded Table-2 variant);
            ``"continue"`` (the source-only model trained on the source for ``adapt_iterations`` more: the
            same extra training without a method) or ``"finetune"`` (the same on labelled *target*
            batches: an upper bound).
        source: Source domain: a synthetic domain of the task, or a real dataset name of
            :data:`regdakit.data.real.DATASETS` (then ``source_root`` is its folder);
            ``None`` for the task's default (:data:`TASK_DOMAINS`).
        target: Target domain, likewise (``target_root``).
        source_root: Folder of a real source dataset.
        target_root: Folder of a real target dataset.
        workers: ``DataLoader`` workers for real datasets.
        backbone: A key of :data:`regdakit.models.BACKBONES`.
        backbone_weights: Optional local file of torchvision ImageNet weights (the paper starts from them).
        head_layers: Depth of ``f`` and ``f'`` (2, the reference's RegDA heads).
        image_size: Input side in pixels (a multiple of 32).
        heatmap_size: Heatmap side, ``image_size / 4``.
        sigma: Width (standard deviation) of the heatmap Gaussians, heatmap cells: of the training targets
            (the datasets' heatmaps) *and* of the pseudo-labels of the methods that make them (RegDA, DD).
            Every preset uses :func:`paper_sigma` of its map. The pre-training cache key includes it when
            it is not :data:`LEGACY_SIGMA`.
        batch_size: Images per source batch and per target batch, over all processes: under torchrun each
            of ``W`` processes draws ``batch_size / W`` (so the recipe does not change with the device count).
        pretrain_iterations: Iterations of ERM / oracle, and of the adaptation methods' pre-training.
        adapt_iterations: Iterations of the adaptation method (RegDA, the control, a baseline) after pre-training.
        eval_every: Evaluate every this many iterations (and at the end).
        summary_evals: ``final.json``'s ``summary`` is the mean of the last this many evaluations of the run's
            final phase, beside the last one (``metrics``): a single snapshot of a short run is noisy. With
            ``eval_every`` >= the phase's length there is one evaluation, and the summary says so
            (``"evaluations": 1``); give ``eval_every`` <= ``adapt_iterations / summary_evals`` for a mean.
        checkpoint_every: Write ``last.pt`` and a model snapshot every this many iterations (and at the end).
        log_every: Log mean training losses every this many iterations.
        eval_size: Images per fixed evaluation set.
        augment: Augment training batches (rotation, crop, colour, blur).
        keep_pretrained_head: Carry ``f`` from pre-training into the adaptation (the reference's heads restart
            random).
        init_checkpoint: An adaptation method (RegDA, the control, a baseline, ``continue``, ``finetune``)
            starts from this source-only checkpoint instead of the cached pre-training: the way to adapt a
            shipped model (``--init_checkpoint=data_samples/checkpoints/hands_source_only.pt``, i.e.
            :func:`regdakit.pretrained.checkpoint_path`; half precision is read as float32), or any trainer
            checkpoint or snapshot of an ERM run. Its task, backbone, ``head_layers`` and ``image_size``
            must match this config, and another ``sigma`` is warned of (``pretrain_iterations`` and the
            ``erm`` recipe are then unused). Refused for ``erm`` / ``oracle``, which train from scratch.
        seed: Seeds weights and training streams (evaluation sets are fixed).
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``... Under
            torchrun ``"auto"`` / ``"cuda"`` give each process ``cuda:LOCAL_RANK``. A device this machine
            lacks is an error when the run starts.
        sync_batchnorm: Under torchrun, normalise with the statistics of the global batch
            (:class:`torch.nn.SyncBatchNorm`, CUDA only) instead of each process's share (the default).
            No effect in one process.
        dist_timeout: Under torchrun, seconds a process waits for the others in a collective before the
            run fails with :class:`~regdakit.distributed.DistributedError` (a crashed or hung rank).
        out: Root folder of runs and of the pre-training cache.
        run_name: Folder of this run under ``out``, a plain name (no ``/`` or ``..``); ``None`` for
            ``<task>-<method>-<backbone><size>-seed<seed>``.
        erm: Recipe of ERM, oracle and the adaptation methods' pre-training.
        regda: RegDA's hyper-parameters (also the control's and DD's: :func:`method_config`).
        dan: DAN's hyper-parameters.
        dann: DANN's hyper-parameters.
        mcd: MCD's hyper-parameters.

    A method's hyper-parameters live in the field its module names as ``CONFIG_SECTION`` (default: its
    name in ``METHODS``); a method registered without such a field runs with its ``Config()`` defaults.
    """

    task: str = "hands"
    method: str = "regda"
    source: str | None = None
    target: str | None = None
    source_root: str | None = None
    target_root: str | None = None
    workers: int = 4
    backbone: str = "tiny"
    backbone_weights: str | None = None
    head_layers: int = 2
    image_size: int = 128
    heatmap_size: int = 32
    sigma: float = DEFAULT_SIGMA
    batch_size: int = 16
    pretrain_iterations: int = 2000
    adapt_iterations: int = 2000
    eval_every: int = 250
    summary_evals: int = 3
    checkpoint_every: int = 500
    log_every: int = 50
    eval_size: int = 256
    augment: bool = True
    keep_pretrained_head: bool = True
    init_checkpoint: str | None = None
    seed: int = 0
    device: str = "auto"
    sync_batchnorm: bool = False
    dist_timeout: float = 600.0
    out: str = "runs"
    run_name: str | None = None
    erm: ERMConfig = field(default_factory=ERMConfig)
    regda: RegDAConfig = field(default_factory=RegDAConfig)
    dan: DANConfig = field(default_factory=DANConfig)
    dann: DANNConfig = field(default_factory=DANNConfig)
    mcd: MCDConfig = field(default_factory=MCDConfig)

    def __post_init__(self) -> None:
        if self.task not in TASK_DOMAINS:
            raise ValueError(f"task must be one of {sorted(TASK_DOMAINS)}, got {self.task!r}")
        if self.method not in run_methods():
            raise ValueError(f"method must be one of {run_methods()}, got {self.method!r}")
        _check_method_config(self)
        for name, domain in (("source", self.source_domain), ("target", self.target_domain)):
            real = real_datasets()
            if domain in real:
                if getattr(real[domain], "SKELETON", None) is not SKELETONS[self.task]:  # COCO: no fixed skeleton
                    raise ValueError(f"{name} dataset {domain!r} does not have the {self.task} skeleton")
                if getattr(self, f"{name}_root") is None:
                    raise ValueError(f"{name} {domain!r} is a real dataset: give its folder as {name}_root")
            elif domain not in DOMAINS[self.task]:
                raise ValueError(
                    f"{name} of task {self.task!r} must be one of {sorted(DOMAINS[self.task])} (synthetic) "
                    f"or a real dataset with the {self.task} skeleton, one of "
                    f"{sorted(k for k, v in real.items() if getattr(v, 'SKELETON', None) is SKELETONS[self.task])}; "
                    f"got {domain!r}"
                )
        if self.backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {sorted(BACKBONES)}, got {self.backbone!r}")
        if self.image_size % 32 or self.image_size < 32:
            raise ValueError(f"image_size must be a positive multiple of 32, got {self.image_size}")
        if self.heatmap_size * 4 != self.image_size:
            raise ValueError(
                f"heatmap_size must be image_size / 4 = {self.image_size // 4} (the model's stride), "
                f"got {self.heatmap_size}"
            )
        if isinstance(self.sigma, bool) or not isinstance(self.sigma, (int, float)) or not 0 < self.sigma < math.inf:
            raise ValueError(f"sigma must be a finite number of heatmap cells > 0, got {self.sigma!r}")
        for name in (
            "batch_size",
            "pretrain_iterations",
            "eval_every",
            "summary_evals",
            "checkpoint_every",
            "log_every",
            "eval_size",
            "head_layers",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("adapt_iterations", "workers"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0 < self.dist_timeout < math.inf:
            raise ValueError(f"dist_timeout must be > 0 seconds (and finite), got {self.dist_timeout}")
        _parse_device(self.device)
        if self.run_name is not None and (
            self.run_name in ("", ".", "..", "pretrain") or re.search(r"[/\\\0]", self.run_name)
        ):
            raise ValueError(
                f"run_name must be a plain folder name inside out (no '/', '\\', '..'; not 'pretrain', the cache), "
                f"got {self.run_name!r}"
            )
        if self.init_checkpoint is not None and self.method not in adapt_methods():
            raise ValueError(
                f"init_checkpoint starts an adaptation method ({', '.join(adapt_methods())}) from a source-only "
                f"model; method {self.method!r} trains from scratch and would ignore it: drop init_checkpoint"
            )

    @property
    def source_domain(self) -> str:
        """The source domain, the task's default when ``source`` is ``None``."""
        return self.source or TASK_DOMAINS[self.task][0]

    @property
    def target_domain(self) -> str:
        """The target domain, the task's default when ``target`` is ``None``."""
        return self.target or TASK_DOMAINS[self.task][1]

    @property
    def run_dir(self) -> Path:
        """``<out>/<run_name>``."""
        name = self.run_name or f"{self.task}-{self.method}-{self.backbone}{self.image_size}-seed{self.seed}"
        return Path(self.out) / name


def method_config(cfg: TrainConfig) -> Any:
    """The ``Config`` that the step of ``cfg.method`` receives: its section of ``cfg``.

    The section is the field the method's module names as ``CONFIG_SECTION`` (default: its name in
    :data:`~regdakit.methods.METHODS`): ``regda`` for RegDA, the control and DD, ``dan`` / ``dann`` / ``mcd``
    for theirs, ``erm`` for ERM and the oracle. A method whose section ``cfg`` lacks gets ``Config()``.

    >>> method_config(make_config("ci", method="dd")) is PRESETS["ci"].regda
    True
    """
    name = "erm" if cfg.method == "oracle" else cfg.method
    module = METHODS[name]
    section = contract.config_section(name, module)
    if section in {f.name for f in dataclasses.fields(TrainConfig)}:
        return getattr(cfg, section)
    return module.Config()


def _check_method_config(cfg: TrainConfig) -> None:
    """Let the method refuse a section that is valid for its class but not for it (DD and ``regda.objective``)."""
    name = "erm" if cfg.method == "oracle" else cfg.method
    contract.check_config(METHODS[name], method_config(cfg))


def _milestones(iterations: int) -> tuple[int, ...]:
    # The reference decays at epochs 45 and 60 of 70 (one epoch early in its code).
    return (round(iterations * 45 / 70), round(iterations * 60 / 70))


_CPU_BENCH = TrainConfig(
    image_size=128,
    heatmap_size=32,
    sigma=paper_sigma(32),
    batch_size=16,
    pretrain_iterations=12000,
    adapt_iterations=200,
    eval_every=500,
    checkpoint_every=500,
    log_every=25,
    eval_size=256,
    erm=ERMConfig(optimizer="adam", lr=1e-3, backbone_lr_factor=1.0, weight_decay=0.0, milestones=(9000,)),
    **_adaptation_rates(CPU_BENCH_RATE_SCALE),
)  # the "cpu-bench" preset (its comment in PRESETS), also the base of "gpu-student"


#: Named starting points; ``make_config(name, key=value)`` or ``--preset name --key=value``.
PRESETS: dict[str, TrainConfig] = {
    # Seconds on a CPU: tests, CI and the fast mode of the notebooks.
    "ci": TrainConfig(
        image_size=64,
        heatmap_size=16,
        sigma=paper_sigma(16),
        batch_size=4,
        pretrain_iterations=30,
        adapt_iterations=30,
        eval_every=15,
        checkpoint_every=15,
        log_every=5,
        eval_size=32,
        erm=ERMConfig(milestones=_milestones(30)),
    ),
    # Minutes on a laptop CPU: notebook 04 and the CPU benchmark.
    "cpu-small": TrainConfig(
        image_size=128,
        heatmap_size=32,
        sigma=paper_sigma(32),
        batch_size=16,
        pretrain_iterations=2000,
        adapt_iterations=2000,
        eval_every=250,
        checkpoint_every=500,
        eval_size=256,
        erm=ERMConfig(milestones=_milestones(2000)),
    ),
    # The shipped source-only models (regdakit.pretrained) and the synthetic CPU benchmarks. Deviations from the
    # reference, each for a CPU budget:
    # * Adam at 1e-3 for the from-scratch pre-training, batch 16, 12000 iterations, the rate divided by 10 for the
    #   last quarter: about 34 CPU minutes at one thread (SGD at the reference's rates learns a from-scratch tiny
    #   backbone far more slowly: benchmarks/results/cpu_small_erm_hands.json; the recipe was chosen on the
    #   source validation set alone among the candidates of docs/source_recipe.md);
    # * every adaptation method's SGD at CPU_BENCH_RATE_SCALE x the reference's rates: the shipped models come
    #   from Adam, and at the reference's rates continue-ERM alone cost them up to 12 points of source PCK
    #   (benchmarks/results/adapt_rates.json);
    # * 200 adaptation iterations; the methods' schedules scale with adapt_iterations by default (RegDA's warm
    #   start N = adapt_iterations / 15, the reference's 1000 of 15000 -> 13 here; DANN's reversal horizon the
    #   whole run: regdakit.methods.recipe.horizon), so an --adapt_iterations override keeps their shapes.
    "cpu-bench": _CPU_BENCH,
    # One mid-range GPU, about 20 minutes for notebook 04 (both tasks, both phases, RegDA and continue-ERM): the
    # cpu-bench recipe (its geometry, Adam pre-training, its adaptation rates) with ResNet-18 (ImageNet weights
    # optional: --backbone_weights=PATH) at batch 32. Sized with regdakit.training.cost before any GPU ran it:
    # counted operations at an assumed 5 TFLOP/s plus the measured time of rendering the synthetic batches on the
    # CPU, which sets the pace on a fast GPU (benchmarks/gpu_preset_cost.py). Its accuracy is not yet measured.
    "gpu-student": dataclasses.replace(
        _CPU_BENCH,
        backbone="resnet18",
        batch_size=32,
        pretrain_iterations=3000,
        adapt_iterations=400,
        eval_every=200,
        checkpoint_every=1000,
        erm=dataclasses.replace(_CPU_BENCH.erm, milestones=(2250,)),
    ),
    # The paper's size (a GPU): ResNet-101, 256 -> 64, batch 32, 70 x 500 pre-training and 30 x 500 adaptation
    # iterations. Pass --backbone_weights=PATH for ImageNet initialisation as in the paper (nothing is downloaded).
    "paper": TrainConfig(
        backbone="resnet101",
        image_size=256,
        heatmap_size=64,
        sigma=paper_sigma(64),
        batch_size=32,
        pretrain_iterations=35000,
        adapt_iterations=15000,
        eval_every=500,
        checkpoint_every=2500,
        log_every=100,
        eval_size=512,
        erm=ERMConfig(milestones=(22500, 30000)),
    ),
}


def make_config(preset: str = "cpu-small", **changes: Any) -> TrainConfig:
    """A preset with some fields replaced (nested configs as whole objects: ``regda=regda.Config(...)``)."""
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {sorted(PRESETS)}, got {preset!r}")
    return dataclasses.replace(PRESETS[preset], **changes)
