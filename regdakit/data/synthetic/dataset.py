"""Synthetic domains as datasets (fixed, reproducible sets) and as endless streams.

``make_dataset(task, domain, split, size, n, seed)`` gives a fixed set: item
``i`` is the same image for a given seed whatever the access order, because
images are rendered in blocks of 64 from a generator seeded by
``(generator version, task, domain, split, seed, block)`` and cached as
``uint8`` (like the PNG/JPEG files of a real dataset). ``SyntheticStream``
renders fresh batches for training without end.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Sequence
from typing import Any

import torch

from regdakit.data.base import KeypointDataset, Sample
from regdakit.data.synthetic.render import DOMAINS, render
from regdakit.data.transforms import Augment
from regdakit.heatmaps import encode
from regdakit.keypoints import BODY16, HAND21, Skeleton

__all__ = [
    "GENERATOR_VERSION",
    "GENERATOR_VERSIONS",
    "SKELETONS",
    "SPLITS",
    "SyntheticDataset",
    "SyntheticStream",
    "make_dataset",
]

#: The version of each task's generator: part of every seed and every result of that task, so a change of
#: a task's generator changes its version and no other task's images. ``synthetic-2.0`` (bodies): hair at
#: the back of the head (a front/back cue) and the target domains revised (the teaching-benchmark-v2 issue);
#: hands are unchanged since ``synthetic-1.0``.
GENERATOR_VERSIONS: dict[str, str] = {"hands": "synthetic-1.0", "bodies": "synthetic-2.0"}
#: The newest of :data:`GENERATOR_VERSIONS`: the version of the generator package as a whole.
GENERATOR_VERSION = max(GENERATOR_VERSIONS.values())
SKELETONS: dict[str, Skeleton] = {"hands": HAND21, "bodies": BODY16}
SPLITS = ("train", "val", "test")
_BLOCK = 64
MIN_SIZE, MAX_SIZE = 32, 512


def _seed(task: str, *parts: object) -> int:
    """A stable 63-bit seed from the task's generator version, the task, strings and numbers.

    (Python's ``hash`` is salted per run.)
    """
    text = "/".join(str(p) for p in (GENERATOR_VERSIONS[task], task, *parts))
    return (zlib.crc32(text.encode()) << 31) ^ zlib.crc32(text[::-1].encode())


def _check(task: str, domain: str, size: int) -> None:
    if task not in DOMAINS:
        raise ValueError(f"task must be one of {sorted(DOMAINS)}, got {task!r}")
    if domain not in DOMAINS[task]:
        raise ValueError(f"domain of task {task!r} must be one of {sorted(DOMAINS[task])}, got {domain!r}")
    if isinstance(size, bool) or not isinstance(size, int) or not MIN_SIZE <= size <= MAX_SIZE or size % 4:
        raise ValueError(f"size must be a multiple of 4 in [{MIN_SIZE}, {MAX_SIZE}] pixels, got {size!r}")


def _quantise(images: torch.Tensor) -> torch.Tensor:
    return (images * 255).round_().to(torch.uint8)


class SyntheticDataset(KeypointDataset):
    """A fixed, reproducible set of ``n`` rendered images (see :func:`make_dataset`)."""

    def __init__(
        self,
        task: str,
        domain: str,
        split: str,
        size: int = 128,
        n: int = 512,
        seed: int = 0,
        *,
        heatmap_size: int | Sequence[int] | None = None,
        sigma: float = 2.0,
        transform: Augment | None = None,
        labels: bool = True,
    ) -> None:
        _check(task, domain, size)
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be an int >= 1, got {n!r}")
        super().__init__(
            SKELETONS[task], domain=domain, heatmap_size=heatmap_size, sigma=sigma, transform=transform, labels=labels
        )
        self.task, self.split, self.size, self.n, self.seed = task, split, size, n, seed
        self._blocks: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    def __len__(self) -> int:
        return self.n

    def _block(self, block: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if block not in self._blocks:
            g = torch.Generator().manual_seed(_seed(self.task, self.domain, self.split, self.seed, block))
            out = render(self.task, self.domain, _BLOCK, self.size, g)
            self._blocks[block] = (_quantise(out.images), out.keypoints, out.visible)
        return self._blocks[block]

    def load(self, index: int) -> Sample:
        """The rendered sample ``index`` (rendering its block on first use)."""
        images, keypoints, visible = self._block(index // _BLOCK)
        i = index % _BLOCK
        meta = {"seed": self.seed, "split": self.split, "generator_version": GENERATOR_VERSIONS[self.task]}
        return Sample(images[i].float() / 255, keypoints[i].clone(), visible[i].clone(), meta)

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """All items at once, untransformed: ``images (n, 3, S, S)`` in [0, 1], ``keypoints``, ``visible``."""
        blocks = [self._block(b) for b in range((self.n + _BLOCK - 1) // _BLOCK)]
        images, keypoints, visible = (torch.cat(parts)[: self.n] for parts in zip(*blocks, strict=True))
        return images.float() / 255, keypoints, visible


def make_dataset(
    task: str, domain: str, split: str, size: int = 128, n: int = 512, seed: int = 0, **kwargs: Any
) -> SyntheticDataset:
    """A fixed synthetic set: ``make_dataset("hands", "studio", "test", size=128, n=256, seed=0)``.

    Args:
        task: ``"hands"`` (``HAND21``) or ``"bodies"`` (``BODY16``).
        domain: hands: ``"rendered"`` (RHD-like source), ``"studio"`` (H3D-like
            target); bodies: ``"synthetic"`` (SURREAL-like source), ``"wild"``
            (LSP-like) and ``"lab"`` (Human3.6M-like) targets.
        split: ``"train"``, ``"val"`` or ``"test"``: disjoint seeds.
        size: Image side in pixels (multiple of 4, 32..512).
        n: Number of images.
        seed: Different seeds give different sets.
        **kwargs: ``heatmap_size``, ``sigma``, ``transform``, ``labels`` (see
            :class:`regdakit.data.base.KeypointDataset`).
    """
    return SyntheticDataset(task, domain, split, size, n, seed, **kwargs)


class SyntheticStream:
    """Endless training batches rendered on the fly (no epoch, no repetition).

    Each batch is a dict like a collated dataset batch: ``image (B, 3, S, S)``
    and ``meta``, plus ``keypoints``, ``visible``, ``heatmap`` and ``weight``
    when ``labels`` (never for an unlabelled target stream).

    Args:
        task, domain, size, seed: As :func:`make_dataset` (stream seeds never
            coincide with the fixed splits').
        batch_size: ``B``.
        heatmap_size: Side of the heatmap targets (with ``labels``).
        sigma: Heatmap Gaussian width.
        augment: Optional :class:`~regdakit.data.transforms.Augment`.
        labels: Whether batches carry labels.
    """

    def __init__(
        self,
        task: str,
        domain: str,
        batch_size: int,
        size: int = 128,
        seed: int = 0,
        *,
        heatmap_size: int | None = None,
        sigma: float = 2.0,
        augment: Augment | None = None,
        labels: bool = True,
    ) -> None:
        _check(task, domain, size)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
        self.task, self.domain, self.batch_size, self.size = task, domain, batch_size, size
        self.heatmap_size, self.sigma, self.augment, self.labels = heatmap_size, sigma, augment, labels
        self.generator = torch.Generator().manual_seed(_seed(task, domain, "stream", seed))
        self.batches = 0

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return self

    def __next__(self) -> dict[str, Any]:
        out = render(self.task, self.domain, self.batch_size, self.size, self.generator)
        images, keypoints, visible = _quantise(out.images).float() / 255, out.keypoints, out.visible
        if self.augment is not None:
            images, keypoints, visible = self.augment.batch(images, keypoints, visible, self.generator)
        self.batches += 1
        batch: dict[str, Any] = {"image": images, "meta": {"domain": self.domain, "batch": self.batches - 1}}
        if self.labels:
            batch.update(keypoints=keypoints, visible=visible)
            if self.heatmap_size is not None:
                stride = self.size / self.heatmap_size
                batch["heatmap"], batch["weight"] = encode(keypoints, visible, self.heatmap_size, stride, self.sigma)
        return batch

    def state_dict(self) -> dict[str, Any]:
        """Generator state and batch count, for exact resume."""
        return {"generator": self.generator.get_state(), "batches": self.batches}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.generator.set_state(state["generator"])
        self.batches = int(state["batches"])
