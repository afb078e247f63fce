"""Command line: ``python -m regdakit <command> ...``.

Commands live in :data:`COMMANDS`, a plain dict ``name -> (add_arguments,
run)``: ``add_arguments(parser)`` declares the command's options and
``run(args) -> int`` executes it. Adding ``train`` or ``eval`` is one entry.

* ``python -m regdakit data check ROOT --dataset NAME [--split S] [--out gallery.png]``
  validates a dataset folder, prints the number of items per split and saves
  a gallery of samples with their skeletons.
* ``python -m regdakit train --task hands --method regda --preset cpu-small [--key=value ...]``
  trains ``erm``, ``oracle``, ``regda`` or ``control`` (see :mod:`regdakit.train`); any
  ``TrainConfig`` field is a type-checked ``--key=value``, nested ones as
  ``--regda.margin=2``; ``--resume`` continues a run exactly. Under
  ``torchrun --nproc_per_node N -m regdakit train ...`` the same command trains
  with DistributedDataParallel on N processes (``docs/distributed.md``); rank 0
  alone writes files and prints the result.
* ``python -m regdakit eval --checkpoint PATH`` evaluates a checkpoint on its
  run's fixed source-val and target-test sets and prints JSON.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

__all__ = ["COMMANDS", "main"]


def _add_data_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    check = actions.add_parser("check", help="validate a dataset folder, count its splits, save a gallery")
    check.add_argument("root", type=Path, help="folder of the unpacked release")
    check.add_argument("--dataset", required=True, help="loader name (see regdakit.data.real.DATASETS)")
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
    try:
        datasets = {s: loader(args.root, s) for s in splits}
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


def _add_train_arguments(parser: argparse.ArgumentParser) -> None:
    from regdakit.train import PRESETS, override_types, parse_value

    parser.add_argument("--preset", default="cpu-small", choices=sorted(PRESETS), help="starting configuration")
    parser.add_argument("--resume", action="store_true", help="continue the run from its last.pt")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    settings = parser.add_argument_group("settings (any TrainConfig field, nested as --regda.margin=2)")
    for key, tp in override_types().items():

        def parse(text: str, key: str = key, tp: object = tp) -> object:
            try:
                return parse_value(key, text, tp)
            except (TypeError, ValueError) as err:
                raise argparse.ArgumentTypeError(str(err)) from None

        settings.add_argument(
            f"--{key}", dest=f"set:{key}", type=parse, default=argparse.SUPPRESS, metavar=key.rsplit(".", 1)[-1].upper()
        )


def _run_train(args: argparse.Namespace) -> int:
    import json
    import os

    from regdakit.train import DistributedError, NonFiniteLossError, make_config, replace_values, train

    values = {name[4:]: value for name, value in vars(args).items() if name.startswith("set:")}
    try:
        cfg = replace_values(make_config(args.preset), values)
    except (TypeError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        result = train(cfg, resume=args.resume, progress=not args.no_progress)
    except FileExistsError as err:
        print(f"error: {err} (pass --resume)", file=sys.stderr)
        return 2
    except FileNotFoundError as err:  # a real dataset's folder is missing or incomplete
        print(f"error: {err}", file=sys.stderr)
        return 2
    except (NonFiniteLossError, DistributedError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except ValueError as err:  # a setting that only the run can check (e.g. batch_size vs the process count)
        print(f"error: {err}", file=sys.stderr)
        return 2
    if os.environ.get("RANK", "0") == "0":  # under torchrun every rank has the result; one prints it
        print(json.dumps(result, indent=2))
    return 0


def _add_eval_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", type=Path, required=True, help="last.pt or a snapshot of a run")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, ...")


def _run_eval(args: argparse.Namespace) -> int:
    import json

    from regdakit.train import evaluate_checkpoint

    if not args.checkpoint.is_file():
        print(f"error: --checkpoint {args.checkpoint} is not a file", file=sys.stderr)
        return 2
    try:
        result = evaluate_checkpoint(args.checkpoint, args.device)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2))
    return 0


#: name -> (add_arguments, run).
COMMANDS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {
    "data": (_add_data_arguments, _run_data),
    "train": (_add_train_arguments, _run_train),
    "eval": (_add_eval_arguments, _run_eval),
}


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen command; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m regdakit", description="regdakit command line")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (add_arguments, _) in COMMANDS.items():
        add_arguments(commands.add_parser(name, help=f"{name} commands"))
    args = parser.parse_args(argv)
    return COMMANDS[args.command][1](args)


if __name__ == "__main__":
    sys.exit(main())
