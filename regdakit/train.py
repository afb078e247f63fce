"""The trainer's public API: ``from regdakit import train as T; T.train(cfg)``.

The trainer lives in the package :mod:`regdakit.training`, one idea per
module; this module re-exports its public API so that scripts, notebooks and
``python -m regdakit train`` read one short name. Where each idea lives:

* the run configuration (:class:`TrainConfig`, :data:`PRESETS`, :data:`RUN_METHODS`, :func:`make_config`,
  :func:`method_config`, :func:`check_device`): :mod:`regdakit.training.config`;
* the settings of the command line (:func:`apply_overrides`, :func:`parse_value`, :func:`config_from_file`,
  :func:`setting_docs`...): :mod:`regdakit.training.settings`;
* training streams and fixed evaluation sets (:func:`make_stream`, :func:`make_eval_sets`):
  :mod:`regdakit.training.streams`;
* evaluation (:func:`evaluate`, sharded: :func:`evaluate_sharded`, :func:`shard_eval_set`):
  :mod:`regdakit.training.evaluation`;
* the run's files (atomic writes, the metrics log, locks, :class:`CheckpointError`, :class:`RunFileError`,
  :class:`RunInUseError`): :mod:`regdakit.training.files`;
* the loop of one phase (NaN stop: :class:`NonFiniteLossError`): :mod:`regdakit.training.loop`;
* the model of a config and the cached source-only weights (:func:`build_model`,
  :func:`source_only_weights`, :func:`pretrain_key`): :mod:`regdakit.training.pretraining`;
* what may change on resume (:data:`RESUME_SAFE`, :class:`ResumeError`): :mod:`regdakit.training.resume`;
* a whole run (:func:`train`, :func:`evaluate_checkpoint`, :func:`load_checkpoint`): :mod:`regdakit.training.run`.

>>> cfg = make_config("ci", method="erm")
>>> cfg.backbone, cfg.image_size, cfg.heatmap_size
('tiny', 64, 16)
"""

from regdakit.distributed import DistributedError
from regdakit.training.config import (
    ADAPT_METHODS,
    PRESETS,
    RUN_METHODS,
    TASK_DOMAINS,
    TrainConfig,
    check_device,
    make_config,
    method_config,
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
