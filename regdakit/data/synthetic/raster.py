"""Batched rasterisation of capsules with a depth buffer.

Every body part (finger segment, palm, limb, torso, head) is a *capsule*: the
set of image points within ``radius`` of a segment ``a -> b``. Its surface
depth at a pixel is the depth interpolated along the segment plus the bulge
of a cylinder, ``sqrt(r^2 - d^2)``, so crossing fingers occlude each other
where they really overlap. Depth ``z`` grows towards the camera.

Shapes: ``B`` images, ``S`` capsules, ``H x W`` pixels; positions ``(x, y)``
with pixel ``(row i, col j)`` centred at ``(x=j, y=i)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["Capsules", "Raster", "rasterize"]


@dataclass(frozen=True)
class Capsules:
    """A batch of capsules.

    Attributes:
        a: ``(B, S, 2)`` first end points (pixels).
        b: ``(B, S, 2)`` second end points (pixels); ``a == b`` gives a disc.
        za: ``(B, S)`` depth at ``a`` (pixels, towards the camera).
        zb: ``(B, S)`` depth at ``b``.
        radius: ``(B, S)`` radii in pixels (0 hides a capsule).
    """

    a: torch.Tensor
    b: torch.Tensor
    za: torch.Tensor
    zb: torch.Tensor
    radius: torch.Tensor


@dataclass(frozen=True)
class Raster:
    """What :func:`rasterize` sees at each pixel.

    Attributes:
        part: ``(B, H, W)`` long index of the front capsule, ``-1`` for background.
        depth: ``(B, H, W)`` its surface depth (``-inf`` on background).
        radial: ``(B, H, W)`` distance to its axis over its radius, in [0, 1]
            (0 on the axis: used for cylinder shading).
        along: ``(B, H, W)`` position along its axis in [0, 1] (``a`` -> ``b``).
    """

    part: torch.Tensor
    depth: torch.Tensor
    radial: torch.Tensor
    along: torch.Tensor

    @property
    def mask(self) -> torch.Tensor:
        """``(B, H, W)`` bool: a capsule covers the pixel."""
        return self.part >= 0


def rasterize(capsules: Capsules, height: int, width: int) -> Raster:
    """Depth-buffer the capsules into ``height x width`` images.

    Each capsule is evaluated only in a square window around it, and capsule
    slots are grouped by window size (finger segments are small, the palm and
    forearm large), so the cost is a few passes over ``B x sum(window area)``
    values instead of ``B x S x H x W``. Windows are scattered into the depth
    buffer with ``scatter_reduce(amax)``; ties in depth go to the later capsule.

    Returns:
        A :class:`Raster`.
    """
    b, s = capsules.radius.shape
    device, dtype = capsules.a.device, capsules.a.dtype
    lo = (torch.minimum(capsules.a, capsules.b) - capsules.radius[..., None]).floor()
    hi = (torch.maximum(capsules.a, capsules.b) + capsules.radius[..., None]).ceil()
    extent = (hi - lo).amax(dim=(0, 2)).clamp(1, max(height, width)).long() + 1  # (S,) per slot
    # Slots sorted by window size, cut into groups whose windows differ by at
    # most 1.5x in side: little work is wasted on oversized windows.
    order = torch.argsort(extent)
    groups, start = [], 0
    sizes = extent[order].tolist()
    for i in range(1, len(sizes) + 1):
        if i == len(sizes) or sizes[i] > 1.5 * sizes[start]:
            groups.append(order[start:i])
            start = i

    pixels = height * width
    depth_buffer = torch.full((b, pixels + 1), float("-inf"), dtype=dtype, device=device)
    evaluated = [_window(capsules, slots, int(extent[slots].max()), lo[:, slots], height, width) for slots in groups]
    for index, depth, *_ in evaluated:
        depth_buffer.scatter_reduce_(1, index, depth, reduce="amax")
    part = torch.full((b, pixels + 1), -1, dtype=torch.long, device=device)
    for (index, depth, *_), slots in zip(evaluated, groups, strict=True):
        wins = (depth == depth_buffer.gather(1, index)) & torch.isfinite(depth)
        label = slots.to(device).repeat_interleave(depth.shape[1] // slots.numel()).expand(b, -1)
        part.scatter_reduce_(1, index, torch.where(wins, label, torch.full_like(label, -1)), reduce="amax")
    radial = torch.zeros((b, pixels + 1), dtype=dtype, device=device)
    along = torch.zeros((b, pixels + 1), dtype=dtype, device=device)
    for (index, depth, r, t), slots in zip(evaluated, groups, strict=True):
        label = slots.to(device).repeat_interleave(depth.shape[1] // slots.numel()).expand(b, -1)
        mine = (part.gather(1, index) == label) & torch.isfinite(depth)
        radial.scatter_reduce_(1, index, torch.where(mine, r, torch.zeros_like(r)), reduce="amax")
        along.scatter_reduce_(1, index, torch.where(mine, t, torch.zeros_like(t)), reduce="amax")

    def image(values: torch.Tensor) -> torch.Tensor:
        return values[:, :pixels].reshape(b, height, width)

    return Raster(image(part), image(depth_buffer), image(radial).clamp_(0, 1), image(along))


def _window(
    capsules: Capsules, slots: torch.Tensor, size: int, corner: torch.Tensor, height: int, width: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Evaluate capsule ``slots`` in ``size x size`` windows at ``corner`` ``(B, n, 2)``.

    Returns ``(index, depth, radial, along)``, each ``(B, n*size*size)``: the
    flat pixel index (``H*W`` for pixels off the image), the surface depth
    (``-inf`` outside the capsule), distance/radius and position along the axis.
    """
    a, b_end = capsules.a[:, slots], capsules.b[:, slots]
    radius = capsules.radius[:, slots]
    offsets = torch.arange(size, dtype=a.dtype, device=a.device)
    xs = corner[..., 0:1] + offsets  # (B, n, P) pixel x of the window columns
    ys = corner[..., 1:2] + offsets  # (B, n, P) pixel y of the window rows
    d = b_end - a
    length2 = (d**2).sum(-1).clamp_min(1e-6)
    # u = ((p - a) . d) / |d|^2 is separable: an x term plus a y term
    ux = ((xs - a[..., 0:1]) * (d[..., 0:1] / length2[..., None]))[..., None, :]  # (B, n, 1, P)
    uy = ((ys - a[..., 1:2]) * (d[..., 1:2] / length2[..., None]))[..., :, None]  # (B, n, P, 1)
    t = (ux + uy).clamp_(0.0, 1.0)  # (B, n, P, P)
    dx = xs[..., None, :] - (a[..., 0, None, None] + t * d[..., 0, None, None])
    dy = ys[..., :, None] - (a[..., 1, None, None] + t * d[..., 1, None, None])
    dist2 = dx.square_().add_(dy.square_())
    r2 = (radius**2)[..., None, None]
    inside = dist2 < r2
    bulge = (r2 - dist2).clamp_min_(0).sqrt_()
    za, zb = capsules.za[:, slots], capsules.zb[:, slots]
    depth = (za[..., None, None] + t * (zb - za)[..., None, None] + bulge).masked_fill_(~inside, float("-inf"))
    on_image = ((xs >= 0) & (xs < width))[..., None, :] & ((ys >= 0) & (ys < height))[..., :, None]
    index = (ys.long()[..., :, None] * width + xs.long()[..., None, :]).masked_fill_(~on_image, height * width)
    depth = depth.masked_fill_(~on_image, float("-inf"))
    radial = (dist2 / r2.clamp_min(1e-6)).sqrt_()
    batch = a.shape[0]
    return index.reshape(batch, -1), depth.reshape(batch, -1), radial.reshape(batch, -1), t.reshape(batch, -1)
