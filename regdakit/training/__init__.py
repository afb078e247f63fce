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
  with the same optimiser and schedule (:mod:`regdakit.methods.recipe`); DD's adversary is bounded
  (``dd_unbounded``: the unbounded KL of the paper's Table 2, a labelled variant); RegDA's other Table-2
  variant is ``regda`` with ``--regda.objective=false_max``.

One idea per module:

* :mod:`~regdakit.training.config` — :class:`TrainConfig`, :data:`PRESETS`, the methods of a run,
  :func:`make_config`, :func:`method_config`, :func:`check_device`, :func:`paper_sigma`;
* :mod:`~regdakit.training.settings` — the settings as the command line sees them: ``--key=value``
  overrides, ``config.json`` files, help text from the dataclass docstrings;
* :mod:`~regdakit.training.streams` — training streams and the fixed evaluation sets of a domain;
* :mod:`~regdakit.training.evaluation` — PCK of ``f``'s predictions, in one process or sharded over ranks;
* :mod:`~regdakit.training.files` — the run's files: atomic writes, the metrics log, locks, checkpoint
  reading, and the errors that name a file;
* :mod:`~regdakit.training.loop` — one optimisation phase, checkpointed for an exact resume;
* :mod:`~regdakit.training.pretraining` — the model of a config (:func:`build_model`) and the cached
  source-only weights an adaptation starts from (:func:`source_only_weights`);
* :mod:`~regdakit.training.resume` — what may change when a run resumes (:data:`RESUME_SAFE`);
* :mod:`~regdakit.training.run` — :func:`train`, :func:`evaluate_checkpoint`, :func:`load_checkpoint`.

:mod:`regdakit.train` re-exports this public API (``from regdakit import train as T; T.train(cfg)``).

>>> cfg = make_config("ci", method="erm")
>>> cfg.backbone, cfg.image_size, cfg.heatmap_size
('tiny', 64, 16)
"""

from regdakit.distributed import DistributedError
from regdakit.training.config import (
    ADAPT_METHODS,
    LEGACY_SIGMA,
    PRESETS,
    RUN_METHODS,
    TASK_DOMAINS,
    TrainConfig,
    check_device,
    make_config,
    method_config,
    paper_sigma,
)
from regdakit.training.evaluation import evaluate, evaluate_sharded, shard_eval_set
from regdakit.training.files import CheckpointError, RunFileError, RunInUseError
from regdakit.training.loop import NonFiniteLossError, NonFiniteStateError
from regdakit.training.pretraining import build_model, pretrain_cache_dir, pretrain_key, source_only_weights
from regdakit.training.resume import RESUME_SAFE, ResumeError
from regdakit.training.run import evaluate_checkpoint, load_checkpoint, train
from regdakit.training.settings import (
    apply_overrides,
    attribute_docs,
    config_from_dict,
    config_from_file,
    override_types,
    parse_value,
    replace_values,
    setting_choices,
    setting_docs,
)
from regdakit.training.streams import make_eval_sets, make_stream

__all__ = [
    "ADAPT_METHODS",
    "CheckpointError",
    "DistributedError",
    "LEGACY_SIGMA",
    "NonFiniteLossError",
    "NonFiniteStateError",
    "PRESETS",
    "RESUME_SAFE",
    "RUN_METHODS",
    "ResumeError",
    "RunFileError",
    "RunInUseError",
    "TASK_DOMAINS",
    "TrainConfig",
    "apply_overrides",
    "attribute_docs",
    "build_model",
    "check_device",
    "config_from_dict",
    "config_from_file",
    "evaluate",
    "evaluate_checkpoint",
    "evaluate_sharded",
    "load_checkpoint",
    "make_config",
    "make_eval_sets",
    "make_stream",
    "method_config",
    "override_types",
    "paper_sigma",
    "parse_value",
    "pretrain_cache_dir",
    "pretrain_key",
    "replace_values",
    "setting_choices",
    "setting_docs",
    "shard_eval_set",
    "source_only_weights",
    "train",
]
