"""The settings as the command line sees them: ``--key=value`` overrides, config files, help text.

Every field of :class:`~regdakit.training.config.TrainConfig`, nested ones as
``regda.margin``, is a setting; its type, description and choices come from
the config dataclasses and their docstrings, so the command line
(:mod:`regdakit.__main__`) and the config never drift apart.

>>> cfg = apply_overrides(TrainConfig(), {"batch_size": "8", "regda.margin": "2"})
>>> cfg.batch_size, cfg.regda.margin
(8, 2.0)
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import re
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

from regdakit.data.synthetic import DOMAINS
from regdakit.methods import common, dann, erm, regda
from regdakit.models import BACKBONES
from regdakit.training.config import LEGACY_SIGMA, TASK_DOMAINS, TrainConfig, real_datasets, run_methods
from regdakit.training.files import read_json

__all__ = [
    "apply_overrides",
    "attribute_docs",
    "config_from_dict",
    "config_from_file",
    "flatten",
    "override_types",
    "parse_value",
    "replace_values",
    "setting_choices",
    "setting_docs",
    "upgrade_config_dict",
]

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
    if "regda.sigma" in overrides:
        raise ValueError(_REGDA_SIGMA_GONE)
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


_REGDA_SIGMA_GONE = (
    "regda.sigma is no longer a setting: sigma (top level, --sigma) sets the width of the training targets "
    "and of the pseudo-labels together"
)


def upgrade_config_dict(data: Mapping[str, Any]) -> dict[str, Any]:
    """A saved config (``config.json``, a checkpoint's ``config``) in this version's settings.

    Until the single ``sigma`` setting, ``regda.sigma`` set the width of RegDA's pseudo-labels only,
    while the training targets were always 2.0 cells (:data:`~regdakit.training.config.LEGACY_SIGMA`).
    A file without ``sigma`` is of that version: it gets ``sigma`` 2.0, not today's default. A saved
    ``regda.sigma`` equal to the run's ``sigma`` described the run this version runs with ``sigma``
    alone, so it is dropped. Any other value is refused: no setting of this version reproduces
    pseudo-labels of another width than the targets.

    Until the schedules scaled with the run, ``regda.warmup_iterations`` and ``dann.reversal_iterations``
    were always numbers (the presets set them to the run's share by hand). A saved number equal to the
    share this version derives from the run's ``adapt_iterations`` (:func:`regdakit.methods.regda.warmup_horizon`,
    :func:`regdakit.methods.dann.reversal_horizon`) is the same schedule, read as ``None`` (scaled with the
    run); any other number stays, fixed. A file without a ``dann`` section predates DANN: its horizon is
    read as the 1000 iterations it had then (as the first shipped models' recipe records it).

    Raises:
        ValueError: ``regda.sigma`` differs from the run's ``sigma``.

    >>> upgrade_config_dict({"regda": {"sigma": 2.0, "margin": 4.0}})
    {'regda': {'margin': 4.0}, 'sigma': 2.0, 'dann': {'reversal_iterations': 1000}}
    >>> upgrade_config_dict({"sigma": 1.0, "adapt_iterations": 200, "regda": {"warmup_iterations": 13}})["regda"]
    {'warmup_iterations': None}
    """
    if "sigma" not in data:
        data = {**data, "sigma": LEGACY_SIGMA}
    data = _upgrade_horizons(data)
    if "dann" not in data:
        data = {**data, "dann": {"reversal_iterations": _DANN_HORIZON_BEFORE}}
    section = data.get("regda")
    if not isinstance(section, Mapping) or "sigma" not in section:
        return dict(data)
    legacy, sigma = section["sigma"], data["sigma"]
    if legacy != sigma:
        raise ValueError(
            f"the saved regda.sigma={legacy!r} (pseudo-labels only, a setting of earlier versions) differs from "
            f"the run's heatmap sigma={sigma!r}; {_REGDA_SIGMA_GONE}, so this run cannot be rebuilt: remove "
            "regda.sigma and set sigma to the width you want for both"
        )
    return {**data, "regda": {k: v for k, v in section.items() if k != "sigma"}}


#: DANN's reversal horizon when it came, before it scaled with the run (the default of then).
_DANN_HORIZON_BEFORE = 1000


def _upgrade_horizons(data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` with a saved horizon equal to the one derived from its ``adapt_iterations`` set to ``None``."""
    adapt = data.get("adapt_iterations", TrainConfig.adapt_iterations)
    derived = {
        ("regda", "warmup_iterations"): regda.warmup_horizon(regda.Config(), adapt),
        ("dann", "reversal_iterations"): dann.reversal_horizon(dann.Config(), adapt),
    }
    out = dict(data)
    for (name, key), value in derived.items():
        section = out.get(name)
        if isinstance(section, Mapping) and section.get(key) == value:
            out[name] = {**section, key: None}
    return out


def config_from_dict(data: Mapping[str, Any], cls: type = TrainConfig) -> Any:
    """Rebuild a (nested) config from ``dataclasses.asdict`` / JSON (lists become tuples).

    A :class:`TrainConfig` saved by an earlier version is upgraded first (:func:`upgrade_config_dict`).
    """
    if cls is TrainConfig:
        data = upgrade_config_dict(data)
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


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"regda": {"lr": 0.01}}`` -> ``{"regda.lr": 0.01}``."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{prefix}{key}."))
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
    data = read_json(path, f"config {path} is not JSON")
    if not isinstance(data, dict):
        raise ValueError(f"config {path} holds a JSON {type(data).__name__}, not the object of a config.json")
    try:
        data = upgrade_config_dict(data)
    except ValueError as err:
        raise ValueError(f"config {path}: {err}") from None
    unknown = sorted(set(flatten(data)) - set(override_types()))
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
    real = sorted(real_datasets())
    synthetic = "; ".join(f"{task}: {', '.join(sorted(DOMAINS[task]))}" for task in TASK_DOMAINS)
    for key in ("source", "target"):
        docs[key] += f" Synthetic domains: {synthetic}. Real datasets: {', '.join(real)}."
    return docs


def setting_choices() -> dict[str, tuple[str, ...]]:
    """The settings that take one of a fixed set of values -> those values.

    >>> setting_choices()["method"] == run_methods()
    True
    """
    choices: dict[str, tuple[str, ...]] = {
        "task": tuple(TASK_DOMAINS),
        "method": run_methods(),
        "backbone": tuple(BACKBONES),
        "erm.loss": common.SOURCE_LOSSES,
        "erm.optimizer": erm.OPTIMIZERS,
        "regda.objective": tuple(regda.OBJECTIVES),
    }
    for key in override_types():  # every adaptation method's supervised loss on the source
        if key.endswith(".source_loss"):
            choices[key] = common.SOURCE_LOSSES
    return choices
