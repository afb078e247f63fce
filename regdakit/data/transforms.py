"""Keypoint-aware image transforms in plain torch, batched.

Coordinates: pixel ``(row i, col j)`` is centred at ``(x=j, y=i)``; an image
of width ``W`` spans ``-0.5 <= x < W - 0.5``. An affine transform is a
``(B, 2, 3)`` matrix ``A`` mapping an input position ``p = (x, y)`` to the
output position ``A @ (x, y, 1)``. Images are resampled through the inverse
map with bilinear interpolation and black padding, keypoints through ``A``
itself, so both move exactly together.

Rotation, scale, translation and cropping are composed into **one** warp
(no corner loss from rotating first and cropping afterwards, as the reference
does). Keypoints that leave the frame become invisible.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from regdakit._validation import as_size, check_tensor
from regdakit.data.base import Sample
from regdakit.keypoints import Skeleton

__all__ = [
    "affine_matrices",
    "box_matrices",
    "warp_images",
    "warp_keypoints",
    "inside",
    "hflip",
    "color_jitter",
    "gaussian_blur",
    "Augment",
]


def affine_matrices(
    center: torch.Tensor,
    output_size: int | Sequence[int],
    scale: torch.Tensor | float = 1.0,
    rotation: torch.Tensor | float = 0.0,
) -> torch.Tensor:
    """Matrices that put ``center`` at the output's centre, rotated and scaled.

    ``q = S R (p - center) + c_out`` with ``c_out = ((w - 1) / 2, (h - 1) / 2)``,
    ``R`` a rotation by ``rotation`` degrees (counter-clockwise as seen on
    screen) and ``S = diag(sx, sy)``.

    Args:
        center: ``(B, 2)`` input positions ``(x, y)``.
        output_size: ``(h, w)`` of the output.
        scale: Output pixels per input pixel: a number, ``(B,)`` or ``(B, 2)`` for ``(sx, sy)``.
        rotation: Degrees, a number or ``(B,)``.

    Returns:
        ``(B, 2, 3)`` matrices.
    """
    check_tensor("center", center, ("B", 2))
    h, w = as_size("output_size", output_size)
    b = center.shape[0]
    dtype, device = center.dtype, center.device
    scale = torch.as_tensor(scale, dtype=dtype, device=device)
    scale = scale.expand(b, 2) if scale.ndim < 2 and scale.numel() == 1 else scale
    scale = scale[:, None].expand(b, 2) if scale.ndim == 1 else scale
    theta = torch.deg2rad(torch.as_tensor(rotation, dtype=dtype, device=device)).expand(b)
    cos, sin = torch.cos(theta), torch.sin(theta)
    # y points down, so a counter-clockwise turn on screen is [[c, s], [-s, c]] in (x, y).
    rot = torch.stack([torch.stack([cos, sin], -1), torch.stack([-sin, cos], -1)], -2)  # (B, 2, 2)
    linear = scale[:, :, None] * rot  # S @ R
    out_center = torch.tensor([(w - 1) / 2, (h - 1) / 2], dtype=dtype, device=device)
    shift = out_center - (linear @ center[:, :, None])[:, :, 0]
    return torch.cat([linear, shift[:, :, None]], dim=-1)


def box_matrices(boxes: torch.Tensor, output_size: int | Sequence[int]) -> torch.Tensor:
    """Matrices that crop boxes ``(left, top, right, bottom)`` and resize them.

    Boxes are in pixel-edge units, as PIL's ``crop``: ``(0, 0, W, H)`` is the
    whole image and the box covers pixels ``left .. right - 1`` (positions
    ``left - 0.5`` to ``right - 0.5``), which fill the output exactly.
    Fractional and out-of-image boxes are allowed (black padding); non-square
    boxes are stretched.

    Args:
        boxes: ``(B, 4)``.
        output_size: ``(h, w)``.

    Returns:
        ``(B, 2, 3)``.
    """
    check_tensor("boxes", boxes, ("B", 4))
    h, w = as_size("output_size", output_size)
    size = boxes[:, 2:] - boxes[:, :2]
    if bool((size <= 0).any()):
        raise ValueError(f"boxes must have x1 > x0 and y1 > y0, got {boxes[(size <= 0).any(-1)].tolist()[:3]}")
    scale = torch.tensor([w, h], dtype=boxes.dtype, device=boxes.device) / size
    return affine_matrices((boxes[:, :2] + boxes[:, 2:]) / 2 - 0.5, (h, w), scale)


def _invert(matrices: torch.Tensor) -> torch.Tensor:
    linear, shift = matrices[:, :, :2], matrices[:, :, 2:]
    inv = torch.linalg.inv(linear)
    return torch.cat([inv, -inv @ shift], dim=-1)


def warp_images(images: torch.Tensor, matrices: torch.Tensor, output_size: int | Sequence[int]) -> torch.Tensor:
    """Resample images so that input position ``p`` lands at ``A p``.

    Args:
        images: ``(B, C, H, W)``.
        matrices: ``(B, 2, 3)``.
        output_size: ``(h, w)``.

    Returns:
        ``(B, C, h, w)``; bilinear, zero outside the input.
    """
    check_tensor("images", images, ("B", "C", "H", "W"))
    check_tensor("matrices", matrices, ("B", 2, 3))
    h, w = as_size("output_size", output_size)
    _, _, height, width = images.shape
    # grid_sample wants, for each output pixel, the input position in
    # normalised units u = (2x + 1) / W - 1 (align_corners=False). Compose
    # that normalisation with the inverse map into one 2x3 matrix per image
    # (in float64, then cast), and let affine_grid expand it: no (h*w, 3)
    # position tensor is built in Python.
    inv = _invert(matrices.to(torch.float64))
    to_unit = _normaliser(width, height, inv.device)  # input pixels -> u
    from_unit = torch.linalg.inv(_normaliser(w, h, inv.device))  # output u -> pixels
    inv3 = torch.cat(
        [inv, torch.tensor([[[0.0, 0.0, 1.0]]], dtype=torch.float64, device=inv.device).expand(len(inv), 1, 3)], 1
    )
    theta = (to_unit @ inv3 @ from_unit)[:, :2].to(images.dtype)
    grid = F.affine_grid(theta, [images.shape[0], images.shape[1], h, w], align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _normaliser(width: int, height: int, device: torch.device) -> torch.Tensor:
    """3x3 map from pixel positions to grid_sample's normalised units."""
    return torch.tensor(
        [[2.0 / width, 0.0, 1.0 / width - 1.0], [0.0, 2.0 / height, 1.0 / height - 1.0], [0.0, 0.0, 1.0]],
        dtype=torch.float64,
        device=device,
    )


def warp_keypoints(keypoints: torch.Tensor, matrices: torch.Tensor) -> torch.Tensor:
    """Apply ``(B, 2, 3)`` matrices to ``(B, K, 2)`` positions."""
    check_tensor("keypoints", keypoints, ("B", "K", 2), finite=False)
    return keypoints @ matrices[:, :, :2].transpose(1, 2).to(keypoints.dtype) + matrices[:, None, :, 2].to(
        keypoints.dtype
    )


def inside(keypoints: torch.Tensor, size: int | Sequence[int]) -> torch.Tensor:
    """``(B, K)`` bool: positions within an image of ``(h, w)`` pixels."""
    h, w = as_size("size", size)
    x, y = keypoints[..., 0], keypoints[..., 1]
    return (x >= -0.5) & (x < w - 0.5) & (y >= -0.5) & (y < h - 0.5)


def hflip(
    images: torch.Tensor, keypoints: torch.Tensor, visible: torch.Tensor, skeleton: Skeleton
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mirror images left-right and swap left/right keypoint indices.

    ``x' = W - 1 - x``; keypoint ``k`` of the result is keypoint
    ``skeleton.flip_permutation()[k]`` of the input, so a left wrist stays a
    left wrist (on the other side of the image).

    Returns:
        ``(images, keypoints, visible)`` with the shapes of the inputs.
    """
    perm = skeleton.flip_permutation().to(keypoints.device)
    width = images.shape[-1]
    flipped = keypoints[:, perm].clone()
    flipped[..., 0] = width - 1 - flipped[..., 0]
    return images.flip(-1), flipped, visible[:, perm]


def _uniform(shape: Sequence[int], low: float, high: float, generator: torch.Generator | None, device) -> torch.Tensor:
    return torch.rand(*shape, generator=generator, device=device) * (high - low) + low


def color_jitter(images: torch.Tensor, strength: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random brightness, contrast and saturation, each a factor in ``[1 - s, 1 + s]``.

    Args:
        images: ``(B, 3, H, W)`` in [0, 1].
        strength: ``s`` (the reference uses 0.25 for all three).
        generator: Source of randomness.

    Returns:
        ``(B, 3, H, W)`` clipped to [0, 1].
    """
    if strength <= 0:
        return images
    b = images.shape[0]
    f = _uniform((3, b, 1, 1, 1), 1 - strength, 1 + strength, generator, images.device)
    # brightness (x f0) then contrast about the mean grey (x f1) is one affine map per image
    grey = images.mean(dim=(1, 2, 3), keepdim=True) * f[0]
    out = torch.addcmul(grey * (1 - f[1]), images, f[0] * f[1])
    # saturation: interpolate between the luma and the colour image
    weights = torch.tensor([0.299, 0.587, 0.114], dtype=images.dtype, device=images.device)
    luma = torch.einsum("bchw,c->bhw", out, weights)[:, None]
    return torch.lerp(luma.expand_as(out), out, f[2]).clamp_(0, 1)


def gaussian_blur(images: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Blur each image with its own Gaussian width (pixels; 0 keeps it sharp).

    Separable, one grouped convolution per axis for the whole batch.

    Args:
        images: ``(B, C, H, W)``.
        sigma: ``(B,)`` widths >= 0.

    Returns:
        ``(B, C, H, W)``.
    """
    b, c, h, w = images.shape
    radius = max(1, math.ceil(3 * float(sigma.max()))) if sigma.numel() else 1
    offsets = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    s = sigma.to(images.dtype).clamp_min(1e-3)[:, None]
    kernel = torch.exp(-(offsets**2) / (2 * s**2))
    kernel = kernel / kernel.sum(-1, keepdim=True)  # (B, 2r+1)
    kernel = kernel.repeat_interleave(c, dim=0)  # (B*C, 2r+1)
    flat = F.pad(images.reshape(1, b * c, h, w), (radius, radius, radius, radius), mode="replicate")
    flat = F.conv2d(flat, kernel[:, None, None, :], groups=b * c)  # along x
    flat = F.conv2d(flat, kernel[:, None, :, None], groups=b * c)  # along y
    return flat.reshape(b, c, h, w)


@dataclass(frozen=True)
class Augment:
    """The training augmentation, one warp plus photometric changes.

    Defaults follow the reference code (the authors' RegDA example in
    Transfer-Learning-Library, which README.md's "Conventions" compare with):
    rotation up to 180° (30 for bodies), crop area fraction in ``[0.6, 1.3]`` (here a fraction
    above 1 really zooms out, with black borders; the reference silently
    rejects those), colour jitter 0.25, blur up to 0.8 px. The crop is placed
    uniformly where it fits. Flipping is off by default (the reference never
    flips during training); with ``flip > 0`` it swaps left/right keypoints.

    Attributes:
        rotation: Maximum absolute rotation in degrees.
        area_scale: Range of the crop's area as a fraction of the image's.
        color: Colour-jitter strength.
        blur: Maximum blur sigma in pixels.
        flip: Probability of a horizontal flip (needs ``skeleton``).
        skeleton: For the left/right swap when flipping.
    """

    rotation: float = 180.0
    area_scale: tuple[float, float] = (0.6, 1.3)
    color: float = 0.25
    blur: float = 0.8
    flip: float = 0.0
    skeleton: Skeleton | None = None

    def __post_init__(self) -> None:
        lo, hi = self.area_scale
        if not 0 < lo <= hi:
            raise ValueError(f"area_scale must satisfy 0 < low <= high, got {self.area_scale}")
        if self.flip > 0 and self.skeleton is None:
            raise ValueError("flip > 0 needs a skeleton to swap left and right keypoints")

    def batch(
        self,
        images: torch.Tensor,
        keypoints: torch.Tensor,
        visible: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Augment a batch: ``(B, 3, H, W)``, ``(B, K, 2)``, ``(B, K)`` -> same shapes."""
        b, _, h, w = images.shape
        device = images.device
        rotation = _uniform((b,), -self.rotation, self.rotation, generator, device)
        area = _uniform((b,), *self.area_scale, generator, device)
        side = area.sqrt()  # crop side as a fraction of the image side
        # Place the crop centre uniformly where the crop fits (centred when it does not).
        slack = (1 - side).clamp_min(0)[:, None] * torch.tensor([w, h], dtype=images.dtype, device=device)
        offset = (torch.rand(b, 2, generator=generator, device=device) - 0.5) * slack
        center = torch.tensor([(w - 1) / 2, (h - 1) / 2], dtype=images.dtype, device=device) + offset
        matrices = affine_matrices(center, (h, w), 1 / side, rotation)
        images = warp_images(images, matrices, (h, w))
        keypoints = warp_keypoints(keypoints, matrices)
        visible = visible & inside(keypoints, (h, w))
        if self.flip > 0:
            assert self.skeleton is not None
            do = torch.rand(b, generator=generator, device=device) < self.flip
            fi, fk, fv = hflip(images, keypoints, visible, self.skeleton)
            images = torch.where(do[:, None, None, None], fi, images)
            keypoints = torch.where(do[:, None, None], fk, keypoints)
            visible = torch.where(do[:, None], fv, visible)
        images = color_jitter(images, self.color, generator)
        if self.blur > 0:
            images = gaussian_blur(images, _uniform((b,), 0.0, self.blur, generator, device))
        return images, keypoints, visible

    def __call__(self, sample: Sample, generator: torch.Generator | None = None) -> Sample:
        """Augment one :class:`Sample` (a batch of one)."""
        images, keypoints, visible = self.batch(
            sample.image[None], sample.keypoints[None].to(sample.image.dtype), sample.visible[None], generator
        )
        return sample.with_(image=images[0], keypoints=keypoints[0], visible=visible[0])
