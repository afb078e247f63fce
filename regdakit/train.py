"""The trainer: source-only pre-training, adaptation, evaluation, checkpoints, exact resume.

One loop runs every method of :data:`regdakit.methods.METHODS`; what differs
between runs is a :class:`TrainConfig` (a frozen dataclass, saved as JSON
beside the run and inside every checkpoint). Methods of a run:

* ``erm``: source-only supervised training (``pretrain_iterations`` iterations);
* ``oracle``: the same, trained on *labelled target* batches;
* ``regda``: source-only pre-training (the ERM recipe, ``pretrain_iterations``),
  then ``adapt_iterations`` of RegDA on labelled source and *unlabelled* target batches;
* ``control``: the same pre-training and schedule with the adversarial game off
  (:mod:`regdakit.methods.control`), the benchmark's control;
* ``dd``, ``mcd``, ``dan``, ``dann``: the baselines of the paper's Table 1, from the same pre-training
  with the same optimiser and schedule (:mod:`regdakit.methods.recipe`); RegDA's Table-2 variants are
  ``regda`` with ``--regda.objective=dd`` (the same as ``dd``) or ``false_max``.

``init_checkpoint`` starts ``regda`` / ``control`` from a given source-only
model (e.g. a shipped one) instead of pre-training.

The pre-training of a RegDA run is cached per (task, source, seed, recipe) in
``<out>/pretrain/`` and shared by every run that needs it (the reference
repeats its 70 epochs in every run). Unlike the reference, whose heads restart
from random weights after pre-training because of a key mismatch
(REFERENCE.md §1.3), regdakit carries ``psi`` *and* the main head ``f`` over,
as the paper describes ("after source-only pre-training of psi and f"); ``f'``
starts random in both. ``keep_pretrained_head=False`` restores the
reference's behaviour.

Evaluation: PCK@0.05 and PCK@0.1 per keypoint group on fixed synthetic sets
(source ``val`` and target ``test``, rendered with seed 0 so every run sees the
same images) every ``eval_every`` iterations and at the end. Reported numbers
are the last iteration's; no checkpoint is ever chosen by target labels.

Files of a run directory ``<out>/<run_name>/``: ``config.json`` (the
settings that run), ``metrics.jsonl`` (one JSON object per line: training
losses and evaluations), ``last.pt`` (everything needed to resume),
``iter_XXXXXXX.pt`` (periodic model-only snapshots), ``final.json`` and
``.lock``. The pre-training cache keeps only ``last.pt`` (to resume),
``model.pt``, its log and its ``.lock``.

Concurrent runs: every file is written through a temporary file of its own
(``.<name>.<pid>.<random>.tmp``, removed when a write fails) and renamed into
place; a log line is one append. A run holds its folder's lock (a second
process on the same folder stops with :class:`RunInUseError`), and runs that
need the same pre-training at once take turns on the cache's lock: one trains
it, the others wait (saying so on stderr) and read its ``model.pt``.

Resume refuses settings that differ from the ones the run ran with
(:class:`ResumeError` lists them); ``resume_allow`` lets those of
:data:`RESUME_SAFE` change. A model whose weights or BatchNorm statistics
became NaN/Inf is never evaluated or checkpointed (:class:`NonFiniteStateError`).

Under ``torchrun`` the same :func:`train` runs in every process and trains
with DistributedDataParallel (:mod:`regdakit.distributed`,
``docs/distributed.md``): ``batch_size`` is the global batch, each rank draws
its share from its own streams, and rank 0 alone writes the files above.

>>> cfg = make_config("ci", method="erm")
>>> cfg.backbone, cfg.image_size, cfg.heatmap_size
('tiny', 64, 16)
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import inspect
import json
import math
import os
import re
import secrets
import sys
import types
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Union, get_args, get_origin, get_type_hints

try:
    import fcntl
except ImportError:  # Windows: no flock (see _locked)
    fcntl = None  # type: ignore[assignment]

import torch
from tqdm.auto import tqdm

from regdakit import distributed
from regdakit._validation import value_checks
from regdakit.data.streams import LoaderStream, eval_batches
from regdakit.data.synthetic import DOMAINS, GENERATOR_VERSION, SKELETONS, SyntheticStream, make_dataset
from regdakit.data.transforms import Augment
from regdakit.distributed import Context, DistributedError
from regdakit.heatmaps import decode
from regdakit.keypoints import Skeleton
from regdakit.methods import METHODS, dan, dann, erm, mcd, regda
from regdakit.metrics import pck, pck_threshold
from regdakit.models import BACKBONES, GradientScale, PoseResNet, pose_resnet

__all__ = [
    "CheckpointError",
    "DistributedError",
    "NonFiniteLossError",
    "NonFiniteStateError",
    "PRESETS",
    "ADAPT_METHODS",
    "RESUME_SAFE",
    "RUN_METHODS",
    "ResumeError",
    "RunFileError",
    "RunInUseError",
    "TASK_DOMAINS",
    "TrainConfig",
    "apply_overrides",
    "attribute_docs",
    "check_device",
    "config_from_dict",
    "config_from_file",
    "evaluate",
    "evaluate_checkpoint",
    "load_checkpoint",
    "make_config",
    "make_eval_sets",
    "method_config",
    "make_stream",
    "override_types",
    "parse_value",
    "replace_values",
    "setting_choices",
    "setting_docs",
    "train",
]

#: Default (source, target) domains per task: RHD -> H3D-like hands, SURREAL -> Human3.6M-like bodies.
TASK_DOMAINS = {"hands": ("rendered", "studio"), "bodies": ("synthetic", "lab")}
#: What ``--method`` accepts: ``oracle`` is ERM on labelled target batches; ``control`` is RegDA's
#: schedule without the adversarial game (:mod:`regdakit.methods.control`).
RUN_METHODS = ("erm", "oracle", "regda", "control", "dd", "mcd", "dan", "dann")
#: The methods that adapt a source-only pre-training with unlabelled target batches.
ADAPT_METHODS = ("regda", "control", "dd", "mcd", "dan", "dann")
#: Rotation of the training augmentation per task (the reference's recipes: 180 for hands, 30 for bodies).
ROTATION = {"hands": 180.0, "bodies": 30.0}

# Aliases so that the field names ``erm`` / ``regda`` below do not shadow the modules in type hints.
ERMConfig = erm.Config
RegDAConfig = regda.Config
DANConfig = dan.Config
DANNConfig = dann.Config
MCDConfig = mcd.Config


def _real_datasets() -> dict[str, Any]:
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
            baseline ``"dd"``, ``"mcd"``, ``"dan"``, ``"dann"``.
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
        batch_size: Images per source batch and per target batch, over all processes: under torchrun each
            of ``W`` processes draws ``batch_size / W`` (so the recipe does not change with the device count).
        pretrain_iterations: Iterations of ERM / oracle, and of RegDA's pre-training.
        adapt_iterations: RegDA iterations after pre-training.
        eval_every: Evaluate every this many iterations (and at the end).
        checkpoint_every: Write ``last.pt`` and a model snapshot every this many iterations (and at the end).
        log_every: Log mean training losses every this many iterations.
        eval_size: Images per fixed evaluation set.
        augment: Augment training batches (rotation, crop, colour, blur).
        keep_pretrained_head: Carry ``f`` from pre-training into RegDA (the reference's heads restart random).
        init_checkpoint: An adaptation method (RegDA, the control, a baseline) starts from this source-only
            checkpoint (a trainer checkpoint or snapshot of an ERM run, e.g. the shipped ones of
            :mod:`regdakit.pretrained`) instead of pre-training; its architecture and task must match this
            config. Refused for ``erm`` / ``oracle``, which train from scratch.
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
        erm: Recipe of ERM, oracle and RegDA's pre-training.
        regda: RegDA's hyper-parameters (also the control's and DD's: :func:`method_config`).
        dan: DAN's hyper-parameters.
        dann: DANN's hyper-parameters.
        mcd: MCD's hyper-parameters.
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
    batch_size: int = 16
    pretrain_iterations: int = 2000
    adapt_iterations: int = 2000
    eval_every: int = 250
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
        if self.method not in RUN_METHODS:
            raise ValueError(f"method must be one of {RUN_METHODS}, got {self.method!r}")
        if self.method == "dd" and self.regda.objective not in ("regda", "dd"):
            raise ValueError(
                f"method 'dd' fixes regda.objective to 'dd'; got regda.objective={self.regda.objective!r} "
                "(run --method regda for the other Table-2 variants)"
            )
        for name, domain in (("source", self.source_domain), ("target", self.target_domain)):
            real = _real_datasets()
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
        for name in (
            "batch_size",
            "pretrain_iterations",
            "eval_every",
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
        if self.init_checkpoint is not None and self.method not in ADAPT_METHODS:
            raise ValueError(
                f"init_checkpoint starts an adaptation method ({', '.join(ADAPT_METHODS)}) from a source-only "
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


def _milestones(iterations: int) -> tuple[int, ...]:
    # The reference decays at epochs 45 and 60 of 70 (one epoch early in its code, REFERENCE.md §1.3).
    return (round(iterations * 45 / 70), round(iterations * 60 / 70))


#: Named starting points; ``make_config(name, key=value)`` or ``--preset name --key=value``.
PRESETS: dict[str, TrainConfig] = {
    # Seconds on a CPU: tests, CI and the fast mode of the notebooks.
    "ci": TrainConfig(
        image_size=64,
        heatmap_size=16,
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
        batch_size=16,
        pretrain_iterations=2000,
        adapt_iterations=2000,
        eval_every=250,
        checkpoint_every=500,
        eval_size=256,
        erm=ERMConfig(milestones=_milestones(2000)),
    ),
    # The synthetic CPU benchmark (benchmarks/synthetic_benchmark.py: 2 tasks x 3 seeds x 5 methods in about an
    # hour on 2 cores) and the shipped source-only models. Deviations from the reference, each for a short run:
    # * Adam at a constant 1e-3 for the from-scratch pre-training (SGD at the reference's rates learns a
    #   from-scratch tiny backbone far more slowly: benchmarks/results/cpu_small_erm_hands.json; decaying at
    #   45/70 of so short a run stopped it early: source PCK@0.05 15.5 instead of 21.7 at 500 iterations);
    # * the gradient-scaling warm start shortened in proportion to the schedule: the reference's N = 1000
    #   for 15000 adaptation iterations -> 13 for 200 (with N = 1000, lambda < 0.01 for the whole run).
    "cpu-bench": TrainConfig(
        image_size=128,
        heatmap_size=32,
        batch_size=32,
        pretrain_iterations=600,
        adapt_iterations=200,
        eval_every=100,
        checkpoint_every=200,
        log_every=25,
        eval_size=256,
        erm=ERMConfig(optimizer="adam", lr=1e-3, backbone_lr_factor=1.0, weight_decay=0.0),
        regda=RegDAConfig(warmup_iterations=round(1000 * 200 / 15000)),
        dann=DANNConfig(reversal_iterations=200),  # DANN's lambda schedule spans the run, as in its paper
    ),
    # The paper's size (a GPU): ResNet-101, 256 -> 64, batch 32, 70 x 500 pre-training and 30 x 500 adaptation
    # iterations. Pass --backbone_weights=PATH for ImageNet initialisation as in the paper (nothing is downloaded).
    "paper": TrainConfig(
        backbone="resnet101",
        image_size=256,
        heatmap_size=64,
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


def method_config(cfg: TrainConfig) -> Any:
    """The ``Config`` that the step of ``cfg.method`` receives.

    ``regda`` and ``control`` use ``cfg.regda``; ``dd`` uses ``cfg.regda`` with ``objective="dd"``;
    ``dan`` / ``dann`` / ``mcd`` their own field; ``erm`` and ``oracle`` use ``cfg.erm``.

    >>> method_config(make_config("ci", method="dd")).objective
    'dd'
    """
    if cfg.method in ("erm", "oracle"):
        return cfg.erm
    if cfg.method in ("regda", "control"):
        return cfg.regda
    if cfg.method == "dd":
        return dataclasses.replace(cfg.regda, objective="dd")
    return getattr(cfg, cfg.method)


def _prepare(model: PoseResNet, cfg: TrainConfig) -> PoseResNet:
    """Let the method attach its own modules (DANN's discriminator) before optimisers or weights are loaded."""
    prepare = getattr(METHODS.get(cfg.method), "prepare", None)
    if prepare is not None:
        prepare(model, method_config(cfg))
    return model


def make_config(preset: str = "cpu-small", **changes: Any) -> TrainConfig:
    """A preset with some fields replaced (nested configs as whole objects: ``regda=regda.Config(...)``)."""
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {sorted(PRESETS)}, got {preset!r}")
    return dataclasses.replace(PRESETS[preset], **changes)


# --------------------------------------------------------------------------
# --key=value overrides, type-checked against the dataclass fields.
# --------------------------------------------------------------------------


def override_types(cls: type = TrainConfig, prefix: str = "") -> dict[str, Any]:
    """Every settable key (nested ones as ``regda.margin``) -> its type."""
    out: dict[str, Any] = {}
    hints = get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            out.update(override_types(tp, f"{prefix}{f.name}."))
        else:
            out[f"{prefix}{f.name}"] = tp
    return out


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def parse_value(key: str, text: str, tp: Any) -> Any:
    """Parse the text of ``--key=text`` as type ``tp``; a ``ValueError`` names the key and the type."""
    origin = get_origin(tp)
    try:
        if origin in (Union, types.UnionType):
            args = [a for a in get_args(tp) if a is not type(None)]
            if text.strip().lower() in ("none", "null"):
                return None
            return parse_value(key, text, args[0])
        if tp is bool:
            lowered = text.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if tp is int:
            return int(text)
        if tp is float:
            return float(text)
        if tp is str:
            return text
        if origin is tuple:
            item = get_args(tp)[0]
            parts = [p for p in text.split(",") if p.strip()]
            return tuple(parse_value(key, p, item) for p in parts)
    except ValueError:
        raise ValueError(f"--{key} expects {_type_name(tp)}, got {text!r}") from None
    raise TypeError(f"--{key}: unsupported field type {_type_name(tp)}")


def apply_overrides(cfg: TrainConfig, overrides: Mapping[str, str]) -> TrainConfig:
    """``cfg`` with ``{"batch_size": "8", "regda.margin": "2"}`` applied, each value parsed by its field's type.

    Raises:
        ValueError: Unknown key, unparsable value, or a value the config rejects.
    """
    known = override_types()
    unknown = sorted(set(overrides) - set(known))
    if unknown:
        raise ValueError(f"unknown setting --{unknown[0]}; known: {', '.join(sorted(known))}")
    return replace_values(cfg, {key: parse_value(key, text, known[key]) for key, text in overrides.items()})


def replace_values(cfg: TrainConfig, values: Mapping[str, Any]) -> TrainConfig:
    """``cfg`` with already-typed values replaced, nested keys as ``"regda.margin"``."""
    top: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {}
    for key, value in values.items():
        if "." in key:
            outer, inner = key.split(".", 1)
            nested.setdefault(outer, {})[inner] = value
        else:
            top[key] = value
    for outer, changes in nested.items():
        try:
            top[outer] = dataclasses.replace(getattr(cfg, outer), **changes)
        except (TypeError, ValueError) as err:  # name the section: "erm.gamma must be ...", not "gamma must be ..."
            raise type(err)(f"{outer}.{err}") from None
    return dataclasses.replace(cfg, **top)


def config_from_dict(data: Mapping[str, Any], cls: type = TrainConfig) -> Any:
    """Rebuild a (nested) config from ``dataclasses.asdict`` / JSON (lists become tuples)."""
    hints = get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        value, tp = data[f.name], hints[f.name]
        if dataclasses.is_dataclass(tp):
            value = config_from_dict(value, tp)
        elif get_origin(tp) is tuple:
            value = tuple(value)
        kwargs[f.name] = value
    return cls(**kwargs)


def _flat(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"regda": {"lr": 0.01}}`` -> ``{"regda.lr": 0.01}``."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, Mapping):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def config_from_file(path: str | os.PathLike) -> TrainConfig:
    """The :class:`TrainConfig` a run saved in its ``config.json``, to run it again or a variant of it.

    Every key must be a setting this version knows (a setting silently dropped would not re-run the same
    run); settings missing from the file take their defaults.

    Raises:
        FileNotFoundError: No such file.
        ValueError: A directory, not JSON, not a config, an unknown setting or an invalid value.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"config {path} is a directory: give the config.json in it")
    if not path.is_file():
        raise FileNotFoundError(f"config {path} does not exist")
    data = _read_json(path, f"config {path} is not JSON")
    if not isinstance(data, dict):
        raise ValueError(f"config {path} holds a JSON {type(data).__name__}, not the object of a config.json")
    unknown = sorted(set(_flat(data)) - set(override_types()))
    if unknown:
        raise ValueError(f"config {path} has settings this version does not know: {', '.join(unknown)}")
    try:
        return config_from_dict(data)
    except (TypeError, ValueError) as err:
        raise ValueError(f"config {path}: {err}") from None


# --------------------------------------------------------------------------
# Help text of the settings, generated from the config dataclasses.
# --------------------------------------------------------------------------


def attribute_docs(cls: type) -> dict[str, str]:
    """The ``Attributes:`` section of ``cls``'s Google-style docstring (and its bases'): name -> text on one line.

    >>> attribute_docs(regda.Config)["margin"]
    'Weight of ``L_T`` on the source in step A (times ``trade_off``).'
    """
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):  # a subclass's text wins over its base's
        lines = inspect.cleandoc(klass.__dict__.get("__doc__") or "").splitlines()
        if "Attributes:" not in lines:
            continue
        name = None
        for line in lines[lines.index("Attributes:") + 1 :]:
            if line and not line.startswith(" "):  # the next section
                break
            match = re.match(r" {4}(\w+): (.*)", line)
            if match:
                name, docs[match.group(1)] = match.group(1), match.group(2).strip()
            elif name is not None and line.strip():
                docs[name] += " " + line.strip()
    return docs


def _plain(text: str) -> str:
    """Docstring markup as plain text: ``:data:`~a.B``` -> ``B``, double backquotes dropped."""
    text = re.sub(r":\w+:`~[\w.]*?(\w+)`", r"\1", text)
    text = re.sub(r":\w+:`([^`]+)`", r"\1", text)
    return text.replace("``", "")


def setting_docs() -> dict[str, str]:
    """Every setting of :func:`override_types` -> its description from the dataclass docstrings, as plain text."""
    docs = {key: _plain(text) for key, text in attribute_docs(TrainConfig).items()}
    hints = get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        if dataclasses.is_dataclass(hints[f.name]):
            docs.update({f"{f.name}.{k}": _plain(v) for k, v in attribute_docs(hints[f.name]).items()})
    real = sorted(_real_datasets())
    synthetic = "; ".join(f"{task}: {', '.join(sorted(DOMAINS[task]))}" for task in TASK_DOMAINS)
    for key in ("source", "target"):
        docs[key] += f" Synthetic domains: {synthetic}. Real datasets: {', '.join(real)}."
    return docs


def setting_choices() -> dict[str, tuple[str, ...]]:
    """The settings that take one of a fixed set of values -> those values.

    >>> setting_choices()["method"] == RUN_METHODS
    True
    """
    choices: dict[str, tuple[str, ...]] = {
        "task": tuple(TASK_DOMAINS),
        "method": RUN_METHODS,
        "backbone": tuple(BACKBONES),
        "erm.loss": erm.LOSSES,
        "erm.optimizer": erm.OPTIMIZERS,
        "regda.objective": tuple(regda.OBJECTIVES),
    }
    for name in ("regda", "dan", "dann", "mcd"):
        choices[f"{name}.source_loss"] = erm.LOSSES
    return choices


# --------------------------------------------------------------------------
# Data: (task, domain) -> training streams and fixed evaluation sets.
# Only the synthetic domains exist yet; real datasets plug in here.
# --------------------------------------------------------------------------


def _root(cfg: TrainConfig, domain: str) -> str:
    return cfg.source_root if domain == cfg.source_domain else cfg.target_root  # type: ignore[return-value]


def make_stream(
    cfg: TrainConfig, domain: str, seed: int, labels: bool, *, rank: int = 0, world_size: int = 1
) -> Iterator[dict[str, Any]]:
    """An endless batch stream of ``domain``; unlabelled streams yield only ``image`` and ``meta``.

    Synthetic domains render fresh batches; real datasets are shuffled per
    epoch by a :class:`regdakit.data.streams.LoaderStream` over their
    ``train`` split (augmented per item in the workers).

    With ``world_size`` processes, each stream yields ``cfg.batch_size / world_size``
    images; on a real dataset rank ``rank`` draws from its own shard (items
    ``rank, rank + world_size, ...``), so one epoch of all ranks covers the set
    once. The caller gives each rank its own ``seed``
    (:func:`regdakit.distributed.stream_seed`).

    Raises:
        ValueError: ``cfg.batch_size`` is not a multiple of ``world_size``.
    """
    if cfg.batch_size % world_size:
        raise ValueError(
            f"batch_size {cfg.batch_size} (the global batch) must be a multiple of the {world_size} processes"
        )
    batch_size = cfg.batch_size // world_size
    augment = Augment(rotation=ROTATION[cfg.task]) if cfg.augment else None
    real = _real_datasets()
    if domain in real:
        dataset = real[domain](
            _root(cfg, domain),
            "train",
            image_size=cfg.image_size,
            heatmap_size=cfg.heatmap_size if labels else None,
            transform=augment,
            labels=labels,
        )
        if world_size > 1:
            dataset = torch.utils.data.Subset(dataset, range(rank, len(dataset), world_size))
        return LoaderStream(dataset, batch_size, seed, cfg.workers)
    return SyntheticStream(
        cfg.task,
        domain,
        batch_size,
        cfg.image_size,
        seed,
        heatmap_size=cfg.heatmap_size if labels else None,
        augment=augment,
        labels=labels,
    )


def make_eval_sets(cfg: TrainConfig) -> dict[str, Iterable[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]]:
    """``{"source_val", "target_test"}`` -> re-iterable ``(images, keypoints in pixels, visible)`` batches.

    Synthetic domains: fixed sets of ``eval_size`` images (seed 0, split
    ``val`` for the source, ``test`` for the target). Real datasets: the
    whole ``test`` split (the reference validates its source on the source
    test split too).
    """
    sets = {"source_val": (cfg.source_domain, "val"), "target_test": (cfg.target_domain, "test")}
    real = _real_datasets()
    out: dict[str, Iterable[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]] = {}
    for name, (domain, split) in sets.items():
        if domain in real:
            dataset = real[domain](_root(cfg, domain), "test", image_size=cfg.image_size)
            out[name] = eval_batches(dataset, batch_size=64, workers=cfg.workers)
        else:
            images, keypoints, visible = make_dataset(
                cfg.task, domain, split, cfg.image_size, cfg.eval_size, seed=0
            ).tensors()
            out[name] = list(zip(images.split(64), keypoints.split(64), visible.split(64), strict=True))
    return out


def _to(batch: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


@torch.no_grad()
def evaluate(
    model: PoseResNet,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
    skeleton: Skeleton,
) -> dict[str, float]:
    """PCK@0.05 and PCK@0.1 per group of ``f``'s decoded predictions, in eval mode (running BatchNorm statistics).

    Args:
        model: The detector (left in eval mode; the caller switches back).
        batches: ``(images (b, 3, S, S) in [0, 1], keypoints (b, K, 2) in pixels, visible (b, K))``
            batches, e.g. from :func:`make_eval_sets`.
        skeleton: Gives the groups.

    Returns:
        ``{"pck@0.05/all": ..., "pck@0.05/<group>": ..., "pck@0.1/...": ...}``; PCK is computed
        over all valid pairs of the whole set, not averaged over batches.
    """
    return _pck_metrics(*_predict(model, batches), skeleton)


@torch.no_grad()
def _predict(
    model: PoseResNet, batches: Iterable[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """``f``'s decoded predictions in eval mode: ``(pred (N, K, 2), gt (N, K, 2), visible (N, K), side)``.

    Positions are in heatmap cells; ``side`` is the heatmap side (0 when ``batches`` is empty).
    """
    model.eval()
    device = next(model.parameters()).device
    preds, gts, vis, side = [], [], [], 0
    for images, keypoints, visible in batches:
        y = model.head(model.features(images.to(device)))  # (b, K, H, W); f only
        side = y.shape[-1]
        preds.append(decode(y.float())[0].cpu())  # (b, K, 2) heatmap cells
        gts.append(keypoints.float() * (side / images.shape[-1]))  # pixels -> heatmap cells
        vis.append(visible.bool())
    if not preds:
        return torch.zeros(0, 0, 2), torch.zeros(0, 0, 2), torch.zeros(0, 0, dtype=torch.bool), 0
    return torch.cat(preds), torch.cat(gts), torch.cat(vis), side


def _pck_metrics(
    pred: torch.Tensor, gt: torch.Tensor, visible: torch.Tensor, side: int, skeleton: Skeleton
) -> dict[str, float]:
    """PCK@0.05 and PCK@0.1 per group over all ``(N, K)`` pairs (positions in heatmap cells of side ``side``)."""
    out: dict[str, float] = {}
    for alpha in (0.05, 0.1):
        result = pck(pred, gt, visible, pck_threshold(side, alpha), skeleton)
        out.update({f"pck@{alpha}/{group}": value for group, value in result.per_group.items()})
    return out


# --------------------------------------------------------------------------
# Checkpoints: atomic, complete.
# --------------------------------------------------------------------------


def _evaluate_sharded(
    model: PoseResNet,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
    skeleton: Skeleton,
    ctx: Context,
) -> dict[str, float]:
    """:func:`evaluate` with ``batches`` (this rank's shard) predicted here and the predictions of all ranks gathered.

    Every rank predicts its contiguous shard (:func:`_shard`); the gathered
    predictions, in rank order, are the whole set once, and PCK is computed
    over them as :func:`evaluate` computes it in one process. Every rank
    returns the same numbers.
    """
    if not ctx.distributed:
        return evaluate(model, batches, skeleton)
    parts = [p for p in ctx.gather(_predict(model, batches)) if p[3] > 0]  # drop empty shards
    pred, gt, visible = (torch.cat([p[i] for p in parts]) for i in range(3))
    return _pck_metrics(pred, gt, visible, parts[0][3], skeleton)


def _shard(batches: Iterable[tuple[torch.Tensor, ...]], ctx: Context) -> Iterable[tuple[torch.Tensor, ...]]:
    """This rank's contiguous share of an evaluation set of :func:`make_eval_sets` (all of it in one process)."""
    if not ctx.distributed:
        return batches
    if isinstance(batches, eval_batches):  # a real dataset's test split: a shard of the dataset
        lo, hi = distributed.shard_range(len(batches.dataset), ctx.rank, ctx.world_size)
        subset = torch.utils.data.Subset(batches.dataset, range(lo, hi))
        return eval_batches(subset, batch_size=batches.batch_size, workers=batches.workers)
    images, keypoints, visible = (torch.cat(parts) for parts in zip(*batches, strict=True))
    lo, hi = distributed.shard_range(len(images), ctx.rank, ctx.world_size)
    return list(zip(images[lo:hi].split(64), keypoints[lo:hi].split(64), visible[lo:hi].split(64), strict=True))


class NonFiniteLossError(RuntimeError):
    """A loss became NaN or Inf; the run stops and its last good checkpoint is kept."""


class NonFiniteStateError(NonFiniteLossError):
    """The model's weights or buffers (e.g. BatchNorm running variances) became NaN or Inf; no checkpoint holds them."""


class CheckpointError(ValueError):
    """A checkpoint cannot be used: empty, truncated, not written by ``torch.save``, or not a regdakit one that fits."""


class RunInUseError(ValueError):
    """Another process is writing the same run folder."""


class RunFileError(OSError):
    """A file or folder of a run cannot be created, written or read; the message names it and says why.

    ``errno`` is the operating system's (``errno.ENOSPC`` for a full disk), when there is one.
    """


def _read_json(path: Path, not_json: str, consequence: str = "") -> Any:
    """The JSON in ``path``; ``ValueError("<not_json> (<parser error>)[: <consequence>]")`` when it is not JSON.

    Raises:
        ValueError: Not UTF-8 or not JSON.
        RunFileError: The file cannot be read (:func:`_file_error`).
    """
    try:
        return json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{not_json} ({err})" + (f": {consequence}" if consequence else "")) from None
    except OSError as err:
        raise _file_error("read", path, err) from err


def _file_error(action: str, path: Path, err: OSError) -> RunFileError:
    cause = err.strerror or str(err)
    if err.errno == errno.ENOSPC:
        cause += " (the disk is full: free space, then resume)"
    out = RunFileError(f"cannot {action} {path}: {cause}")
    out.errno = err.errno
    return out


def _make_dir(path: Path, what: str) -> None:
    """``mkdir -p path``, with one clear error for a file in the way or a folder that cannot be written."""
    for part in (*reversed(path.parents), path):
        if part.exists() and not part.is_dir():
            where = "is" if part == path else f"cannot be created: {part} is"
            raise RunFileError(f"{what} {path} {where} a file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise _file_error(f"create {what}", path, err) from err


def _atomic_write(path: Path, write: Callable[[IO[bytes]], Any]) -> None:
    """Write ``path`` through a temporary file of its own, then rename it into place.

    The temporary file lies in the same folder (the rename is atomic) under a name no other process or
    call uses (``.<name>.<pid>.<random>.tmp``), so concurrent runs never share one, and it is removed
    when the write fails or is interrupted: a reader sees the old ``path`` or the new one, never a part.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "xb") as fh:
            write(fh)
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(err, OSError):
            raise _file_error("write", path, err) from err
        raise


def _atomic_save(obj: Any, path: Path) -> None:
    """``torch.save`` without ever leaving a truncated ``path`` (:func:`_atomic_write`)."""
    # Saving through the open file, not by name: a full disk is then an OSError (ENOSPC), not torch's
    # "unexpected pos" from its zip writer.
    _atomic_write(path, lambda fh: torch.save(obj, fh))


def _write_json(obj: Any, path: Path) -> None:
    _write_text(path, json.dumps(obj, indent=2) + "\n")


@contextlib.contextmanager
def _locked(folder: Path, *, wait: bool, what: str) -> Iterator[None]:
    """Hold an exclusive lock on ``folder/.lock`` while the block runs (``fcntl.flock``).

    The operating system releases the lock when its holder ends, even by a crash or ``kill -9``, so no
    stale lock ever blocks a run. The file keeps the holder's process id, for the message of a waiting run.
    Without ``fcntl`` (Windows) nothing is locked. ``flock`` may not lock across machines on a network
    file system: concurrent runs on several machines need their own ``out``.

    Args:
        folder: An existing folder.
        wait: Wait for the holder (saying so on stderr) instead of raising :class:`RunInUseError`.
        what: How messages name the folder.
    """
    if fcntl is None:
        yield
        return
    path = folder / ".lock"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as err:
        raise _file_error("create the lock file", path, err) from err
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            holder = f" (process {holder})" if holder.isdigit() else ""
            if not wait:
                raise RunInUseError(
                    f"{what} {folder} is in use by another run{holder}: wait for it, or choose another run_name / out"
                ) from None
            print(f"regdakit: waiting for another run{holder} to finish {what} {folder}", file=sys.stderr, flush=True)
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def _read_checkpoint(path: Path, map_location: torch.device | str, what: str) -> Any:
    """``torch.load`` of a file the run needs, with one clear error for each way it can be unusable.

    Raises:
        FileNotFoundError: No such file.
        CheckpointError: A directory, an empty file, or not a complete file written by ``torch.save``.
        RunFileError: The file cannot be read (permissions, I/O error).
    """
    if path.is_dir():
        raise CheckpointError(f"{what} {path} is a directory, not a checkpoint file")
    if not path.exists():
        raise FileNotFoundError(f"{what} {path} does not exist")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. a foreign pickle's protocol: the error below says it all
            return torch.load(path, map_location=map_location, weights_only=True)
    except OSError as err:
        raise _file_error(f"read {what}", path, err) from err
    except Exception as err:  # noqa: BLE001 - torch.load fails with EOFError, RuntimeError, UnpicklingError...
        empty = path.stat().st_size == 0
        why = "it is empty" if empty else f"truncated, corrupted, or not written by torch.save ({type(err).__name__})"
        raise CheckpointError(f"{what} {path} cannot be loaded: {why}") from err


def _check_keys(state: Any, path: Path, what: str, keys: Iterable[str]) -> dict[str, Any]:
    """``state`` if it is a dict with ``keys``, else a :class:`CheckpointError` that says what it lacks."""
    if not isinstance(state, dict):
        raise CheckpointError(f"{what} {path} is not a regdakit checkpoint (it holds a {type(state).__name__})")
    missing = [k for k in keys if k not in state]
    if missing:
        raise CheckpointError(
            f"{what} {path} is not a regdakit checkpoint (no {' / '.join(repr(k) for k in missing)}; "
            f"it has {', '.join(repr(k) for k in list(state)[:5]) or 'nothing'})"
        )
    return state


def _load_weights(
    model: torch.nn.Module, weights: Any, path: Path, what: str, *, prefixes: tuple[str, ...] = ()
) -> None:
    """Load ``weights`` (the entries under ``prefixes``, or all) into ``model``; a clear error when they do not fit."""
    if not isinstance(weights, Mapping) or not all(isinstance(v, torch.Tensor) for v in weights.values()):
        raise CheckpointError(f"{what} {path} holds no model weights (a dict of tensors)")
    expected = {k: v for k, v in model.state_dict().items() if not prefixes or k.startswith(prefixes)}
    given = {k: v for k, v in weights.items() if not prefixes or k.startswith(prefixes)}
    missing, unexpected = sorted(set(expected) - set(given)), sorted(set(given) - set(expected))
    shapes = sorted(k for k in set(given) & set(expected) if given[k].shape != expected[k].shape)
    if missing or unexpected or shapes:
        parts = [f"{len(v)} {name} (e.g. {v[0]})" for name, v in (("missing", missing), ("unexpected", unexpected),
                                                                   ("of another shape", shapes)) if v]  # fmt: skip
        raise CheckpointError(f"{what} {path} does not fit this run's model: weights {'; '.join(parts)}")
    model.load_state_dict(given, strict=not prefixes)


def _first_nonfinite(model: torch.nn.Module) -> str | None:
    """The name of the first weight or buffer that holds NaN/Inf, or None (one device sync)."""
    named = [(k, v) for k, v in model.state_dict().items() if v.is_floating_point()]
    finite = torch.stack([torch.isfinite(v).all() for _, v in named]).cpu()
    if bool(finite.all()):
        return None
    return named[int((~finite).nonzero()[0, 0])][0]


_STEP_NAMES = {"A": "step A (source)", "B": "step B (f' on target)", "C": "step C (psi on target)"}


@dataclass
class _Stream:
    """How to open one training stream; under torchrun every rank opens its own (seeds by :func:`_open`)."""

    domain: str
    seed: int
    labels: bool


@dataclass
class _Phase:
    """One optimisation phase: pre-training / ERM / oracle, or RegDA's adaptation."""

    name: str
    method: str
    method_cfg: Any
    iterations: int
    directory: Path
    source: _Stream
    target: _Stream | None
    snapshots: bool = True  # model-only copies every checkpoint_every (not for the shared pre-training cache)


def _open(cfg: TrainConfig, spec: _Stream, ctx: Context, start: int) -> Iterator[dict[str, Any]]:
    """This rank's stream of ``spec``: its own seed (``spec.seed`` itself for rank 0 of a fresh run)."""
    seed = distributed.stream_seed(spec.seed, ctx.rank, start)
    return make_stream(cfg, spec.domain, seed, spec.labels, rank=ctx.rank, world_size=ctx.world_size)


def _rng_state() -> dict[str, Any]:
    rng = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    return rng


def _read_state(path: Path, map_location: torch.device | str) -> dict[str, Any]:
    """The resume state in ``last.pt``, checked for every part :func:`_run_phase` restores."""
    state = _check_keys(_read_checkpoint(path, map_location, "the checkpoint"), path, "the checkpoint", ())
    keys = ("config", "model", "optimizers", "schedulers", "iteration", "window")
    return _check_keys(
        state, path, "the checkpoint", (*keys, *(("ranks",) if "ranks" in state else ("streams", "rng")))
    )


def _set_rng_state(rng: Mapping[str, Any]) -> None:
    torch.set_rng_state(rng["torch"].cpu())
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in rng["cuda"]])


def _log(path: Path, record: Mapping[str, Any]) -> None:
    """Append one line in one ``write`` to a file opened with ``O_APPEND``: a line is never split or interleaved."""
    data = (json.dumps(record) + "\n").encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            while data:
                data = data[os.write(fd, data) :]
        finally:
            os.close(fd)
    except OSError as err:
        raise _file_error("append to", path, err) from err


def _truncate_log(path: Path, iteration: int) -> list[dict[str, Any]]:
    """Drop the records written after the checkpoint we resume from (they will be written again); the kept ones.

    A log line is written before the checkpoint of its iteration, so the one line an interruption can tear
    (the last, without its newline or unparsable) is always past the checkpoint: it is dropped with the
    others. A damaged line before it, or a torn one that says it belongs before the checkpoint, is an error
    that names the file and the line: the log no longer matches the run.
    """
    if not path.exists():
        return []
    try:
        lines = path.read_text(errors="replace").split("\n")
    except OSError as err:
        raise _file_error("read", path, err) from err
    numbered = [(n, line) for n, line in enumerate(lines, 1) if line.strip()]
    kept, records, changed = [], [], False
    for n, line in numbered:
        try:
            record = json.loads(line)
            if not isinstance(record, dict) or not isinstance(record.get("iteration"), int):
                raise ValueError("no iteration")
        except ValueError:
            stamp = re.search(r'"iteration": (\d+)', line)
            if n == numbered[-1][0] and not (stamp and int(stamp.group(1)) <= iteration):
                changed = True  # the torn last line of an interrupted run
                continue
            raise ValueError(
                f"the metrics log {path} is damaged at line {n} (not a JSON record: {line[:60]!r}): "
                f"repair or delete that line to resume from iteration {iteration}"
            ) from None
        if record["iteration"] <= iteration:
            kept.append(line)
            records.append(record)
        else:
            changed = True
    if changed:
        _write_text(path, "".join(line + "\n" for line in kept))
    return records


def _write_text(path: Path, text: str) -> None:
    data = text.encode()
    _atomic_write(path, lambda fh: fh.write(data))


def _run_phase(
    cfg: TrainConfig,
    phase: _Phase,
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
        _make_dir(phase.directory, "the run folder")
    exists = ctx.on_main(last.exists)
    if exists and not resume:
        raise FileExistsError(f"{phase.directory} already holds a run; resume it or choose another out / run_name")
    # Every rank needs the whole state (optimisers step on every rank); rank 0 reads it and sends it.
    state = ctx.on_main(_read_state, last, "cpu" if ctx.distributed else device) if exists else None
    if state is not None:
        _load_weights(model, state["model"], last, "the checkpoint")
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
            logged = _truncate_log(log_path, start)
    elif ctx.is_main:
        log_path.unlink(missing_ok=True)
    shards = {name: _shard(data, ctx) for name, data in eval_sets.items()}
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
        _atomic_save(state, last)

    def run_eval(done: int, log: bool = True) -> dict[str, Any]:
        ctx.average_batchnorm(model)
        check_state(done)
        metrics = {name: _evaluate_sharded(model, data, skeleton, ctx) for name, data in shards.items()}
        model.train()
        if ctx.is_main and log:
            _log(log_path, {"phase": phase.name, "iteration": done, "eval": metrics})
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
                        _log(log_path, {"phase": phase.name, "iteration": done, "train": means})
                    bar.set_postfix({k: f"{v:.3g}" for k, v in means.items()})
                    window = {}
                if done % cfg.eval_every == 0 or done == phase.iterations:
                    metrics = run_eval(done)
                if done % cfg.checkpoint_every == 0 or done == phase.iterations or done == stop_after:
                    checkpoint(done)
                    if ctx.is_main and phase.snapshots and done % cfg.checkpoint_every == 0:
                        _atomic_save(
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


def _build_model(
    cfg: TrainConfig, adversarial: bool, seed: int, device: torch.device, load_weights: bool = True
) -> PoseResNet:
    torch.manual_seed(seed)  # the weights' initialisation is part of the run's definition
    weights = cfg.backbone_weights if load_weights else None
    k = SKELETONS[cfg.task].num_keypoints
    # Only f' uses the gradient-scaling layer; its warm start belongs to RegDA's schedule.
    scale = GradientScale(max_steps=cfg.regda.warmup_iterations)
    model = pose_resnet(
        cfg.backbone, k, weights, head_layers=cfg.head_layers, adversarial=adversarial, gradient_scale=scale
    )
    return model.to(device)


def _pretrain_key(cfg: TrainConfig) -> str:
    """The cache key of the source-only pre-training: everything it depends on."""
    recipe = {
        "generator": GENERATOR_VERSION,
        "erm": dataclasses.asdict(cfg.erm),
        **{
            k: getattr(cfg, k)
            for k in (
                "backbone",
                "backbone_weights",
                "head_layers",
                "image_size",
                "batch_size",
                "pretrain_iterations",
                "augment",
                "source_root",  # a real source dataset: which copy of it
            )
        },
    }
    digest = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]
    return f"{cfg.task}-{cfg.source_domain}-seed{cfg.seed}-{digest}"


def _pretrain(cfg, eval_sets, device, *, stop_after, progress, ctx=None) -> dict[str, torch.Tensor] | None:
    """Source-only pre-training, cached in ``<out>/pretrain/<key>/`` (resumable; ``model.pt`` when done).

    The key does not hold the world size: a pre-training run with any number of processes is reused.
    """
    ctx = ctx if ctx is not None else Context(device=device)
    directory = Path(cfg.out) / "pretrain" / _pretrain_key(cfg)
    final = directory / "model.pt"
    where = "cpu" if ctx.distributed else device
    if ctx.on_main(final.exists):  # model.pt appears whole (renamed into place): reading it needs no lock
        return ctx.on_main(_read_cached, final, where)
    # Runs that need the same pre-training at once: one trains it, the others wait on the folder's lock
    # (rank 0 waits; under torchrun the other ranks wait in its next collective, at most dist_timeout)
    # and then read its model.pt. An interrupted pre-training is resumed by the next run that needs it.
    with contextlib.ExitStack() as held:

        def claim() -> bool:
            _make_dir(directory, "the pre-training cache folder")
            held.enter_context(_locked(directory, wait=True, what="the pre-training in"))
            return final.exists()

        if ctx.on_main(claim):  # another run finished it while this one waited
            return ctx.on_main(_read_cached, final, where)
        model = _build_model(cfg, adversarial=False, seed=cfg.seed, device=device)
        source = _Stream(cfg.source_domain, 2 * cfg.seed, labels=True)
        phase = _Phase("pretrain", "erm", cfg.erm, cfg.pretrain_iterations, directory, source, None, snapshots=False)
        if ctx.is_main:
            _write_json(dataclasses.asdict(cfg), directory / "config.json")
        metrics = _run_phase(
            cfg, phase, model, eval_sets, resume=True, stop_after=stop_after, progress=progress, ctx=ctx
        )
        if metrics is None:
            return None
        if ctx.is_main:
            _atomic_save(model.state_dict(), final)
        return model.state_dict()


def _read_cached(path: Path, map_location: torch.device | str) -> dict[str, torch.Tensor]:
    """The weights of a finished pre-training cache; a damaged file says how to rebuild it."""
    try:
        weights = _read_checkpoint(path, map_location, "the cached pre-training")
        if not isinstance(weights, dict) or not all(isinstance(v, torch.Tensor) for v in weights.values()):
            raise CheckpointError(f"the cached pre-training {path} holds no model weights")
    except CheckpointError as err:
        raise CheckpointError(f"{err}; delete the folder {path.parent} to pre-train again") from err
    return weights


def _initial_weights(cfg: TrainConfig, device: torch.device | str) -> dict[str, torch.Tensor]:
    """The weights of ``cfg.init_checkpoint``, checked against ``cfg``'s task and architecture."""
    path = Path(cfg.init_checkpoint)
    state = _check_keys(_read_checkpoint(path, device, "init_checkpoint"), path, "init_checkpoint", ("config", "model"))
    saved = state["config"]
    if not isinstance(saved, Mapping):
        raise CheckpointError(f"init_checkpoint {path} is not a regdakit checkpoint (its 'config' is not a dict)")
    for key in ("task", "backbone", "head_layers"):
        if saved.get(key) != getattr(cfg, key):
            raise ValueError(
                f"init_checkpoint {cfg.init_checkpoint} has {key}={saved.get(key)!r}, this run {getattr(cfg, key)!r}"
            )
    return state["model"]


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
            only find it; any other difference is a :class:`ResumeError` that lists them.
        resume_allow: Settings of :data:`RESUME_SAFE` that may differ on this resume (they change
            neither the model nor its batches, e.g. ``("eval_every", "device")``); ``config.json``
            then records the new values.
        stop_after: Stop after this many iterations of the final phase, with a checkpoint, as if
            interrupted (tests, time-boxed jobs); ``resume=True`` later continues.
        progress: Show tqdm bars (rank 0 only).

    Returns:
        ``{"run_dir", "iteration", "metrics": {"source_val": {...}, "target_test": {...}}}``
        (``metrics`` is ``None`` when stopped early); the same on every rank.

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
    _check_resume_allow(cfg, resume_allow)
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
    device = ctx.device
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
            _make_dir(run_dir, "the run folder")
            held.enter_context(_locked(run_dir, wait=False, what="the run folder"))
            return (run_dir / "last.pt").exists(), _saved_config(run_dir) if resume else None

        has_checkpoint, saved = ctx.on_main(claim)
        if has_checkpoint and not resume:  # before any pre-training, and before config.json is touched
            raise FileExistsError(f"{run_dir} already holds a run; resume it or choose another out / run_name")
        if saved is not None:
            _check_resume(cfg, saved, resume_allow, run_dir)
        if ctx.is_main:  # what runs from now on (a refused resume never gets here)
            _write_json(dataclasses.asdict(cfg), run_dir / "config.json")
        if cfg.method in ADAPT_METHODS:  # all adapt the same cached source-only model
            if cfg.init_checkpoint is not None:
                pretrained = ctx.on_main(_initial_weights, cfg, "cpu" if ctx.distributed else device)
            else:
                pretrained = _pretrain(cfg, eval_sets, device, stop_after=None, progress=progress, ctx=ctx)
            assert pretrained is not None
            adversarial = METHODS[cfg.method].ADVERSARIAL_HEAD
            model = _build_model(cfg, adversarial=adversarial, seed=cfg.seed + 1, device=device)
            keep = ("backbone.", "upsampling.") + (("head.",) if cfg.keep_pretrained_head else ())
            if cfg.init_checkpoint is not None:
                origin, what = Path(cfg.init_checkpoint), "init_checkpoint"
            else:
                origin, what = Path(cfg.out) / "pretrain" / _pretrain_key(cfg) / "model.pt", "the cached pre-training"
            _load_weights(model, pretrained, origin, what, prefixes=keep)
            _prepare(model, cfg)
            # Seeds 2s / 2s+1: the adaptation's streams never replay the pre-training's batches.
            source = _Stream(cfg.source_domain, 2 * cfg.seed + 1, labels=True)
            target = _Stream(cfg.target_domain, 2 * cfg.seed + 1, labels=False)  # no labels, by structure
            phase = _Phase("adapt", cfg.method, method_config(cfg), cfg.adapt_iterations, run_dir, source, target)
        else:
            model = _build_model(cfg, adversarial=False, seed=cfg.seed, device=device)
            # The oracle is ERM on the *target*'s labelled stream.
            domain = cfg.target_domain if cfg.method == "oracle" else cfg.source_domain
            source = _Stream(domain, 2 * cfg.seed, labels=True)
            phase = _Phase(cfg.method, "erm", cfg.erm, cfg.pretrain_iterations, run_dir, source, None)
        metrics = _run_phase(
            cfg, phase, model, eval_sets, resume=resume, stop_after=stop_after, progress=progress, ctx=ctx
        )
        result = {"run_dir": str(run_dir), "iteration": phase.iterations if metrics else stop_after, "metrics": metrics}
        if metrics is not None and ctx.is_main:
            _write_json(result, run_dir / "final.json")
        return result


#: Settings that ``resume_allow`` / ``--resume_allow`` may change when a run resumes: how often it logs,
#: evaluates and checkpoints, where and with how many loader workers it runs, how long collectives wait,
#: and the length of its last phase (to extend a finished run; never below the checkpoint's iteration).
#: None changes the model or the batches (``pretrain_iterations`` does for the adaptation methods, whose
#: pre-training it selects: for them it is not allowed). ``out`` and ``run_name`` only find the run:
#: they are never compared.
RESUME_SAFE = (
    "eval_every",
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
    return tuple(k for k in RESUME_SAFE if not (k == "pretrain_iterations" and cfg.method in ADAPT_METHODS))


def _check_resume_allow(cfg: TrainConfig, allow: tuple[str, ...]) -> None:
    unknown = sorted(set(allow) - set(override_types()))
    if unknown:
        raise ValueError(f"resume_allow: unknown setting {unknown[0]!r}")
    unsafe = [k for k in allow if k not in _resume_safe(cfg)]
    if unsafe:
        raise ValueError(
            f"resume_allow: {', '.join(unsafe)} cannot change in a run (it changes what the {cfg.method} run "
            f"computes); allowed: {', '.join(_resume_safe(cfg))}"
        )


def _saved_config(run_dir: Path) -> dict[str, Any] | None:
    """The settings the run in ``run_dir`` ran with: its ``config.json`` (or ``last.pt``'s), None for a new run."""
    path = run_dir / "config.json"
    if path.is_file():
        return _read_json(path, f"{path} is not JSON", "the settings of the run to resume are unknown")
    last = run_dir / "last.pt"
    if last.exists():
        return _check_keys(_read_checkpoint(last, "cpu", "the checkpoint"), last, "the checkpoint", ("config",))[
            "config"
        ]
    return None


def _check_resume(cfg: TrainConfig, saved: Any, allow: tuple[str, ...], run_dir: Path) -> None:
    """Raise :class:`ResumeError` when ``cfg`` differs from ``saved`` other than in ``allow``."""
    safe = _resume_safe(cfg)
    try:
        if not isinstance(saved, Mapping):
            raise TypeError(f"a JSON {type(saved).__name__}")
        before = _flat(json.loads(json.dumps(dataclasses.asdict(config_from_dict(saved)))))
    except (TypeError, ValueError) as err:
        raise ValueError(f"{run_dir / 'config.json'} holds no valid config ({err}): cannot check the resume") from None
    after = _flat(json.loads(json.dumps(dataclasses.asdict(cfg))))
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
    state = _check_keys(_read_checkpoint(path, dev, what), path, what, ("config", "model"))
    try:
        cfg = config_from_dict(state["config"])
    except (AttributeError, TypeError, ValueError) as err:
        raise CheckpointError(f"{what} {path} holds no valid regdakit config ({err})") from None
    weights = state["model"]
    if not isinstance(weights, Mapping):
        raise CheckpointError(f"{what} {path} holds no model weights (a dict of tensors)")
    adversarial = any(k.startswith("head_adv.") for k in weights)
    model = _build_model(cfg, adversarial=adversarial, seed=cfg.seed, device=dev, load_weights=False)
    if state.get("phase") != "pretrain" and any(k not in model.state_dict() for k in weights):
        _prepare(model, cfg)  # modules the method attached (DANN's discriminator)
    _load_weights(model, weights, path, what)
    return model.eval(), cfg, state
