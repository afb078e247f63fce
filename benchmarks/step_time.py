"""Step time of ERM, RegDA fused and RegDA plain (three-pass), with FLOP counts.

The same model (``tiny`` PoseResNet with both heads; ERM runs only ψ and f),
batch and input size for all three, timed in one run (median of repeated
steps after a warm-up), plus the floating-point operations of one step of
each counted with ``torch.utils.flop_counter``. Also the share of a fused
step spent making pseudo-labels.

``--modes`` runs the comparison once per numeric mode in the same process:
``fp32``, and ``bf16-cl`` (bf16 autocast with channels_last model and
inputs; the KL losses upcast to fp32 themselves). Each mode reports seconds,
source images per second (every step consumes one source batch), and on a
GPU the peak memory of each step: each method is measured with only its own
model and optimiser state on the device (beside the shared base model and the
two batches), so the three peaks compare. The GPU run of the trainer issue
(stage 1 of ``benchmarks/gpu_check.sh``) is::

    python benchmarks/step_time.py --device cuda --backbone resnet101 --size 256 --batch 32 \
        --modes fp32 bf16-cl --name step_time_gpu

    python benchmarks/step_time.py [--repeats 8] [--backbone tiny] [--size 128] [--batch 32] [--device cpu]

``--out-dir DIR`` writes ``DIR/<name>.json`` instead of ``benchmarks/results/<name>.json``
(the CPU toy mode of ``gpu_check.sh`` and its test).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import gc
import json
import statistics
from pathlib import Path

import torch
from _record import portable, provenance, write
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


#: Numeric modes: name -> (autocast dtype or None, channels_last).
MODES = {"fp32": (None, False), "bf16-cl": (torch.bfloat16, True)}


def measure(base, batch_s, batch_t, device: torch.device, mode: str, repeats: int) -> dict:
    """Seconds, images/s, peak memory and FLOPs of ERM, fused and plain steps in one numeric mode."""
    dtype, channels_last = MODES[mode]
    layout = torch.channels_last if channels_last else torch.contiguous_format
    images_s = batch_s["image"].to(memory_format=layout)
    images_t = batch_t["image"].to(memory_format=layout)
    batch_s, batch_t = dict(batch_s, image=images_s), dict(batch_t, image=images_t)

    def autocast():
        return torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()

    def runner(method, cfg):
        model = copy.deepcopy(base).to(memory_format=layout)
        optimizers = method.make_optimizers(model, cfg)
        it = iter(range(10**9))

        def step():
            with autocast():
                return method.step(model, batch_s, batch_t, optimizers, cfg, next(it) + 5000)

        return step

    recipes = {
        "erm": (erm, erm.Config()),
        "regda_fused": (regda, regda.Config(fused=True)),
        "regda_plain": (regda, regda.Config(fused=False)),
    }
    seconds, peak, counted = {}, {}, {}
    for name, (method, cfg) in recipes.items():
        # One method's model and optimiser state at a time, so that its peak memory is its own.
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
        fn = runner(method, cfg)
        seconds[name] = median_time(fn, repeats, device)
        peak[name] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2) if device.type == "cuda" else None
        counted[name] = flops(fn)
        del fn
    batch = images_s.shape[0]
    return {
        "seconds": {name: round(s, 4) for name, s in seconds.items()},
        "source_images_per_second": {name: round(batch / s, 1) for name, s in seconds.items()},
        "peak_memory_gib": peak,
        "gflops": {name: round(f / 1e9, 2) for name, f in counted.items()},
        "ratio_fused": round(seconds["regda_fused"] / seconds["erm"], 3),
        "ratio_plain": round(seconds["regda_plain"] / seconds["erm"], 3),
        "fused_over_plain": round(seconds["regda_fused"] / seconds["regda_plain"], 3),
        "fused_speedup_over_plain": round(seconds["regda_plain"] / seconds["regda_fused"], 3),
        "flop_ratio_fused": round(counted["regda_fused"] / counted["erm"], 3),
        "flop_ratio_plain": round(counted["regda_plain"] / counted["erm"], 3),
        "flop_fused_over_plain": round(counted["regda_fused"] / counted["regda_plain"], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=8)
    parser.add_argument("--backbone", default="tiny")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--modes", nargs="+", default=["fp32"], choices=sorted(MODES))
    parser.add_argument("--name", default="step_time_cpu")
    parser.add_argument("--out-dir", type=Path, default=None, help="write <out-dir>/<name>.json instead")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    k, heatmap = 21, args.size // 4
    source = SyntheticStream("hands", "rendered", args.batch, args.size, heatmap_size=heatmap)
    target = SyntheticStream("hands", "studio", args.batch, args.size, labels=False)
    batch_s = {key: v.to(device) if torch.is_tensor(v) else v for key, v in next(source).items()}
    batch_t = {key: v.to(device) if torch.is_tensor(v) else v for key, v in next(target).items()}
    base = pose_resnet(args.backbone, k).to(device).train()
    modes = {mode: measure(base, batch_s, batch_t, device, mode, args.repeats) for mode in args.modes}
    with torch.no_grad():
        y_t, _ = base(batch_t["image"], step=0)
    pseudo = median_time(lambda: pseudo_labels(y_t), args.repeats * 4, device)
    first = modes[args.modes[0]]
    result = {
        "backbone": args.backbone,
        "image_size": args.size,
        "heatmap_size": heatmap,
        "batch_size": args.batch,
        # The first mode's numbers at the top level (the layout of the earlier fp32-only results).
        **{key: v for key, v in first.items() if key not in ("source_images_per_second", "peak_memory_gib")},
        "pseudo_label_seconds": round(pseudo, 5),
        "pseudo_label_share": round(pseudo / first["seconds"]["regda_fused"], 4),
        "modes": modes,
        "goals": "fused_over_plain <= 0.67; ratio_fused <= 1.1 * flop_ratio_fused; pseudo_label_share <= 0.02; "
        "on a GPU fused_speedup_over_plain >= 1.5",
    }
    print({key: v for key, v in result.items() if key != "goals"})
    if args.out_dir is None:
        path = write(args.name, result)
    else:
        args.out_dir.mkdir(parents=True, exist_ok=True)
        path = args.out_dir / f"{args.name}.json"
        path.write_text(json.dumps(portable({"provenance": provenance(), **result}), indent=2) + "\n")
    print("wrote", path)


if __name__ == "__main__":
    main()
