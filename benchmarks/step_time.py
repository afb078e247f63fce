"""Step time of ERM, RegDA fused and RegDA plain (three-pass), with FLOP counts.

The same model (``tiny`` PoseResNet with both heads; ERM runs only ψ and f),
batch and input size for all three, timed in one run (median of repeated
steps after a warm-up), plus the floating-point operations of one step of
each counted with ``torch.utils.flop_counter``. Also the share of a fused
step spent making pseudo-labels.

    python benchmarks/step_time.py [--repeats 8] [--backbone tiny] [--size 128] [--batch 32] [--device cpu]
"""

from __future__ import annotations

import argparse
import copy
import statistics

import torch
from _record import write
from _timing import time_calls
from torch.utils.flop_counter import FlopCounterMode

from regdakit.data.synthetic import SyntheticStream
from regdakit.disparity import pseudo_labels
from regdakit.methods import erm, regda
from regdakit.models import pose_resnet


def sync(device: torch.device) -> None:
    """Wait for queued GPU work (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_time(fn, repeats: int, device: torch.device) -> float:
    """Median seconds of ``repeats`` calls after two warm-up calls (GPU work included)."""
    return statistics.median(time_calls(fn, repeats, warmup=2, sync=lambda: sync(device)))


def flops(fn) -> int:
    """Floating-point operations of one call (matmuls and convolutions)."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=8)
    parser.add_argument("--backbone", default="tiny")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--name", default="step_time_cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    k, heatmap = 21, args.size // 4
    source = SyntheticStream("hands", "rendered", args.batch, args.size, heatmap_size=heatmap)
    target = SyntheticStream("hands", "studio", args.batch, args.size, labels=False)
    batch_s = {key: v.to(device) if torch.is_tensor(v) else v for key, v in next(source).items()}
    batch_t = {key: v.to(device) if torch.is_tensor(v) else v for key, v in next(target).items()}
    base = pose_resnet(args.backbone, k).to(device).train()

    def runner(method, cfg):
        model = copy.deepcopy(base)
        optimizers = method.make_optimizers(model, cfg)
        it = iter(range(10**9))
        return lambda: method.step(model, batch_s, batch_t, optimizers, cfg, next(it) + 5000)

    steps = {
        "erm": runner(erm, erm.Config()),
        "regda_fused": runner(regda, regda.Config(fused=True)),
        "regda_plain": runner(regda, regda.Config(fused=False)),
    }
    seconds = {name: median_time(fn, args.repeats, device) for name, fn in steps.items()}
    counted = {name: flops(fn) for name, fn in steps.items()}
    with torch.no_grad():
        y_t, _ = base(batch_t["image"], step=0)
    pseudo = median_time(lambda: pseudo_labels(y_t), args.repeats * 4, device)
    result = {
        "backbone": args.backbone,
        "image_size": args.size,
        "heatmap_size": heatmap,
        "batch_size": args.batch,
        "seconds": {name: round(s, 4) for name, s in seconds.items()},
        "gflops": {name: round(f / 1e9, 2) for name, f in counted.items()},
        "ratio_fused": round(seconds["regda_fused"] / seconds["erm"], 3),
        "ratio_plain": round(seconds["regda_plain"] / seconds["erm"], 3),
        "fused_over_plain": round(seconds["regda_fused"] / seconds["regda_plain"], 3),
        "flop_ratio_fused": round(counted["regda_fused"] / counted["erm"], 3),
        "flop_ratio_plain": round(counted["regda_plain"] / counted["erm"], 3),
        "flop_fused_over_plain": round(counted["regda_fused"] / counted["regda_plain"], 3),
        "pseudo_label_seconds": round(pseudo, 5),
        "pseudo_label_share": round(pseudo / seconds["regda_fused"], 4),
        "goals": "fused_over_plain <= 0.67; ratio_fused <= 1.1 * flop_ratio_fused; pseudo_label_share <= 0.02",
    }
    print({key: v for key, v in result.items() if key != "goals"})
    print("wrote", write(args.name, result))


if __name__ == "__main__":
    main()
