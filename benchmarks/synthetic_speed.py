"""Rendering + augmentation of a training batch versus one ERM training step.

Both at the same size, in one run, on this machine: a batch of 32 images of
128 x 128 pixels (heatmaps 32 x 32), the ``tiny`` PoseResNet, Adam and the KL
heatmap loss. Times are medians of repeated calls after a warm-up; the
result to read is the ratio.

    python benchmarks/synthetic_speed.py [--repeats 10]
"""

from __future__ import annotations

import argparse
import statistics

import torch
from _record import write
from _timing import time_calls

from regdakit.data.synthetic import SyntheticStream
from regdakit.data.transforms import Augment
from regdakit.losses import kl_heatmap_loss
from regdakit.models import pose_resnet

BATCH, SIZE, HEATMAP = 32, 128, 32


def median_time(fn, repeats: int) -> float:
    """Median seconds of ``repeats`` calls after one warm-up call."""
    return statistics.median(time_calls(fn, repeats))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    torch.manual_seed(0)
    result = {"batch_size": BATCH, "image_size": SIZE, "heatmap_size": HEATMAP, "backbone": "tiny", "tasks": {}}
    for task, domain, rotation in (
        ("hands", "rendered", 180.0),
        ("hands", "studio", 180.0),
        ("bodies", "synthetic", 30.0),
    ):
        k = 21 if task == "hands" else 16
        stream = SyntheticStream(task, domain, BATCH, SIZE, heatmap_size=HEATMAP, augment=Augment(rotation=rotation))
        plain = SyntheticStream(task, domain, BATCH, SIZE, heatmap_size=HEATMAP)
        model = pose_resnet("tiny", k, adversarial=False)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        batch = next(stream)

        def erm_step(model=model, optimizer=optimizer, batch=batch):
            y, _ = model(batch["image"])
            loss = kl_heatmap_loss(y, batch["heatmap"], batch["weight"])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        t_data = median_time(lambda stream=stream: next(stream), args.repeats)
        t_render = median_time(lambda plain=plain: next(plain), args.repeats)
        t_step = median_time(erm_step, args.repeats)
        result["tasks"][f"{task}/{domain}"] = {
            "render_augment_encode_s": round(t_data, 4),
            "render_encode_s": round(t_render, 4),
            "erm_step_s": round(t_step, 4),
            "ratio_step_over_data": round(t_step / t_data, 2),
        }
        print(task, domain, result["tasks"][f"{task}/{domain}"])
    result["goal"] = "ratio_step_over_data >= 10"
    print("wrote", write("synthetic_speed_cpu", result))


if __name__ == "__main__":
    main()
