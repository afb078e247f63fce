"""Pseudo-label generation: regdakit's vectorised path against a per-keypoint loop.

The reference builds ground-truth/ground-false pseudo-labels on the CPU with
numpy, one keypoint at a time, three times per iteration. regdakit's
``pseudo_labels`` is one batched argmax plus separable Gaussians on the
logits' device. This script checks both give the same maps
and times them in one run at the paper's size (B=32, K=21, 64 x 64).

    python benchmarks/pseudo_labels.py [--repeats 20]
"""

from __future__ import annotations

import argparse

import torch
from _record import write
from _timing import time_calls

from regdakit.disparity import pseudo_labels
from regdakit.heatmaps import CUTOFF


def loop_pseudo_labels(logits: torch.Tensor, sigma: float = 2.0) -> tuple[torch.Tensor, torch.Tensor]:
    """A plain implementation: host copy, Python loops over batch and keypoints."""
    array = logits.detach().cpu().numpy()
    b, k, h, w = array.shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    truth = torch.zeros(b, k, h, w)
    for i in range(b):
        for j in range(k):
            idx = int(array[i, j].argmax())
            cy, cx = divmod(idx, w)
            g = torch.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * sigma**2))
            truth[i, j] = torch.where(g < CUTOFF, torch.zeros_like(g), g)
    false = torch.zeros_like(truth)
    for j in range(k):
        false[:, j] = sum(truth[:, m] for m in range(k) if m != j).clamp(0, 1)
    return truth.to(logits.device), false.to(logits.device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    torch.manual_seed(0)
    logits = torch.randn(32, 21, 64, 64)
    fast, plain = pseudo_labels(logits), loop_pseudo_labels(logits)
    torch.testing.assert_close(fast[0], plain[0])
    torch.testing.assert_close(fast[1], plain[1], atol=1e-6, rtol=0)
    t_fast = min(time_calls(lambda: pseudo_labels(logits), args.repeats))
    t_loop = min(time_calls(lambda: loop_pseudo_labels(logits), max(3, args.repeats // 4)))
    result = {
        "shape": list(logits.shape),
        "vectorised_ms": round(t_fast * 1e3, 3),
        "loop_ms": round(t_loop * 1e3, 3),
        "speedup": round(t_loop / t_fast, 1),
        "note": "best of repeated calls in one run; ratio only (CPU absolute times are not comparable across machines)",
    }
    path = write("pseudo_labels_cpu", result)
    print(
        f"vectorised {result['vectorised_ms']} ms, loop {result['loop_ms']} ms, speed-up {result['speedup']}x -> {path}"
    )


if __name__ == "__main__":
    main()
