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
* what a run costs (operations counted per iteration, minutes estimated with the rendering measured), not
  re-exported: :mod:`regdakit.training.cost`.

>>> cfg = make_config("ci", method="erm")
>>> cfg.backbone, cfg.image_size, cfg.heatmap_size
('tiny', 64, 16)
"""

# The public API is regdakit.training's, listed once there; this module re-exports it under its old name.
from regdakit.training import *  # noqa: F403
from regdakit.training import __all__  # noqa: F401
