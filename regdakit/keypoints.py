"""Skeleton definitions: keypoint names, order, groups, edges, flip pairs, colours.

Two skeletons follow the datasets of the paper's benchmarks (Jiang et al.,
CVPR 2021: RHD → H3D for hands, SURREAL → Human3.6M and SURREAL → LSP for
bodies; their loaders: docs/real_datasets.md):

* ``HAND21``: the Rendered Hand Pose (RHD) order: 0 wrist, then the thumb,
  index, middle, ring and little finger, each from MCP to tip.
* ``BODY16``: the 16-keypoint MPII order the reference uses for SURREAL, LSP
  and Human3.6M.

Groups are those the paper reports PCK for. For hands ``"all"`` is the 21
keypoints *including the wrist*; for bodies ``"all"`` is the 12 limb keypoints
(shoulder to ankle), which is why the head, neck, thorax and pelvis appear in
no group. ``LSP14_TO_BODY16`` maps Leeds Sports Pose's 14 joints onto BODY16.

>>> HAND21.num_keypoints, BODY16.num_keypoints
(21, 16)
>>> HAND21.groups["Fingertip"]
(4, 8, 12, 16, 20)
>>> [BODY16.names[i] for i in BODY16.groups["Knee"]]
['r_knee', 'l_knee']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch

__all__ = ["Skeleton", "HAND21", "BODY16", "LSP14_NAMES", "LSP14_TO_BODY16", "lsp14_to_body16"]

RGB = tuple[float, float, float]


@dataclass(frozen=True)
class Skeleton:
    """A keypoint layout: what each index means and how keypoints connect.

    Attributes:
        name: Short identifier, e.g. ``"hand21"``.
        names: One name per keypoint, in index order.
        groups: Ordered mapping group name -> keypoint indices; ``"all"`` is
            the set the headline PCK averages over.
        edges: Pairs of indices drawn as bones.
        flip_pairs: Left/right pairs swapped by a horizontal flip.
        colors: One RGB colour in [0, 1] per keypoint.
    """

    name: str
    names: tuple[str, ...]
    groups: Mapping[str, tuple[int, ...]]
    edges: tuple[tuple[int, int], ...]
    flip_pairs: tuple[tuple[int, int], ...] = ()
    colors: tuple[RGB, ...] = field(default=())

    def __post_init__(self) -> None:
        k = len(self.names)
        if k == 0:
            raise ValueError("a skeleton needs at least one keypoint name")
        if len(set(self.names)) != k:
            raise ValueError(f"keypoint names must be unique, got {self.names}")

        def _check(kind: str, indices: Sequence[int]) -> None:
            bad = [i for i in indices if not 0 <= int(i) < k]
            if bad:
                raise ValueError(f"{kind} of skeleton {self.name!r} uses indices {bad}, valid are 0..{k - 1}")

        for group, members in self.groups.items():
            _check(f"group {group!r}", members)
        _check("edges", [i for edge in self.edges for i in edge])
        _check("flip_pairs", [i for pair in self.flip_pairs for i in pair])
        flipped = [i for pair in self.flip_pairs for i in pair]
        if len(set(flipped)) != len(flipped):
            raise ValueError(f"a keypoint appears in two flip pairs of {self.name!r}: {self.flip_pairs}")
        if self.colors and len(self.colors) != k:
            raise ValueError(f"colors needs {k} entries, got {len(self.colors)}")
        if "all" not in self.groups:
            # Freeze a copy that also has the default "all" group.
            object.__setattr__(self, "groups", {**self.groups, "all": tuple(range(k))})
        if not self.colors:
            object.__setattr__(self, "colors", tuple(_cycle_colors(k)))

    @property
    def num_keypoints(self) -> int:
        """K, the number of keypoints."""
        return len(self.names)

    def index(self, name: str) -> int:
        """Index of a keypoint by name, with the valid names in the error."""
        try:
            return self.names.index(name)
        except ValueError:
            raise KeyError(f"{name!r} is not a keypoint of {self.name}; valid names: {self.names}") from None

    def flip_permutation(self) -> torch.Tensor:
        """Index ``perm`` such that ``flipped[..., k] = original[..., perm[k]]``.

        After mirroring an image, the keypoint that sits where the left wrist
        was is the right wrist, so labels are re-indexed with this permutation.

        Returns:
            ``(K,)`` long tensor.
        """
        perm = list(range(self.num_keypoints))
        for a, b in self.flip_pairs:
            perm[a], perm[b] = b, a
        return torch.tensor(perm, dtype=torch.long)


def _cycle_colors(k: int) -> list[RGB]:
    import matplotlib

    cmap = matplotlib.colormaps["tab20"]
    return [tuple(float(c) for c in cmap(i % 20)[:3]) for i in range(k)]  # type: ignore[misc]


def _shade(base: RGB, steps: int) -> list[RGB]:
    # Darker at the finger root, lighter at the tip: readable finger order.
    shades = []
    for s in range(steps):
        scale = 0.55 + 0.45 * s / max(steps - 1, 1)
        shades.append(tuple(min(1.0, c * scale + 0.1 * s / steps) for c in base))
    return shades  # type: ignore[return-value]


_FINGERS = ("thumb", "index", "middle", "ring", "little")
_JOINTS = ("mcp", "pip", "dip", "tip")
_FINGER_COLORS: tuple[RGB, ...] = (
    (0.85, 0.15, 0.15),
    (0.95, 0.55, 0.05),
    (0.20, 0.65, 0.20),
    (0.15, 0.45, 0.85),
    (0.55, 0.25, 0.75),
)

HAND21 = Skeleton(
    name="hand21",
    names=("wrist",) + tuple(f"{f}_{j}" for f in _FINGERS for j in _JOINTS),
    groups={
        "MCP": (1, 5, 9, 13, 17),
        "PIP": (2, 6, 10, 14, 18),
        "DIP": (3, 7, 11, 15, 19),
        "Fingertip": (4, 8, 12, 16, 20),
        "all": tuple(range(21)),
    },
    edges=tuple(
        edge
        for f in range(5)
        for edge in ((0, 4 * f + 1), (4 * f + 1, 4 * f + 2), (4 * f + 2, 4 * f + 3), (4 * f + 3, 4 * f + 4))
    ),
    flip_pairs=(),  # one hand: a flip changes handedness, not keypoint identity
    colors=((0.3, 0.3, 0.3),) + tuple(c for base in _FINGER_COLORS for c in _shade(base, 4)),
)

_RIGHT: RGB = (0.85, 0.25, 0.20)
_LEFT: RGB = (0.15, 0.45, 0.85)
_CENTRE: RGB = (0.25, 0.65, 0.25)

BODY16 = Skeleton(
    name="body16",
    names=(
        "r_ankle",
        "r_knee",
        "r_hip",
        "l_hip",
        "l_knee",
        "l_ankle",
        "pelvis",
        "thorax",
        "upper_neck",
        "head_top",
        "r_wrist",
        "r_elbow",
        "r_shoulder",
        "l_shoulder",
        "l_elbow",
        "l_wrist",
    ),  # fmt: skip
    groups={
        "Shoulder": (12, 13),
        "Elbow": (11, 14),
        "Wrist": (10, 15),
        "Hip": (2, 3),
        "Knee": (1, 4),
        "Ankle": (0, 5),
        "all": (12, 13, 11, 14, 10, 15, 2, 3, 1, 4, 0, 5),
    },
    edges=(
        (0, 1),
        (1, 2),
        (2, 6),
        (6, 3),
        (3, 4),
        (4, 5),
        (6, 7),
        (7, 8),
        (8, 9),
        (10, 11),
        (11, 12),
        (12, 7),
        (7, 13),
        (13, 14),
        (14, 15),
    ),  # fmt: skip
    flip_pairs=((0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13)),
    colors=(_RIGHT,) * 3 + (_LEFT,) * 3 + (_CENTRE,) * 4 + (_RIGHT,) * 3 + (_LEFT,) * 3,
)

#: Leeds Sports Pose joint order (its ``joints.mat``).
LSP14_NAMES = (
    "r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle",
    "r_wrist", "r_elbow", "r_shoulder", "l_shoulder", "l_elbow", "l_wrist",
    "neck", "head_top",
)  # fmt: skip

#: For each BODY16 slot, the LSP joint that fills it, or ``None`` when LSP has
#: no such joint (pelvis and thorax stay invisible). LSP's neck fills
#: ``upper_neck``.
LSP14_TO_BODY16: tuple[int | None, ...] = (0, 1, 2, 3, 4, 5, None, None, 12, 13, 6, 7, 8, 9, 10, 11)


def lsp14_to_body16(keypoints: torch.Tensor, visible: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Map LSP's 14 joints onto BODY16.

    Args:
        keypoints: ``(..., 14, 2)`` positions (x, y).
        visible: ``(..., 14)`` visibility (bool or 0/1).

    Returns:
        ``(keypoints (..., 16, 2), visible (..., 16) bool)``; the two slots LSP
        lacks hold zeros and are invisible.

    >>> kp, vis = lsp14_to_body16(torch.zeros(14, 2), torch.ones(14))
    >>> kp.shape, vis.tolist()[6:8]
    (torch.Size([16, 2]), [False, False])
    """
    if keypoints.shape[-2:] != (14, 2):
        raise ValueError(f"keypoints must have shape (..., 14, 2), got {tuple(keypoints.shape)}")
    if visible.shape != keypoints.shape[:-1]:
        raise ValueError(f"visible must have shape {tuple(keypoints.shape[:-1])}, got {tuple(visible.shape)}")
    source = torch.tensor([0 if s is None else s for s in LSP14_TO_BODY16], device=keypoints.device)
    present = torch.tensor([s is not None for s in LSP14_TO_BODY16], device=keypoints.device)
    mapped = keypoints.index_select(-2, source) * present[:, None].to(keypoints.dtype)
    vis = visible.index_select(-1, source).bool() & present
    return mapped, vis
