"""Render batches of synthetic hands and bodies in a domain's style.

``render(task, domain, n, size, generator)`` returns images, keypoints and
visibility. A keypoint is visible when it lies inside the image and no other
part's surface is in front of it (a depth-buffer test at its pixel).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from regdakit.data.synthetic import styles
from regdakit.data.synthetic.bodies import BODY_PART_KINDS, BODY_PRIORS, sample_bodies
from regdakit.data.synthetic.geometry import uniform
from regdakit.data.synthetic.hands import HAND_PRIORS, sample_hands
from regdakit.data.synthetic.raster import Raster, rasterize

__all__ = ["Rendered", "render", "visibility"]


@dataclass(frozen=True)
class Rendered:
    """A rendered batch: ``images (B, 3, H, W)``, ``keypoints (B, K, 2)``, ``visible (B, K)``."""

    images: torch.Tensor
    keypoints: torch.Tensor
    visible: torch.Tensor


def visibility(raster: Raster, keypoints: torch.Tensor, surface: torch.Tensor, size: int) -> torch.Tensor:
    """``(B, K)`` bool: inside the image, drawn, and not behind another part.

    Args:
        raster: The depth buffer.
        keypoints: ``(B, K, 2)`` pixels.
        surface: ``(B, K)`` the depth a keypoint may be seen at (its own
            surface plus a tolerance); anything nearer the camera hides it.
        size: Image side.
    """
    pixel = keypoints.round().long()
    inside = ((pixel >= 0) & (pixel < size)).all(-1)
    flat = pixel.clamp(0, size - 1)
    index = flat[..., 1] * size + flat[..., 0]  # (B, K)
    front = raster.depth.flatten(1).gather(1, index)  # -inf where nothing is drawn
    return inside & torch.isfinite(front) & (front <= surface)


def _skin(b: int, g: torch.Generator, realistic: bool) -> torch.Tensor:
    """``(B, 3)`` skin colours: a CG palette, or a narrower photo-like one."""
    if realistic:
        r = uniform((b, 1), 0.55, 0.9, g)
        return torch.cat([r, r * uniform((b, 1), 0.68, 0.8, g), r * uniform((b, 1), 0.55, 0.68, g)], -1)
    r = uniform((b, 1), 0.6, 1.0, g)
    return torch.cat([r, r * uniform((b, 1), 0.55, 0.9, g), r * uniform((b, 1), 0.4, 0.8, g)], -1)


def _light_field(b: int, size: int, g: torch.Generator, low: float, high: float) -> torch.Tensor:
    """``(B, 1, H, W)`` a linear lighting ramp in a random direction."""
    angle = uniform((b, 1, 1), 0, 2 * torch.pi, g)
    lin = torch.linspace(-1, 1, size)
    ramp = angle.cos() * lin.reshape(1, 1, size) + angle.sin() * lin.reshape(1, size, 1)
    lo, hi = uniform((b, 1, 1), low, 1.0, g), uniform((b, 1, 1), 1.0, high, g)
    return (lo + (hi - lo) * (ramp + 1) / 2)[:, None]


def _white_balance(b: int, g: torch.Generator) -> torch.Tensor:
    """``(B, 3, 1, 1)`` a warm or cool colour cast of a real camera."""
    warmth = uniform((b, 1, 1, 1), -0.12, 0.12, g)
    return torch.cat([1 + warmth, torch.ones_like(warmth), 1 - warmth], dim=1)


def render_hands(domain: str, n: int, size: int, g: torch.Generator) -> Rendered:
    """Hands in the ``"rendered"`` (RHD-like) or ``"studio"`` (H3D-like) style."""
    hands = sample_hands(n, HAND_PRIORS[domain], size, g)
    raster = rasterize(hands.capsules, size, size)
    s = hands.capsules.radius.shape[1]
    realistic = domain == "studio"
    skin = _skin(n, g, realistic)[:, None].expand(n, s, 3).clone()
    if realistic:  # bare forearm or a dark sleeve
        sleeve = torch.rand(n, 1, generator=g) < 0.5
        skin[:, 0] = torch.where(sleeve, uniform((n, 3), 0.05, 0.3, g), skin[:, 0])
        texture = (0.85 + 0.3 * styles.smooth_noise(n, 1, size, 12, g)) * (
            1 + 0.06 * (torch.rand(n, 1, size, size, generator=g) - 0.5)
        )
        light = _light_field(n, size, g, 0.4, 1.5) * _white_balance(n, g)
        body = styles.shade_parts(raster, skin, cylinder=0.6, light=light, texture=texture)
        background = styles.studio_background(n, size, g)
        # a soft cast shadow: the silhouette, shifted and blurred, darkens the backdrop
        shift = (uniform((2,), -0.06, 0.06, g) * size).round().long().tolist()
        shadow = torch.roll(raster.mask[:, None].float(), shifts=shift, dims=(2, 3))
        shadow = styles.gaussian_blur(shadow, torch.full((n,), 0.02 * size))
        background = background * (1 - 0.45 * shadow)
        images = torch.where(raster.mask[:, None], body, background)
        images = styles.camera(images, g, blur=(0.3, 0.8))
    else:  # CG: flat material, a clothing sleeve, random photo backgrounds
        skin[:, 0] = torch.rand(n, 3, generator=g)
        body = styles.shade_parts(raster, skin, cylinder=0.35)
        background = styles.clutter_background(n, size, g)
        images = torch.where(raster.mask[:, None], body, background)
        images = styles.camera(images, g, blur=(0.0, 0.15))
    scale = hands.capsules.radius[:, :1] / 0.11  # hand length in pixels, from the forearm radius
    surface = hands.depth + hands.keypoint_radius + 0.04 * scale
    return Rendered(images, hands.keypoints, visibility(raster, hands.keypoints, surface, size))


def _palette(kinds: tuple[str, ...], colours: dict[str, torch.Tensor]) -> torch.Tensor:
    """``(B, S, 3)`` part colours from per-kind ``(B, 3)`` colours."""
    return torch.stack([colours[k] for k in kinds], dim=1)


def _outfit(
    n: int, g: torch.Generator, *, realistic: bool, muted: bool, capped: bool = False
) -> dict[str, torch.Tensor]:
    """Per-kind colours of a dressed figure; left and right limbs always match.

    ``capped``: a skin-coloured performance-capture cap hides the hair (the lab's actors), so the head
    looks the same from the front and from the back.
    """
    skin = _skin(n, g, realistic)
    low, high = (0.05, 0.45) if muted else (0.0, 1.0)
    shirt, pants = uniform((n, 3), low, high, g), uniform((n, 3), low, high, g)
    shoes = uniform((n, 3), 0.0, 0.25, g)
    short_sleeves = torch.rand(n, 1, generator=g) < 0.5
    shorts = torch.rand(n, 1, generator=g) < (0.6 if not muted else 0.1)
    # black, brown, auburn or fair: dark or strongly tinted, never the colour of the skin beside it
    hair = uniform((n, 1), 0.05, 0.6, g) * torch.tensor([[1.0, 0.75, 0.45]]) * uniform((n, 1), 0.3, 1.0, g)
    return {
        "torso": shirt, "shoulders": shirt, "upper_arm": shirt,
        "forearm": torch.where(short_sleeves, skin, shirt), "hand": skin, "neck": skin, "head": skin,
        "hips": pants, "thigh": pants, "shin": torch.where(shorts, skin, pants), "foot": shoes,
        "hair": skin if capped else hair,
    }  # fmt: skip


def _lab_background(n: int, size: int, g: torch.Generator) -> torch.Tensor:
    """A capture lab: a light neutral wall above a darker floor, seen by a fixed camera."""
    level = uniform((n, 1, 1, 1), 0.45, 0.8, g)
    tint = uniform((n, 3, 1, 1), -0.03, 0.03, g)  # grey, barely warm or cool
    ramp = torch.linspace(0, 1, size).reshape(1, 1, size, 1)
    wall = level + tint - 0.1 * ramp + 0.05 * (styles.smooth_noise(n, 1, size, 9, g) - 0.5)
    horizon = uniform((n, 1, 1, 1), 0.65, 0.85, g) * size
    rows = torch.arange(size, dtype=torch.float32).reshape(1, 1, size, 1)
    floor = (rows > horizon).float()
    return (wall * (1 - 0.35 * floor)).clamp(0, 1)


def _outdoor_background(n: int, size: int, g: torch.Generator) -> torch.Tensor:
    """Sports grounds: a textured field below, clutter (crowd, boards) above."""
    clutter = styles.clutter_background(n, size, g, shapes=24)
    field = uniform((n, 3, 1, 1), 0.0, 1.0, g) * torch.tensor([0.4, 0.6, 0.3]).reshape(1, 3, 1, 1) + 0.1
    field = field * (0.8 + 0.4 * styles.smooth_noise(n, 1, size, 13, g))
    horizon = uniform((n, 1, 1, 1), 0.3, 0.6, g) * size
    rows = torch.arange(size, dtype=torch.float32).reshape(1, 1, size, 1)
    return torch.where(rows > horizon, field, clutter).clamp(0, 1)


def render_bodies(domain: str, n: int, size: int, g: torch.Generator) -> Rendered:
    """Figures in the ``"synthetic"`` (SURREAL-like), ``"wild"`` (LSP-like) or ``"lab"`` (Human3.6M-like) style."""
    bodies = sample_bodies(n, BODY_PRIORS[domain], size, g)
    raster = rasterize(bodies.capsules, size, size)
    outfit = _outfit(n, g, realistic=domain != "synthetic", muted=domain == "lab", capped=domain == "lab")
    colours = _palette(BODY_PART_KINDS, outfit)
    if domain == "synthetic":  # CG: flat materials over random indoor photos
        figure = styles.shade_parts(raster, colours, cylinder=0.35)
        background = styles.clutter_background(n, size, g)
        blur = (0.0, 0.15)
    else:  # photographs: cloth texture, a light direction, real backgrounds
        texture = 0.8 + 0.4 * styles.smooth_noise(n, 1, size, 16, g)
        light = _light_field(n, size, g, 0.45, 1.45) * _white_balance(n, g)
        figure = styles.shade_parts(raster, colours, cylinder=0.6, light=light, texture=texture)
        background = _outdoor_background(n, size, g) if domain == "wild" else _lab_background(n, size, g)
        blur = (0.0, 0.3)  # v2: sharp photographs (v1's 0.3-1.0 blur made the figure itself unfindable)
    images = styles.camera(torch.where(raster.mask[:, None], figure, background), g, blur=blur)
    scale = bodies.capsules.radius[:, :1] / 0.11  # body height in pixels, from the torso radius
    surface = bodies.depth + bodies.keypoint_radius + 0.03 * scale
    return Rendered(images, bodies.keypoints, visibility(raster, bodies.keypoints, surface, size))


#: Tasks, their domains, and each domain's sensor noise (standard deviation range).
DOMAINS = {
    "hands": {"rendered": (0.0, 0.01), "studio": (0.03, 0.06)},
    "bodies": {"synthetic": (0.0, 0.01), "wild": (0.0, 0.015), "lab": (0.0, 0.015)},
}


def render(task: str, domain: str, n: int, size: int, generator: torch.Generator) -> Rendered:
    """Render ``n`` images of ``size x size`` pixels for a task and domain.

    Above 96 pixels the scene is rasterised and shaded at half resolution and
    upsampled bilinearly (4x less work; the result is as sharp as a photo
    after demosaicing), then sensor noise is added at full resolution.
    Keypoints are mapped with the upsampling exactly: pixel centres of the
    half-size image sit at ``x_full = 2 x_half + 0.5``.
    """
    if task not in DOMAINS:
        raise ValueError(f"task must be one of {sorted(DOMAINS)}, got {task!r}")
    if domain not in DOMAINS[task]:
        raise ValueError(f"domain of task {task!r} must be one of {sorted(DOMAINS[task])}, got {domain!r}")
    half = size >= 96
    inner = size // 2 if half else size
    out = (render_hands if task == "hands" else render_bodies)(domain, n, inner, generator)
    images, keypoints = out.images, out.keypoints
    if half:
        images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
        keypoints = keypoints * (size / inner) + 0.5 * (size / inner - 1)
    images = styles.sensor_noise(images, generator, DOMAINS[task][domain])
    return Rendered(images, keypoints, out.visible)
