#!/usr/bin/env python3
"""Copy the source-only models into ``data_samples/checkpoints/`` (what ``regdakit.pretrained`` loads).

Each shipped checkpoint holds the model's weights and its run's config only
(no optimiser state: a few MB), and its training log beside it. The source is
either the run of ``regdakit.pretrained.RETRAIN_COMMANDS[task]`` or the
trainer's pre-training cache of the same recipe (identical computation: same
seed, stream and steps), e.g. one of ``benchmarks/synthetic_benchmark.py``.

Usage::

    python tools/ship_checkpoints.py --task hands --run runs/hands-source-only
    python tools/ship_checkpoints.py --task hands \
        --pretrain-cache runs/synthetic_benchmark/pretrain/hands-rendered-seed0-<key>
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
from pathlib import Path

import torch

from regdakit.pretrained import CHECKPOINTS, retrain_config
from regdakit.train import pretrain_key


def main() -> int:
    """Write ``CHECKPOINTS[task]`` and its ``.metrics.jsonl``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", required=True, choices=sorted(CHECKPOINTS))
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", type=Path, help="run folder of the retrain command (last.pt, metrics.jsonl)")
    source.add_argument("--pretrain-cache", type=Path, help="trainer pre-training cache folder of the same recipe")
    args = parser.parse_args()
    cfg = retrain_config(args.task)
    if args.run is not None:
        state = torch.load(args.run / "last.pt", weights_only=True)
        if state["config"] != dataclasses.asdict(cfg) | {"out": state["config"]["out"]}:
            raise SystemExit(f"{args.run} was not trained with the retrain recipe of {args.task}")
        model, log = state["model"], args.run / "metrics.jsonl"
    else:
        expected = pretrain_key(cfg)
        if args.pretrain_cache.name != expected:
            raise SystemExit(f"{args.pretrain_cache} is not the recipe's pre-training (expected folder {expected})")
        model, log = (
            torch.load(args.pretrain_cache / "model.pt", weights_only=True),
            args.pretrain_cache / "metrics.jsonl",
        )
    path = CHECKPOINTS[args.task]
    path.parent.mkdir(parents=True, exist_ok=True)
    config = dataclasses.asdict(dataclasses.replace(cfg, out="runs"))
    torch.save({"config": config, "model": model}, path)
    shutil.copyfile(log, path.with_suffix(".metrics.jsonl"))
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB) and its log")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
