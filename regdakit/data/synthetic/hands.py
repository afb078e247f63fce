"""An articulated 3-D hand, posed, projected and turned into capsules.

The hand is a right hand in its own frame (units: hand lengths, wrist at the
origin, fingers along ``-y``, palm facing ``+z``). Each finger is a chain of
three segments with an abduction angle at the MCP joint and flexion at the
MCP, PIP and DIP joints; flexion bends the finger out of the palm plane, so
in the image a flexed finger is foreshortened and may pass in front of or
behind others. The keypoints are the 21 of ``HAND21`` (RHD order).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from regdakit.data.synthetic.geometry import normalize, rotation_matrices, uniform
from regdakit.data.synthetic.raster import Capsules

__all__ = ["HandPrior", "HAND_PRIORS", "sample_hands", "HAND_PARTS"]

# Finger geometry in hand units: MCP position (x, y), base direction (degrees
# from -y towards +x) and the three segment lengths. Thumb first, as in HAND21.
_MCP = torch.tensor([[0.20, -0.12], [0.12, -0.42], [0.02, -0.45], [-0.08, -0.42], [-0.17, -0.36]])
_BASE_ANGLE = torch.tensor([52.0, 9.0, 0.0, -9.0, -19.0])
_LENGTHS = torch.tensor(
    [[0.20, 0.15, 0.13], [0.22, 0.13, 0.10], [0.25, 0.15, 0.11], [0.23, 0.14, 0.10], [0.18, 0.11, 0.09]]
)
_RADII = torch.tensor([[0.055, 0.048, 0.042], [0.046, 0.041, 0.036], [0.047, 0.042, 0.037], [0.045, 0.040, 0.035],
                       [0.040, 0.036, 0.032]])  # fmt: skip


@dataclass(frozen=True)
class HandPrior:
    """Ranges (degrees) of a domain's hand poses and views.

    Attributes:
        flex: ``(low, high)`` flexion range at MCP, PIP, DIP for each finger joint.
        coupled: Weight of a shared "grasp" flexion common to all fingers
            (0: independent fingers, 1: all fingers flex together).
        abduction: Maximum spread change at the MCP joints.
        yaw: ``(low, high)``: 0 shows the palm, 180 the back of the hand.
        pitch: ``(low, high)`` tilt towards / away from the camera.
        roll: ``(low, high)`` in-plane rotation (0: fingers point up).
        scale: ``(low, high)`` hand length as a fraction of the image side.
    """

    flex: tuple[tuple[float, float], tuple[float, float], tuple[float, float]]
    coupled: float
    abduction: float
    yaw: tuple[float, float]
    pitch: tuple[float, float]
    roll: tuple[float, float]
    scale: tuple[float, float]


HAND_PRIORS = {
    # RHD: characters performing many actions, seen from anywhere.
    "rendered": HandPrior(
        flex=((-15, 80), (0, 95), (0, 70)), coupled=0.3, abduction=15, yaw=(-180, 180), pitch=(-45, 45),
        roll=(-180, 180), scale=(0.55, 0.75),
    ),
    # H3D: studio captures of gestures and grasps from a multi-camera rig:
    # fingers flex together more, stronger tilts (foreshortening), a narrower roll.
    "studio": HandPrior(
        flex=((0, 90), (10, 105), (5, 80)), coupled=0.8, abduction=10, yaw=(-120, 120), pitch=(-70, 70),
        roll=(-90, 90), scale=(0.6, 0.8),
    ),
}  # fmt: skip

#: Capsule list: (kind, from keypoint/anchor, to keypoint/anchor, radius).
#: Keypoints 0..20; the forearm end and the palm anchors are extra points.
HAND_PARTS = ("forearm", "palm", "palm", "palm", "palm", "thenar") + tuple(
    f"finger{f}_seg{s}" for f in range(5) for s in range(3)
)


def _finger_chains(prior: HandPrior, n: int, g: torch.Generator) -> torch.Tensor:
    """``(n, 21, 3)`` joint positions in the hand frame."""
    lo = torch.tensor([r[0] for r in prior.flex])
    hi = torch.tensor([r[1] for r in prior.flex])
    shared = uniform((n, 1, 3), lo, hi, g)  # one grasp for the whole hand
    own = uniform((n, 5, 3), lo, hi, g)  # each finger's own flexion
    flex = prior.coupled * shared + (1 - prior.coupled) * own  # (n, 5, 3)
    flex[..., 2] = 0.5 * flex[..., 2] + 0.5 * (2 / 3) * flex[..., 1].clamp_min(0)  # DIP follows PIP
    spread = _BASE_ANGLE + uniform((n, 5), -prior.abduction, prior.abduction, g)
    angle = torch.deg2rad(spread)
    base = torch.stack([angle.sin(), -angle.cos(), torch.zeros_like(angle)], -1)  # (n, 5, 3)
    palm_normal = torch.tensor([0.0, 0.0, 1.0]).expand(n, 5, 3).clone()
    # The thumb flexes across the palm as well as out of it.
    palm_normal[:, 0] = normalize(torch.tensor([-0.8, 0.1, 0.6]))
    joints = torch.zeros(n, 21, 3)
    cumulative = torch.cumsum(torch.deg2rad(flex), dim=-1)  # (n, 5, 3)
    for f in range(5):  # five fixed fingers; vectorised over the batch
        point = torch.cat([_MCP[f], torch.zeros(1)]).expand(n, 3)
        joints[:, 1 + 4 * f] = point
        for s in range(3):
            phi = cumulative[:, f, s, None]
            direction = normalize(phi.cos() * base[:, f] + phi.sin() * palm_normal[:, f])
            point = point + _LENGTHS[f, s] * direction
            joints[:, 2 + 4 * f + s] = point
    return joints


@dataclass(frozen=True)
class PosedHands:
    """Projected hands.

    Attributes:
        keypoints: ``(B, 21, 2)`` pixels.
        depth: ``(B, 21)`` pixels towards the camera.
        capsules: Capsules of forearm, palm and fingers.
        keypoint_radius: ``(B, 21)`` radius of the part a keypoint sits on.
    """

    keypoints: torch.Tensor
    depth: torch.Tensor
    capsules: Capsules
    keypoint_radius: torch.Tensor


def sample_hands(n: int, prior: HandPrior, size: int, g: torch.Generator) -> PosedHands:
    """Sample ``n`` hand poses and views and project them into ``size`` images."""
    joints = _finger_chains(prior, n, g)
    anchors = torch.tensor([[0.0, 0.55, 0.0], [0.0, -0.22, 0.0]]).expand(n, 2, 3)  # forearm end, palm centre
    points = torch.cat([joints, anchors], dim=1)  # (n, 23, 3)
    points = points - torch.tensor([0.0, -0.45, 0.0])  # rotate about the middle of the hand
    rot = rotation_matrices(uniform(n, *prior.yaw, g), uniform(n, *prior.pitch, g), uniform(n, *prior.roll, g))
    points = points @ rot.transpose(1, 2)
    scale = uniform((n, 1, 1), *prior.scale, g) * size
    centre = size / 2 + uniform((n, 1, 2), -0.08, 0.08, g) * size
    xy = points[..., :2] * scale + centre
    z = points[..., 2] * scale[..., 0]
    r = scale[:, 0, 0, None]
    # (from, to, radius in hand units): forearm, palm fan, thenar, fingers
    pairs = [(21, 0, 0.11), (0, 5, 0.085), (0, 17, 0.085), (5, 17, 0.075), (0, 22, 0.13), (0, 1, 0.075)]
    for f in range(5):
        for s in range(3):
            pairs.append((1 + 4 * f + s, 2 + 4 * f + s, float(_RADII[f, s])))
    src = torch.tensor([p[0] for p in pairs])
    dst = torch.tensor([p[1] for p in pairs])
    radius = torch.tensor([p[2] for p in pairs]) * r  # (n, S)
    capsules = Capsules(xy[:, src], xy[:, dst], z[:, src], z[:, dst], radius)
    kp_radius = torch.cat([torch.tensor([0.085]), torch.cat([_RADII, _RADII[:, 2:]], dim=1).flatten()])  # (21,)
    return PosedHands(xy[:, :21], z[:, :21], capsules, kp_radius * r)
