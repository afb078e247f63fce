"""Command line: ``python -m regdakit <command> ...``.

Commands live in :data:`COMMANDS`, a plain dict ``name -> (add_arguments,
run)``: ``add_arguments(parser)`` declares the command's options and
``run(args) -> int`` executes it. Adding a command is one entry.

* ``python -m regdakit data check ROOT --dataset NAME [--split S] [--out gallery.png]``
  validates a dataset folder, prints the number of items per split and saves
  a gallery of samples with their skeletons (``--ann_file`` / ``--image_dir``
  for a COCO export with its own layout).
* ``python -m regdakit train --task hands --method regda --preset cpu-small [--key=value ...]``
  trains any method of :data:`regdakit.training.RUN_METHODS`; any ``TrainConfig``
  field is a type-checked ``--key=value`` (or ``--key value``), nested ones as
  ``--regda.margin=2``; ``train --help`` lists them with type, default, choices
  and description, generated from the config dataclasses and their docstrings.
  ``--config RUN/config.json`` starts from a saved run instead of a preset;
  ``--resume`` continues a run exactly (with the settings it ran with;
  ``--resume_allow`` lets the safe ones change). Under
  ``torchrun --nproc_per_node N -m regdakit train ...`` the same command trains
  with DistributedDataParallel on N processes (``docs/distributed.md``); rank 0
  alone writes files and prints the result.
* ``python -m regdakit eval --checkpoint PATH`` evaluates a checkpoint on its
  run's fixed source-val and target-test sets and prints JSON.

A command that cannot do what it was asked prints one line ``error: ...`` on
stderr and exits with status 2 (a wrong setting, path, checkpoint or device,
a full disk), or 1 when a run failed while training (NaN/Inf, a failed
rank) or a dataset's content is wrong. Arguments the parser refuses (an
unknown option, a value of the wrong type) exit with status 2 through
argparse; an unknown ``train`` option also names the nearest one
(``--regda.sigma`` -> ``--sigma``). Options are never abbreviated:
``--regda.sou=kl`` is refused as unknown and names ``--regda.source_loss``.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Union, get_args, get_origin

__all__ = ["COMMANDS", "DEFAULT_PRESET", "main"]

#: The preset ``train`` starts from without ``--preset`` or ``--config``.
DEFAULT_PRESET = "cpu-small"


def _error(err: BaseException | str) -> None:
    """Print ``error: <message>`` as one line on stderr (a multi-line message is joined)."""
    text = " ".join(line.strip() for line in str(err).splitlines() if line.strip())
    print(f"error: {text}", file=sys.stderr)


def _add_data_arguments(parser: argparse.ArgumentParser) -> None:
    from regdakit.data.real import DATASETS

    names = sorted(DATASETS)
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    check = actions.add_parser(
        "check", help="validate a dataset folder, count its splits, save a gallery", allow_abbrev=False
    )
    check.add_argument("root", type=Path, help="folder of the unpacked release")
    check.add_argument(
        "--dataset",
        required=True,
        metavar="{" + ",".join(names) + "}",
        help=f"the loader, one of: {', '.join(names)} (docs/real_datasets.md)",
    )
    check.add_argument(
        "--ann_file",
        type=Path,
        default=None,
        help="coco only: the annotation JSON of an export with its own layout, e.g. annotations.json "
        "(a relative path is looked up under ROOT first, then in the working directory)",
    )
    check.add_argument(
        "--image_dir",
        type=Path,
        default=None,
        help="coco only: the folder its file_name entries are relative to, e.g. images (looked up likewise)",
    )
    check.add_argument("--split", default=None, help="split to draw the gallery from (default: the first)")
    check.add_argument("--out", type=Path, default=Path("gallery.png"), help="gallery PNG (default: gallery.png)")
    check.add_argument("--num", type=int, default=8, help="samples in the gallery (default: 8)")


def _run_data(args: argparse.Namespace) -> int:
    from regdakit.data.real import DATASETS

    if args.dataset not in DATASETS:
        print(f"error: unknown dataset {args.dataset!r}; choose one of {sorted(DATASETS)}", file=sys.stderr)
        return 2
    loader = DATASETS[args.dataset]
    splits = loader.SPLITS or (args.split or "train",)
    if args.split is not None and loader.SPLITS and args.split not in splits:
        print(f"error: --split must be one of {splits} for {args.dataset}, got {args.split!r}", file=sys.stderr)
        return 2
    layout = {k: getattr(args, k) for k in ("ann_file", "image_dir") if getattr(args, k) is not None}
    if layout and args.dataset != "coco":
        _error(f"--{' and --'.join(layout)} apply to --dataset coco only (the other loaders read their release layout)")
        return 2
    try:
        datasets = {s: loader(args.root, s, **layout) for s in splits}
    except (FileNotFoundError, ValueError, ImportError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for name, ds in datasets.items():
        print(f"{args.dataset} {name}: {len(ds)} items")
    shown = datasets[args.split or splits[0]]
    try:
        save_gallery(shown, args.out, args.num)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"gallery of {min(args.num, len(shown))} {shown.split} samples: {args.out}")
    return 0


def save_gallery(dataset, out: Path, num: int = 8) -> None:
    """Save ``num`` evenly spaced samples of ``dataset`` with their skeletons as a PNG."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed; also safe on a head-less GPU machine
    import matplotlib.pyplot as plt

    from regdakit.viz import plot_skeleton

    count = min(num, len(dataset))
    cols = min(4, max(count, 1))
    rows = max(1, -(-count // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3 * rows), squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for slot, index in enumerate(sorted({i * len(dataset) // max(count, 1) for i in range(count)})):
        sample = dataset.load(index)
        plot_skeleton(
            sample.keypoints,
            dataset.skeleton,
            sample.image,
            sample.visible,
            ax=axes.flat[slot],
            title=f"{index}: {Path(sample.meta.get('file', '')).name}",
        )
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80)
    plt.close(fig)


def _value_text(value: Any) -> str:
    """A setting's value as it is typed on the command line."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, tuple):
        return ",".join(_value_text(v) for v in value) or "empty"
    return str(value)


def _type_text(tp: Any) -> tuple[str, str]:
    """``(metavar, type description)`` of a setting's annotation."""
    if get_origin(tp) is Union or type(tp).__name__ == "UnionType":
        inner = next(a for a in get_args(tp) if a is not type(None))
        metavar, text = _type_text(inner)
        return f"{metavar}|none", f"{text} or none"
    if get_origin(tp) is tuple:
        item = get_args(tp)[0].__name__
        return f"{item.upper()},...", f"comma-separated {item}s"
    if tp is bool:
        return "true|false", "bool"
    return tp.__name__.upper(), tp.__name__


def _add_train_arguments(parser: argparse.ArgumentParser) -> None:
    from regdakit.methods import METHODS, contract
    from regdakit.training import PRESETS, RESUME_SAFE, override_types, parse_value, setting_choices, setting_docs

    scaled = [name for name, method in METHODS.items() if "adapt_iterations" in contract.run_settings(method)]

    start = parser.add_mutually_exclusive_group()
    start.add_argument(
        "--preset",
        default=None,
        choices=sorted(PRESETS),
        help=f"starting configuration (default: {DEFAULT_PRESET}); the settings below replace its values",
    )
    start.add_argument(
        "--config",
        type=Path,
        default=None,
        metavar="CONFIG_JSON",
        help="start from a saved run's config.json instead of a preset, to run it again or a variant: the "
        "settings below replace its values (give another --run_name, or --resume to continue it)",
    )
    parser.add_argument("--resume", action="store_true", help="continue the run from its last.pt, exactly")
    parser.add_argument(
        "--resume_allow",
        type=lambda text: tuple(k.strip() for k in text.split(",") if k.strip()),
        default=(),
        metavar="KEY,...",
        help="with --resume: settings that may differ from the ones the run ran with, among "
        f"{', '.join(RESUME_SAFE)} (pretrain_iterations for erm and oracle only; adapt_iterations not for "
        f"the methods whose schedules scale with it: {', '.join(scaled)}); any other difference "
        "is refused with the list of differences",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    docs, choices, presets = setting_docs(), setting_choices(), {k: _flat_values(v) for k, v in PRESETS.items()}
    groups: dict[str, Any] = {
        "": parser.add_argument_group(
            "settings",
            f"Every TrainConfig field, as --key=value or --key value. Defaults are the {DEFAULT_PRESET} preset's; "
            "other presets' values follow where they differ.",
        )
    }
    for key, tp in override_types().items():
        section = key.split(".", 1)[0] if "." in key else ""
        if section not in groups:
            groups[section] = parser.add_argument_group(f"{section} settings (--{section}.KEY)", docs.get(section))

        def parse(text: str, key: str = key, tp: object = tp) -> object:
            try:
                return parse_value(key, text, tp)
            except (TypeError, ValueError) as err:
                raise argparse.ArgumentTypeError(str(err)) from None

        metavar, type_text = _type_text(tp)
        if key in choices:
            metavar, type_text = "{" + ",".join(choices[key]) + "}", f"one of {', '.join(choices[key])}"
        default = presets[DEFAULT_PRESET][key]
        others = [f"{name}: {_value_text(v[key])}" for name, v in presets.items() if v[key] != default]
        note = f"{type_text}; default: {_value_text(default)}" + (f" ({', '.join(others)})" if others else "")
        groups[section].add_argument(
            f"--{key}",
            dest=f"set:{key}",
            type=parse,
            default=argparse.SUPPRESS,
            metavar=metavar,
            help=f"{docs.get(key, '')} [{note}]".replace("%", "%%"),
        )


def _flat_values(cfg: Any) -> dict[str, Any]:
    """A config's settings by their command-line key (``regda.margin``), tuples kept."""
    out = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            out.update({f"{f.name}.{k}": v for k, v in _flat_values(value).items()})
        else:
            out[f.name] = value
    return out


def _run_train(args: argparse.Namespace) -> int:
    import json
    import os

    from regdakit.training import (
        DistributedError,
        NonFiniteLossError,
        config_from_file,
        make_config,
        replace_values,
        train,
    )

    values = {name[4:]: value for name, value in vars(args).items() if name.startswith("set:")}
    try:
        base = config_from_file(args.config) if args.config is not None else make_config(args.preset or DEFAULT_PRESET)
        cfg = replace_values(base, values)
    except (OSError, TypeError, ValueError) as err:
        _error(err)
        return 2
    try:
        result = train(cfg, resume=args.resume, resume_allow=args.resume_allow, progress=not args.no_progress)
    except FileExistsError as err:
        _error(f"{err} (pass --resume)")
        return 2
    except DistributedError as err:  # another rank failed
        _error(err)
        # Exit now: the interpreter's shutdown would destroy the abandoned DDP wrappers, which can block on the
        # broken connection (regdakit.distributed.Context.abandon).
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(1)
    except NonFiniteLossError as err:  # the run itself failed
        _error(err)
        return 1
    # A missing dataset folder, a damaged or foreign checkpoint, a resume with other settings, a device this
    # machine lacks, a file in the way, a full disk, a setting only the run can check (batch_size vs processes).
    except (OSError, ValueError) as err:
        _error(err)
        return 2
    if os.environ.get("RANK", "0") == "0":  # under torchrun every rank has the result; one prints it
        print(json.dumps(result, indent=2))
    return 0


def _add_eval_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", type=Path, required=True, help="last.pt or a snapshot of a run")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, ...")


def _run_eval(args: argparse.Namespace) -> int:
    import json

    from regdakit.training import evaluate_checkpoint

    try:
        result = evaluate_checkpoint(args.checkpoint, args.device)
    except (OSError, ValueError) as err:  # missing, a directory, damaged or foreign, a device not here
        _error(err)
        return 2
    print(json.dumps(result, indent=2))
    return 0


#: name -> (add_arguments, run).
COMMANDS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {
    "data": (_add_data_arguments, _run_data),
    "train": (_add_train_arguments, _run_train),
    "eval": (_add_eval_arguments, _run_eval),
}


#: Settings of earlier versions that moved: old key -> (the setting now, what it sets).
_MOVED_SETTINGS: dict[str, tuple[str, str]] = {
    "regda.sigma": ("sigma", "the heatmap width (of the training targets and the pseudo-labels alike)"),
}


def _nearest_option(key: str, known: Sequence[str]) -> str:
    """Why ``--key`` is refused, naming the option(s) nearest to it among ``known`` (keys without ``--``)."""
    if key in _MOVED_SETTINGS:
        new, what = _MOVED_SETTINGS[key]
        return f"--{key} is not a setting; {what} is --{new}."
    # The same name in another section or at the top level (--dann.margin -> --regda.margin,
    # --regda.batch_size -> --batch_size), top level first; else the options it abbreviates (argparse's
    # abbreviations are off: --regda.sou -> --regda.source_loss); else the closest spelling.
    leaf = key.rsplit(".", 1)[-1]
    same_name = sorted((k for k in known if k.rsplit(".", 1)[-1] == leaf), key=lambda k: ("." in k, k))
    abbreviated = sorted(k for k in known if k.startswith(key))
    nearest = same_name[:3] or abbreviated[:3] or difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if not nearest:
        return f"--{key} is not a setting (python -m regdakit train --help lists them)."
    listed = ", ".join(f"--{k}" for k in nearest[:-1]) + (" or " if len(nearest) > 1 else "") + f"--{nearest[-1]}"
    return f"--{key} is not a setting; did you mean {listed}?"


def _unrecognized(parser: argparse.ArgumentParser, extras: Sequence[str]) -> str:
    """The "unrecognized arguments" message for ``extras``, then the nearest option of each unknown ``--key``."""
    message = f"unrecognized arguments: {' '.join(extras)}"
    # argparse keeps a parser's options in _actions only; this lists every option of `train`, settings included.
    known = [opt[2:] for action in parser._actions for opt in action.option_strings if opt.startswith("--")]
    options = dict.fromkeys(a.split("=", 1)[0][2:] for a in extras if a.startswith("--"))
    return " ".join([f"{message}.", *(_nearest_option(key, known) for key in options)]) if options else message


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen command; returns the exit status."""
    # No abbreviations (argparse's allow_abbrev), on every parser: `--regda.sou=kl` silently set
    # --regda.source_loss, and a new setting sharing a prefix would silently change what an old command means.
    # An abbreviation is refused as unknown, with the option(s) it abbreviates named.
    parser = argparse.ArgumentParser(prog="python -m regdakit", description="regdakit command line", allow_abbrev=False)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    parsers = {}
    for name, (add_arguments, _) in COMMANDS.items():
        parsers[name] = commands.add_parser(name, help=f"{name} commands", allow_abbrev=False)
        add_arguments(parsers[name])
    args, extras = parser.parse_known_args(argv)
    if extras and args.command == "train":  # a mistyped or retired setting: say which one was meant
        parsers["train"].error(_unrecognized(parsers["train"], extras))
    if extras:
        parser.error(f"unrecognized arguments: {' '.join(extras)}")  # what parse_args says
    return COMMANDS[args.command][1](args)


if __name__ == "__main__":
    sys.exit(main())
