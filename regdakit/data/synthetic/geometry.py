"""Small batched 3-D helpers for the articulated models."""

from __future__ import annotations

import torch


def rotation_matrices(yaw: torch.Tensor, pitch: torch.Tensor, roll: torch.Tensor) -> torch.Tensor:
    """``(B, 3, 3)`` rotations ``Rz(roll) @ Rx(pitch) @ Ry(yaw)`` from degrees.

    Axes: ``x`` right, ``y`` down, ``z`` towards the camera. ``yaw`` turns about
    the vertical axis (180° shows the back), ``pitch`` tilts towards or away
    from the camera (foreshortening), ``roll`` is the in-plane rotation.
    """
    y, p, r = (torch.deg2rad(v) for v in (yaw, pitch, roll))
    one, zero = torch.ones_like(y), torch.zeros_like(y)

    def stack(rows):
        return torch.stack([torch.stack(row, -1) for row in rows], -2)

    ry = stack([[y.cos(), zero, y.sin()], [zero, one, zero], [-y.sin(), zero, y.cos()]])
    rx = stack([[one, zero, zero], [zero, p.cos(), -p.sin()], [zero, p.sin(), p.cos()]])
    rz = stack([[r.cos(), -r.sin(), zero], [r.sin(), r.cos(), zero], [zero, zero, one]])
    return rz @ rx @ ry


def uniform(shape, low, high, generator: torch.Generator) -> torch.Tensor:
    """Uniform samples in ``[low, high)`` (``low``/``high`` broadcast)."""
    low = torch.as_tensor(low, dtype=torch.float32)
    high = torch.as_tensor(high, dtype=torch.float32)
    return torch.rand(shape, generator=generator) * (high - low) + low


def normalize(v: torch.Tensor) -> torch.Tensor:
    """Unit vectors along the last dimension."""
    return v / v.norm(dim=-1, keepdim=True).clamp_min(1e-8)
