"""Appearance: backgrounds, materials, lighting and camera of each domain.

Every function is batched and draws its randomness from a ``torch.Generator``.
Images are ``(B, 3, H, W)`` floats in [0, 1].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from regdakit.data.synthetic.geometry import uniform
from regdakit.data.synthetic.raster import Raster
from regdakit.data.transforms import gaussian_blur

__all__ = ["smooth_noise", "clutter_background", "studio_background", "shade_parts", "camera", "sensor_noise"]


def smooth_noise(b: int, channels: int, size: int, cells: int, g: torch.Generator) -> torch.Tensor:
    """Low-frequency noise in [0, 1]: a ``cells x cells`` random grid upsampled bilinearly."""
    grid = torch.rand(b, channels, cells, cells, generator=g)
    return F.interpolate(grid, size=(size, size), mode="bilinear", align_corners=False)


def clutter_background(b: int, size: int, g: torch.Generator, *, shapes: int = 16) -> torch.Tensor:
    """Random photo-like clutter: a coloured noise field under random shapes.

    Models the random background photographs that RHD and SURREAL composite
    their renders over: textured, colourful, with edges everywhere, so a
    source-only model learns that texture alone is not a keypoint. Shapes
    are axis-aligned ellipses and bars (long thin rectangles included), drawn
    in order; each is separable in x and y, so a shape costs one outer sum.
    """
    base = smooth_noise(b, 3, size, 5, g) * 0.7 + smooth_noise(b, 3, size, 17, g) * 0.3
    centre = torch.rand(b, shapes, 2, generator=g) * size
    half = uniform((b, shapes, 2), 0.02, 0.3, g) * size
    ellipse = torch.rand(b, shapes, 1, 1, generator=g) < 0.5
    coords = torch.arange(size, dtype=torch.float32)
    ex = ((coords - centre[..., 0:1]) / half[..., 0:1])[..., None, :]  # (B, S, 1, W)
    ey = ((coords - centre[..., 1:2]) / half[..., 1:2])[..., :, None]  # (B, S, H, 1)
    inside = torch.where(ellipse, ex.square() + ey.square() <= 1, (ex.abs() <= 1) & (ey.abs() <= 1))
    order = torch.arange(1, shapes + 1, dtype=torch.float32)[None, :, None, None]
    top = (inside * order).amax(dim=1).long()  # (B, H, W): the last shape drawn, 0 for none
    colours = torch.cat([torch.zeros(b, 1, 3), torch.rand(b, shapes, 3, generator=g)], dim=1)
    painted = colours.gather(1, top.flatten(1)[..., None].expand(-1, -1, 3)).reshape(b, size, size, 3)
    painted = painted.permute(0, 3, 1, 2) * (0.8 + 0.2 * base[:, :1])  # shapes keep some texture
    return torch.where(top[:, None] > 0, painted, base)


def studio_background(b: int, size: int, g: torch.Generator) -> torch.Tensor:
    """A studio backdrop: a smooth gradient in a dim neutral colour, a little texture."""
    top = uniform((b, 3, 1, 1), 0.05, 0.45, g)
    tint = uniform((b, 3, 1, 1), -0.05, 0.05, g)
    bottom = (top * uniform((b, 1, 1, 1), 0.5, 1.2, g) + tint).clamp(0, 1)
    ramp = torch.linspace(0, 1, size).reshape(1, 1, size, 1)
    backdrop = top + (bottom - top) * ramp
    return (backdrop + 0.06 * (smooth_noise(b, 1, size, 9, g) - 0.5)).clamp_(0, 1)


def shade_parts(
    raster: Raster,
    part_colours: torch.Tensor,
    *,
    cylinder: float,
    light: torch.Tensor | None = None,
    texture: torch.Tensor | None = None,
) -> torch.Tensor:
    """Colour the front part of every pixel.

    Args:
        raster: From :func:`rasterize`.
        part_colours: ``(B, S, 3)`` base colour of each capsule.
        cylinder: Strength of the cylinder shading (darker towards the rims).
        light: Optional ``(B, 1, H, W)`` multiplicative lighting field.
        texture: Optional ``(B, 1, H, W)`` multiplicative surface texture.

    Returns:
        ``(B, 3, H, W)``; background pixels are 0 (composite with the mask).
    """
    b, h, w = raster.part.shape
    index = raster.part.clamp_min(0).flatten(1)[..., None].expand(-1, -1, 3)
    colour = part_colours.gather(1, index).reshape(b, h, w, 3).permute(0, 3, 1, 2)
    shade = 1 - cylinder * raster.radial.square()[:, None]
    out = colour * shade
    if light is not None:
        out = out * light
    if texture is not None:
        out = out * texture
    return out.clamp_(0, 1) * raster.mask[:, None]


def camera(images: torch.Tensor, g: torch.Generator, *, blur: tuple[float, float]) -> torch.Tensor:
    """Lens blur: a per-image Gaussian blur with sigma in ``blur`` (pixels)."""
    sigma = uniform((images.shape[0],), *blur, g)
    return gaussian_blur(images, sigma) if float(sigma.max()) > 0 else images


def sensor_noise(images: torch.Tensor, g: torch.Generator, noise: tuple[float, float]) -> torch.Tensor:
    """Additive Gaussian sensor noise with a per-image standard deviation in ``noise``."""
    std = uniform((images.shape[0], 1, 1, 1), *noise, g)
    if float(std.max()) <= 0:
        return images
    # Uniform noise with the same standard deviation (its shape does not
    # matter here and uniform draws are 3x cheaper), mostly luminance noise
    # with a weaker colour part: one full-strength grey draw per pixel.
    b, _, h, w = images.shape
    grey = torch.rand((b, 1, h, w), generator=g).sub_(0.5).mul_(std * 12**0.5)
    return images.add(grey).clamp_(0, 1)
