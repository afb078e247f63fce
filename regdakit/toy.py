"""The mean-versus-variance experiment, exactly, on small grids (notebook 03).

Shape legend: ``T`` recorded optimisation steps, ``N`` grid cells, ``C``
feature channels, ``K`` keypoints.

**Part 1 — one keypoint's distribution on a 1-D grid.** The main head ``f``
predicts keypoint 0 at ``own`` and keypoint 1 at ``other`` (say the right and
the left ankle). The adversarial head ``f'`` starts almost in agreement with
``f`` and is trained alone, with free logits (what a heatmap head outputs),
by one of four objectives:

* ``"max_kl"`` / ``"max_l1"``: *maximise* a disparity between ``f'`` and the
  ground-truth pseudo-label ``H(ŷ)`` of ``f`` (the minimax of DD / MCD);
* ``"min_false"``: RegDA's step B, *minimise* ``L_F = KL(P_F(ŷ) || f')``;
* ``"min_truth"``: *minimise* ``L_T = KL(H(ŷ) || f')``.

They are the trainer's objectives (:data:`ADVERSARY_OBJECTIVES`), so what the
toy shows is what a run of :mod:`regdakit.methods.regda` optimises.

The gradient of ``KL(p || softmax(z))`` in the logits is ``softmax(z) - p``:
maximising it only removes mass from where ``p`` is and gives it to where
``f'`` already puts mass, i.e. next to ``own``. The variance collapses (or
spreads) and the mean barely moves; nothing drives ``f'`` towards ``other``.
Minimising towards ``P_F`` has a target, so the mean travels to ``other``.

**Part 2 — heatmap heads on fixed features.** The same objectives for a
``1 x 1`` convolutional head on fixed feature maps in which keypoints look
alike (shared feature direction): where does the adversary's argmax land,
on another keypoint or on the background (:func:`regdakit.metrics.error_landing`)?

>>> t = adversary_trajectory("min_false", steps=200)
>>> abs(float(t.mean[-1]) - 44) < 1 and float(t.mass_near_other[-1]) > 0.9
True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from regdakit import disparity
from regdakit.disparity import Objective, pseudo_labels
from regdakit.heatmaps import decode, encode, gaussian_heatmaps
from regdakit.losses import kl_heatmap_loss, normalize_heatmaps
from regdakit.metrics import LandingResult, error_landing

__all__ = [
    "OBJECTIVES",
    "ADVERSARY_OBJECTIVES",
    "Trajectory",
    "adversary_trajectory",
    "adversary_loss",
    "FeatureToy",
    "make_feature_toy",
    "train_main_head",
    "train_adversary_head",
    "adversary_landing",
    "spatial_spread",
]

#: Notebook 03's name of each adversary objective -> the function of :mod:`regdakit.disparity` it is.
#: ``"max_kl"`` is step B of the trainer's ``"dd_unbounded"`` (Table 2's DD row), ``"min_false"`` and
#: ``"min_truth"`` are steps B and C of ``"regda"`` (:data:`regdakit.methods.regda.OBJECTIVES`);
#: ``"max_l1"`` is MCD's L1 distance taken to ``H(ŷ)`` instead of to ``f``'s softmax.
ADVERSARY_OBJECTIVES: dict[str, Objective] = {
    "max_kl": disparity.maximise_truth,
    "max_l1": disparity.maximise_truth_l1,
    "min_false": disparity.minimise_false,
    "min_truth": disparity.minimise_truth,
}

#: The objectives compared in notebook 03.
OBJECTIVES = tuple(ADVERSARY_OBJECTIVES)


def adversary_loss(
    objective: str, adv_logits: torch.Tensor, main_logits: torch.Tensor, sigma: float = 2.0
) -> torch.Tensor:
    """The loss the adversarial head *descends* for an objective.

    ``main_logits``' pseudo-labels (:func:`regdakit.disparity.pseudo_labels`),
    then the objective of :data:`ADVERSARY_OBJECTIVES`: each is averaged over
    ``B·K`` keypoint maps, as in the trainer.

    Args:
        objective: One of :data:`OBJECTIVES`.
        adv_logits: ``(B, K, H, W)`` outputs of ``f'``.
        main_logits: ``(B, K, H, W)`` outputs of ``f`` (detached inside).
        sigma: Pseudo-label width in cells.

    Returns:
        Scalar; for the ``max_*`` objectives it is minus the disparity.

    Raises:
        ValueError: ``objective`` is not one of :data:`OBJECTIVES`.
    """
    if objective not in ADVERSARY_OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    truth, false = pseudo_labels(main_logits, sigma)
    return ADVERSARY_OBJECTIVES[objective](adv_logits, truth, false)


@dataclass(frozen=True)
class Trajectory:
    """How ``f'``'s distribution for keypoint 0 evolves.

    Attributes:
        steps: ``(T,)`` step numbers recorded.
        probs: ``(T, N)`` distribution ``softmax(f')`` over the grid.
        mean: ``(T,)`` its mean position.
        std: ``(T,)`` its standard deviation.
        mode: ``(T,)`` its most likely cell.
        mass_near_own: ``(T,)`` probability within ``radius`` of ``own``.
        mass_near_other: ``(T,)`` probability within ``radius`` of ``other``.
        own: Position of keypoint 0 predicted by ``f``.
        other: Position of keypoint 1 predicted by ``f``.
    """

    steps: torch.Tensor
    probs: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor
    mode: torch.Tensor
    mass_near_own: torch.Tensor
    mass_near_other: torch.Tensor
    own: int
    other: int


def adversary_trajectory(
    objective: str | Sequence[tuple[str, int]],
    *,
    n_cells: int = 64,
    own: int = 20,
    other: int = 44,
    start_offset: float = 1.0,
    sigma: float = 2.0,
    steps: int = 300,
    lr: float = 5.0,
    radius: float = 3.2,
) -> Trajectory:
    """Train ``f'``'s free logits on a 1-D grid and record its distribution.

    The grid is a ``1 x n_cells`` heatmap, so the same pseudo-label and loss
    functions as the trainer are used. ``f'`` starts as the log of a Gaussian
    at ``own + start_offset`` (exact agreement is a stationary point of
    every disparity). Plain gradient descent, float64, deterministic.

    Args:
        objective: One of :data:`OBJECTIVES`, or a schedule of
            ``(objective, steps)`` pairs run one after the other, e.g.
            ``[("min_false", 150), ("min_truth", 150)]`` (then ``steps`` is
            ignored).
        n_cells: Grid size ``N``.
        own: Cell where ``f`` predicts keypoint 0.
        other: Cell where ``f`` predicts keypoint 1.
        start_offset: Initial shift of ``f'`` from ``own``.
        sigma: Gaussian width of the pseudo-labels and of the start.
        steps: Gradient steps.
        lr: Learning rate.
        radius: Radius of the ``mass_near_*`` windows.

    Returns:
        A :class:`Trajectory` with one record per step, step 0 included.
    """
    schedule = [(objective, steps)] if isinstance(objective, str) else [(o, int(n)) for o, n in objective]
    for name, count in schedule:
        if name not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {name!r}")
        if count < 0:
            raise ValueError(f"steps must be >= 0, got {count} for {name!r}")
    if not (0 <= own < n_cells and 0 <= other < n_cells) or own == other:
        raise ValueError(f"own and other must be distinct cells in 0..{n_cells - 1}, got {own} and {other}")
    dtype = torch.float64
    centres = torch.tensor([[[own, 0.0], [other, 0.0]]], dtype=dtype)  # (1, K=2, 2)
    main = torch.log(gaussian_heatmaps(centres, (1, n_cells), sigma) + 1e-12)  # (1, 2, 1, N)
    start = centres + torch.tensor([[[start_offset, 0.0], [start_offset, 0.0]]], dtype=dtype)
    adv = torch.log(gaussian_heatmaps(start, (1, n_cells), sigma) + 1e-6).requires_grad_()
    optimizer = torch.optim.SGD([adv], lr=lr)
    cells = torch.arange(n_cells, dtype=dtype)
    records = [torch.softmax(adv.detach()[0, 0, 0], dim=-1)]
    for name, count in schedule:
        for _ in range(count):
            optimizer.zero_grad()
            adversary_loss(name, adv, main, sigma).backward()
            optimizer.step()
            records.append(torch.softmax(adv.detach()[0, 0, 0], dim=-1))
    probs = torch.stack(records)  # (T, N)
    mean = probs @ cells
    std = (probs * (cells - mean[:, None]) ** 2).sum(-1).sqrt()
    near_own = probs[:, (cells - own).abs() < radius].sum(-1)
    near_other = probs[:, (cells - other).abs() < radius].sum(-1)
    return Trajectory(
        torch.arange(probs.shape[0]), probs, mean, std, probs.argmax(-1), near_own, near_other, own, other
    )


@dataclass(frozen=True)
class FeatureToy:
    """Fixed feature maps in which keypoints look alike.

    Attributes:
        features: ``(B, C, H, W)``; each keypoint paints a blob of its
            embedding, the background is low-amplitude noise.
        keypoints: ``(B, K, 2)`` keypoint positions in cells ``(x, y)``.
        embeddings: ``(K, C)`` unit vectors; pairwise cosine ~ ``similarity``.
    """

    features: torch.Tensor
    keypoints: torch.Tensor
    embeddings: torch.Tensor


def make_feature_toy(
    n: int = 64,
    num_keypoints: int = 5,
    size: int = 32,
    channels: int = 16,
    similarity: float = 0.6,
    noise: float = 0.1,
    blob_sigma: float = 3.0,
    seed: int = 0,
) -> FeatureToy:
    """Random keypoint layouts rendered into feature maps.

    Each embedding is ``sqrt(similarity) · a + sqrt(1 - similarity) · u_k``
    with a shared unit direction ``a`` and orthogonal parts ``u_k``, so every
    pair of keypoints has cosine ``similarity``: they are confusable, as a
    left and a right ankle are. Keypoints are at least 6 cells apart.

    Returns:
        A :class:`FeatureToy` (float32).
    """
    if not 0.0 <= similarity < 1.0:
        raise ValueError(f"similarity must be in [0, 1), got {similarity}")
    if num_keypoints + 1 > channels:
        raise ValueError(f"channels must exceed num_keypoints, got {channels} <= {num_keypoints}")
    g = torch.Generator().manual_seed(seed)
    basis, _ = torch.linalg.qr(torch.randn(channels, num_keypoints + 1, generator=g))  # orthonormal columns
    shared, parts = basis[:, 0], basis[:, 1:].T  # (C,), (K, C)
    embeddings = similarity**0.5 * shared + (1 - similarity) ** 0.5 * parts  # (K, C)
    # Rejection-sample layouts with all pairwise distances >= 6 cells.
    margin = 3.0
    kp = torch.rand(n * 20, num_keypoints, 2, generator=g) * (size - 1 - 2 * margin) + margin
    d = torch.cdist(kp, kp) + torch.eye(num_keypoints) * 1e3
    kp = kp[d.amin(dim=(1, 2)) >= 6.0][:n]
    if kp.shape[0] < n:
        raise ValueError(f"cannot place {num_keypoints} keypoints 6 cells apart on a {size} grid")
    blobs = gaussian_heatmaps(kp, size, sigma=blob_sigma)  # (B, K, H, W)
    features = torch.einsum("bkhw,kc->bchw", blobs, embeddings)
    features = features + noise * torch.randn(features.shape, generator=g)
    return FeatureToy(features, kp, embeddings)


def train_main_head(toy: FeatureToy, steps: int = 150, lr: float = 0.5, seed: int = 0) -> torch.nn.Conv2d:
    """Fit the main head ``f`` (a ``1 x 1`` convolution) with the KL loss."""
    torch.manual_seed(seed)
    k, c = toy.embeddings.shape
    head = torch.nn.Conv2d(c, k, kernel_size=1)
    target, _ = encode(toy.keypoints, torch.ones(toy.keypoints.shape[:2]), toy.features.shape[-1], stride=1)
    optimizer = torch.optim.Adam(head.parameters(), lr=lr)
    for _ in range(steps):
        optimizer.zero_grad()
        kl_heatmap_loss(head(toy.features), target).backward()
        optimizer.step()
    return head


def train_adversary_head(
    toy: FeatureToy, main_head: torch.nn.Conv2d, objective: str, steps: int = 200, lr: float = 0.05
) -> torch.nn.Conv2d:
    """Train ``f'``, initialised as a copy of ``f``, by one objective on fixed features."""
    import copy

    adv = copy.deepcopy(main_head)
    with torch.no_grad():
        main_logits = main_head(toy.features)
    optimizer = torch.optim.Adam(adv.parameters(), lr=lr)
    for _ in range(steps):
        optimizer.zero_grad()
        adversary_loss(objective, adv(toy.features), main_logits).backward()
        optimizer.step()
    return adv


def adversary_landing(
    toy: FeatureToy, main_head: torch.nn.Module, adv_head: torch.nn.Module, radius: float = 2.5
) -> LandingResult:
    """Where ``f'``'s argmax lands relative to ``f``'s predictions ``ŷ``.

    ``ŷ`` plays the role of the truth: "correct" means ``f'`` agrees with
    ``f``; a disagreement lands on another keypoint or on the background.
    """
    with torch.no_grad():
        y_hat, _ = decode(main_head(toy.features), subpixel=False)
        y_adv, _ = decode(adv_head(toy.features), subpixel=False)
    size = toy.features.shape[-1]
    return error_landing(y_adv, y_hat, torch.ones(y_hat.shape[:2], dtype=torch.bool), radius, map_size=size)


def spatial_spread(logits: torch.Tensor) -> torch.Tensor:
    """Standard deviation (in cells) of each map's ``softmax`` distribution.

    ``sqrt(E[|u - E u|^2])`` over cell positions ``u = (x, y)``: the
    "variance" half of mean versus variance, for 2-D heatmaps.

    Args:
        logits: ``(B, K, H, W)``.

    Returns:
        ``(B, K)``.
    """
    b, k, height, width = logits.shape
    probs = torch.softmax(logits.reshape(b, k, -1).double(), dim=-1).reshape(b, k, height, width)
    ys = torch.arange(height, dtype=torch.float64)
    xs = torch.arange(width, dtype=torch.float64)
    px, py = probs.sum(dim=-2), probs.sum(dim=-1)  # marginals (B, K, W), (B, K, H)
    mx, my = px @ xs, py @ ys
    var = px @ xs**2 - mx**2 + py @ ys**2 - my**2
    return var.clamp_min(0).sqrt().to(logits.dtype)


# --- figures (matplotlib is imported only when one is drawn) ------------------

_STYLE = {
    "max_kl": ("maximise KL disparity", "tab:purple"),
    "max_l1": ("maximise L1 disparity", "tab:gray"),
    "min_false": ("minimise L_F (to ground false)", "tab:red"),
    "min_truth": ("minimise L_T (to ground truth)", "tab:blue"),
}


def describe(objective: str) -> str:
    """Human-readable name of an objective (or ``"a -> b"`` for a schedule)."""
    return _STYLE.get(objective, (objective, ""))[0]


def plot_trajectory(trajectory: Trajectory, step: int = 0, *, ax=None, title: str | None = None):
    """Draw ``f'``'s distribution at ``step`` over the grid, with ``f``'s targets.

    The adversary's curve carries ``gid="adversary"`` so
    :func:`update_trajectory_plot` can move it without redrawing the figure.

    Returns:
        The Matplotlib ``Figure``.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=(7, 3), layout="constrained")
    else:
        fig = ax.figure
    n = trajectory.probs.shape[1]
    cells = torch.arange(n, dtype=torch.float64)
    centres = torch.tensor([[[trajectory.own, 0.0], [trajectory.other, 0.0]]], dtype=torch.float64)
    truth = normalize_heatmaps(gaussian_heatmaps(centres, (1, n)))[0, :, 0]  # (2, N)
    false = truth[1]  # with two keypoints, P_F of keypoint 0 is H(ŷ_1) normalised
    ax.fill_between(cells, truth[0], alpha=0.25, color="tab:blue", label="H(ŷ₀): f's prediction (normalised)")
    ax.fill_between(cells, false, alpha=0.25, color="tab:red", label="P_F(ŷ₀): ground false")
    ax.plot(cells, trajectory.probs[step], color="black", lw=2, gid="adversary", label="f′ distribution")
    ax.set_xlim(0, n - 1)
    ax.set_ylim(0, max(0.25, float(trajectory.probs.max()) * 1.05))
    ax.set_xlabel("position (cells)")
    ax.set_ylabel("probability")
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title(title or _step_title(trajectory, step), fontsize=10)
    return fig


def _step_title(trajectory: Trajectory, step: int) -> str:
    return (
        f"step {int(trajectory.steps[step])}: mean {float(trajectory.mean[step]):.1f}, "
        f"std {float(trajectory.std[step]):.2f}, mass near ŷ₁ {float(trajectory.mass_near_other[step]):.2f}"
    )


def update_trajectory_plot(fig, trajectory: Trajectory, step: int) -> None:
    """Move the adversary's curve of a :func:`plot_trajectory` figure to ``step``."""
    ax = fig.axes[0]
    (line,) = [artist for artist in ax.lines if artist.get_gid() == "adversary"]
    line.set_ydata(trajectory.probs[step].numpy())
    ax.set_ylim(0, max(0.25, float(trajectory.probs.max()) * 1.05))
    ax.set_title(_step_title(trajectory, step), fontsize=10)


def plot_moments(trajectories: dict[str, Trajectory], *, axes=None):
    """Mean and standard deviation of ``f'`` over the steps, one line per objective.

    Returns:
        The Matplotlib ``Figure`` (two panels: mean, std).
    """
    import matplotlib.pyplot as plt

    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.2), layout="constrained")
    else:
        fig = axes[0].figure
    for name, t in trajectories.items():
        label, color = _STYLE.get(name, (name, None))
        axes[0].plot(t.steps, t.mean, label=label, color=color or None)
        axes[1].plot(t.steps, t.std, label=label, color=color or None)
    first = next(iter(trajectories.values()))
    for y, text in ((first.own, "ŷ₀"), (first.other, "ŷ₁")):
        axes[0].axhline(y, color="k", ls=":", lw=1)
        axes[0].text(0, y + 0.6, text, fontsize=9)
    axes[0].set(xlabel="step", ylabel="mean position (cells)", title="mean of f′")
    axes[1].set(xlabel="step", ylabel="std (cells)", title="standard deviation of f′", yscale="symlog")
    axes[1].legend(fontsize=8)
    return fig
