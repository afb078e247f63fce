"""An articulated 3-D human figure, posed, projected and turned into capsules.

The figure stands in its own frame (units: body heights, pelvis at the
origin, ``y`` down, ``z`` towards the camera, facing the camera at yaw 0, so
the person's right side appears on the image's left). Arms and legs are
two-segment chains with 3-D angles at shoulders/hips and flexion at
elbows/knees; the torso leans. Left and right limbs are built and dressed
identically, so only the figure's structure and view tell them apart: the
source of the left/right confusions the paper's Fig. 1 shows. Since
``synthetic-2.0`` the head has hair at its back, as a face has in a photo:
without it a figure seen from the front and one seen from the back were the
same picture mirrored, and a third of a source-only model's errors on its
*own* domain were left/right swaps no training could remove. The keypoints
are the 16 of ``BODY16`` (MPII order).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from regdakit.data.synthetic.geometry import rotation_matrices, uniform
from regdakit.data.synthetic.raster import Capsules

__all__ = ["BodyPrior", "BODY_PRIORS", "sample_bodies", "PosedBodies", "BODY_PART_KINDS"]


@dataclass(frozen=True)
class BodyPrior:
    """Ranges (degrees; scale as a fraction of the image side) of a domain's poses.

    Attributes:
        arm_abduction, arm_flexion, elbow: Shoulder swing sideways and
            forwards, elbow flexion.
        hip_abduction, hip_flexion, knee: The same for the legs.
        lean: Forward bend of the torso.
        yaw, pitch, roll: The view (yaw 180 shows the back).
        scale: Body height in the image.
    """

    arm_abduction: tuple[float, float]
    arm_flexion: tuple[float, float]
    elbow: tuple[float, float]
    hip_abduction: tuple[float, float]
    hip_flexion: tuple[float, float]
    knee: tuple[float, float]
    lean: tuple[float, float]
    yaw: tuple[float, float]
    pitch: tuple[float, float]
    roll: tuple[float, float]
    scale: tuple[float, float]


BODY_PRIORS = {
    # SURREAL: motion-capture poses of everyday actions, any view.
    "synthetic": BodyPrior(
        arm_abduction=(-5, 100), arm_flexion=(-40, 110), elbow=(0, 130), hip_abduction=(-8, 35),
        hip_flexion=(-30, 90), knee=(0, 110), lean=(-15, 35), yaw=(-180, 180), pitch=(-15, 15),
        roll=(-15, 15), scale=(0.7, 0.88),
    ),
    # LSP: sports, strong articulation, tilted and varied scale.
    "wild": BodyPrior(
        arm_abduction=(-10, 170), arm_flexion=(-60, 170), elbow=(0, 150), hip_abduction=(-10, 70),
        hip_flexion=(-40, 130), knee=(0, 150), lean=(-30, 70), yaw=(-180, 180), pitch=(-25, 25),
        roll=(-45, 45), scale=(0.55, 0.85),
    ),
    # Human3.6M: a capture lab, its seated actions (sitting, eating, phoning: hips and knees flexed, arms
    # forward), four cameras around the subject mounted above head height (looking down).
    "lab": BodyPrior(
        arm_abduction=(0, 45), arm_flexion=(0, 90), elbow=(0, 100), hip_abduction=(-5, 15),
        hip_flexion=(40, 110), knee=(50, 130), lean=(-10, 25), yaw=(-180, 180), pitch=(10, 35),
        roll=(-5, 5), scale=(0.75, 0.9),
    ),
}  # fmt: skip

# Segment lengths (body heights).
_UPPER_ARM, _FOREARM, _THIGH, _SHIN = 0.17, 0.16, 0.24, 0.23

#: What each capsule is, for dressing it: one entry per capsule in order.
BODY_PART_KINDS = (
    "torso", "hips", "shoulders", "neck", "head",
    "upper_arm", "forearm", "hand", "upper_arm", "forearm", "hand",
    "thigh", "shin", "foot", "thigh", "shin", "foot", "hair",
)  # fmt: skip

# The hair: a ball a little smaller than the head, set back and up (body heights). Seen from the front
# the face hides all but a fringe of it; from the back it covers the head.
_HAIR_OFFSET, _HAIR_RADIUS, _HEAD_RADIUS = (0.0, -0.012, -0.03), 0.088, 0.092


def _limb(abduction: torch.Tensor, flexion: torch.Tensor, side: float) -> torch.Tensor:
    """``(n, 3)`` unit direction: down, swung sideways by ``abduction``, forwards by ``flexion``."""
    a, f = torch.deg2rad(abduction), torch.deg2rad(flexion)
    return torch.stack([side * a.sin() * f.cos(), a.cos() * f.cos(), f.sin()], -1)


@dataclass(frozen=True)
class PosedBodies:
    """Projected figures: ``keypoints (B, 16, 2)``, ``depth (B, 16)``, capsules, keypoint radii."""

    keypoints: torch.Tensor
    depth: torch.Tensor
    capsules: Capsules
    keypoint_radius: torch.Tensor


def sample_bodies(n: int, prior: BodyPrior, size: int, g: torch.Generator) -> PosedBodies:
    """Sample ``n`` figures and project them into ``size`` images."""
    joints = torch.zeros(n, 16, 3)
    lean = torch.deg2rad(uniform(n, *prior.lean, g))
    up = torch.stack([torch.zeros(n), -lean.cos(), lean.sin()], -1)  # the spine, leaning forwards
    thorax = 0.30 * up
    joints[:, 7] = thorax
    joints[:, 8] = thorax + 0.08 * up
    joints[:, 9] = thorax + 0.25 * up
    across = torch.tensor([1.0, 0.0, 0.0])
    joints[:, 2], joints[:, 3] = -0.09 * across + torch.tensor([0, 0.02, 0]), 0.09 * across + torch.tensor([0, 0.02, 0])
    joints[:, 12], joints[:, 13] = thorax - 0.17 * across, thorax + 0.17 * across
    for side, (hip, knee, ankle, shoulder, elbow, wrist) in (
        (-1.0, (2, 1, 0, 12, 11, 10)),
        (1.0, (3, 4, 5, 13, 14, 15)),
    ):
        a, f = uniform(n, *prior.arm_abduction, g), uniform(n, *prior.arm_flexion, g)
        bend = uniform(n, *prior.elbow, g)
        joints[:, elbow] = joints[:, shoulder] + _UPPER_ARM * _limb(a, f, side)
        joints[:, wrist] = joints[:, elbow] + _FOREARM * _limb(a, f + bend, side)
        a, f = uniform(n, *prior.hip_abduction, g), uniform(n, *prior.hip_flexion, g)
        bend = uniform(n, *prior.knee, g)
        joints[:, knee] = joints[:, hip] + _THIGH * _limb(a, f, side)
        joints[:, ankle] = joints[:, knee] + _SHIN * _limb(a, f - bend, side)  # knees bend backwards
    # Hands and feet extend their limbs; the head is a ball around its centre.
    extra = torch.stack(
        [
            joints[:, 10] + 0.45 * (joints[:, 10] - joints[:, 11]),
            joints[:, 15] + 0.45 * (joints[:, 15] - joints[:, 14]),
            joints[:, 0] + torch.tensor([0.0, 0.02, 0.07]),
            joints[:, 5] + torch.tensor([0.0, 0.02, 0.07]),
            (joints[:, 8] + joints[:, 9]) / 2,  # head centre; its radius reaches the head top
            (joints[:, 8] + joints[:, 9]) / 2 + torch.tensor(_HAIR_OFFSET),
        ],
        dim=1,
    )  # (n, 6, 3): r_hand, l_hand, r_toe, l_toe, head centre, hair centre
    points = torch.cat([joints, extra], dim=1)
    points = points - torch.tensor([0.0, -0.12, 0.0])  # rotate about the middle of the body
    rot = rotation_matrices(uniform(n, *prior.yaw, g), uniform(n, *prior.pitch, g), uniform(n, *prior.roll, g))
    points = points @ rot.transpose(1, 2)
    # Centre the projected figure (its extent depends on the pose), then jitter.
    scale = uniform((n, 1, 1), *prior.scale, g) * size
    xy = points[..., :2] * scale
    mid = (xy.amax(1, keepdim=True) + xy.amin(1, keepdim=True)) / 2
    xy = xy - mid + size / 2 + uniform((n, 1, 2), -0.06, 0.06, g) * size
    z = points[..., 2] * scale[..., 0]
    pairs = [
        (6, 7, 0.11), (2, 3, 0.075), (12, 13, 0.06), (7, 8, 0.04), (20, 20, _HEAD_RADIUS),
        (12, 11, 0.045), (11, 10, 0.038), (10, 16, 0.03), (13, 14, 0.045), (14, 15, 0.038), (15, 17, 0.03),
        (2, 1, 0.065), (1, 0, 0.05), (0, 18, 0.032), (3, 4, 0.065), (4, 5, 0.05), (5, 19, 0.032),
        (21, 21, _HAIR_RADIUS),
    ]  # fmt: skip
    src, dst = torch.tensor([p[0] for p in pairs]), torch.tensor([p[1] for p in pairs])
    unit = scale[:, 0, 0, None]
    radius = torch.tensor([p[2] for p in pairs]) * unit
    capsules = Capsules(xy[:, src], xy[:, dst], z[:, src], z[:, dst], radius)
    kp_radius = torch.tensor([0.05, 0.065, 0.075, 0.075, 0.065, 0.05, 0.11, 0.11, 0.04, 0.075,
                              0.038, 0.045, 0.06, 0.06, 0.045, 0.038])  # fmt: skip
    return PosedBodies(xy[:, :16], z[:, :16], capsules, kp_radius * unit)
