"""Small hand-made heatmaps shared by the density and widget tests."""

import torch


def peaked_logits(cells: list[list[tuple[int, int]]], size: int) -> torch.Tensor:
    """``(B, K, size, size)`` logits whose argmax of (b, k) is at cell (x, y) = ``cells[b][k]``."""
    logits = torch.zeros(len(cells), len(cells[0]), size, size)
    for b, row in enumerate(cells):
        for k, (x, y) in enumerate(row):
            logits[b, k, y, x] = 1.0
    return logits
