"""PoseResNet with a main and an adversarial head, ResNet backbones, warm-start gradient scaling.

Shape legend: ``B`` batch, ``K`` keypoints, ``H x W`` input pixels (both
divisible by 32), ``C`` feature channels. Images are ``(B, 3, H, W)`` RGB in
[0, 1]; the model applies the ImageNet mean/std itself, so datasets never do.

The network of the paper (Fig. 2)::

    x (B, 3, H, W) -> backbone (B, C_b, H/32, W/32) -> upsampling = psi (B, C, H/4, W/4)
    psi -> head      = f  -> y     (B, K, H/4, W/4) logits
    psi -> scale_λ -> head_adv = f' -> y_adv (B, K, H/4, W/4) logits

``scale_λ`` is the identity forward and multiplies the gradient by ``λ >= 0``
backward (not a reversal), so ``f'`` reaches ``psi`` only weakly while it
warms up. ``λ`` is a pure function of the iteration passed to ``model(x,
step=it)``: the model keeps no counter, and a resumed run gets the same ``λ``.

Parameter names are ``backbone.*`` (torchvision's ResNet names, so ImageNet
weights saved by torchvision load with :func:`load_pretrained`),
``upsampling.*``, ``head.*`` and ``head_adv.*``. Nothing is downloaded.

>>> model = pose_resnet("tiny", num_keypoints=21)
>>> y, y_adv = model(torch.rand(2, 3, 64, 64), step=0)
>>> tuple(y.shape), tuple(y_adv.shape)
((2, 21, 16, 16), (2, 21, 16, 16))
"""

from __future__ import annotations

import math
import operator
import os
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn

from regdakit._validation import _shape, check_positive, check_tensor

__all__ = [
    "BACKBONES",
    "BasicBlock",
    "Bottleneck",
    "GradientScale",
    "Head",
    "PoseResNet",
    "ResNet",
    "Upsampling",
    "load_pretrained",
    "parameter_groups",
    "pose_resnet",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet_tiny",
    "reverse_gradient",
    "scale_gradient",
    "warm_start_lambda",
]

# ImageNet statistics used by torchvision's pretrained weights.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _check_images(x: object, *, finite: bool = True) -> torch.Tensor:
    """Check ``x`` is ``(B, 3, H, W)`` with ``H`` and ``W`` divisible by 32."""
    check_tensor("x", x, ("B", 3, "H", "W"), finite=finite)
    assert isinstance(x, torch.Tensor)
    if x.shape[-2] % 32 or x.shape[-1] % 32:
        raise ValueError(f"x must have shape (B, 3, H, W) with H and W divisible by 32, got {_shape(x)}")
    return x


# --------------------------------------------------------------------------
# Backbones: torchvision's ResNet layout, written out so no torchvision is needed.
# --------------------------------------------------------------------------


def _conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)


def _conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (ResNet-18/34)."""

    expansion = 1

    def __init__(self, in_channels: int, width: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = _conv3x3(in_channels, width, stride)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(width, width)
        self.bn2 = nn.BatchNorm2d(width)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C_in, H, W)`` -> ``(B, width, H / stride, W / stride)``."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 -> 1x1 convolutions with a residual connection (ResNet-50/101).

    The stride sits on the 3x3 convolution, as in torchvision ("ResNet v1.5"),
    so torchvision's ImageNet weights behave as they were trained.
    """

    expansion = 4

    def __init__(self, in_channels: int, width: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = _conv1x1(in_channels, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = _conv3x3(width, width, stride)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = _conv1x1(width, width * self.expansion)
        self.bn3 = nn.BatchNorm2d(width * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C_in, H, W)`` -> ``(B, 4 * width, H / stride, W / stride)``."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """ResNet without ``avgpool`` / ``fc``: returns the ``layer4`` map (stride 32).

    Module names (``conv1``, ``bn1``, ``layer1.0.conv1``, ``layer1.0.downsample.0``,
    ...) are torchvision's, so its ImageNet ``state_dict`` loads once its
    ``fc.*`` keys are dropped (:func:`load_pretrained`).

    Args:
        block: :class:`BasicBlock` or :class:`Bottleneck`.
        blocks: Number of blocks in ``layer1`` .. ``layer4``.
        widths: Block widths of the four stages; the stem has ``widths[0]`` channels.

    Attributes:
        out_channels: Channels of the output map, ``widths[-1] * block.expansion``.
    """

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        blocks: Sequence[int],
        widths: Sequence[int] = (64, 128, 256, 512),
    ):
        super().__init__()
        if len(blocks) != 4 or len(widths) != 4:
            raise ValueError(f"blocks and widths need 4 entries (one per stage), got {tuple(blocks)}, {tuple(widths)}")
        self.conv1 = nn.Conv2d(3, widths[0], 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self._in = widths[0]
        self.layer1 = self._stage(block, widths[0], blocks[0], stride=1)
        self.layer2 = self._stage(block, widths[1], blocks[1], stride=2)
        self.layer3 = self._stage(block, widths[2], blocks[2], stride=2)
        self.layer4 = self._stage(block, widths[3], blocks[3], stride=2)
        self.out_channels = widths[3] * block.expansion
        for m in self.modules():  # torchvision's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _stage(self, block: type[BasicBlock] | type[Bottleneck], width: int, n: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self._in != width * block.expansion:
            # A 1x1 projection when the shortcut changes size or channels.
            downsample = nn.Sequential(
                _conv1x1(self._in, width * block.expansion, stride), nn.BatchNorm2d(width * block.expansion)
            )
        layers = [block(self._in, width, stride, downsample)]
        self._in = width * block.expansion
        layers += [block(self._in, width) for _ in range(1, n)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Backbone features.

        Args:
            x: ``(B, 3, H, W)`` normalised images, ``H`` and ``W`` divisible by 32.

        Returns:
            ``(B, out_channels, H / 32, W / 32)``.
        """
        _check_images(x, finite=False)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))  # (B, C0, H/4, W/4)
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


def resnet18() -> ResNet:
    """ResNet-18 backbone (11.2 M parameters, 512 output channels)."""
    return ResNet(BasicBlock, (2, 2, 2, 2))


def resnet34() -> ResNet:
    """ResNet-34 backbone (21.3 M parameters, 512 output channels)."""
    return ResNet(BasicBlock, (3, 4, 6, 3))


def resnet50() -> ResNet:
    """ResNet-50 backbone (23.5 M parameters, 2048 output channels)."""
    return ResNet(Bottleneck, (3, 4, 6, 3))


def resnet101() -> ResNet:
    """ResNet-101 backbone, the paper's (42.5 M parameters, 2048 output channels)."""
    return ResNet(Bottleneck, (3, 4, 23, 3))


def resnet_tiny(widths: Sequence[int] = (16, 32, 64, 128), blocks: Sequence[int] = (1, 1, 1, 1)) -> ResNet:
    """A small ResNet of :class:`BasicBlock` for CPU notebooks and tests (0.31 M parameters by default).

    Same class, names and stride 32 as the large backbones; only widths and depth shrink.
    """
    return ResNet(BasicBlock, blocks, widths)


BACKBONES: dict[str, Callable[[], ResNet]] = {
    "resnet18": resnet18,
    "resnet34": resnet34,
    "resnet50": resnet50,
    "resnet101": resnet101,
    "tiny": resnet_tiny,
}


def load_pretrained(backbone: nn.Module, weights: str | os.PathLike | Mapping[str, torch.Tensor]) -> nn.Module:
    """Load a local torchvision ResNet ``state_dict`` (e.g. ImageNet weights) into a backbone.

    Never downloads. ``fc.*`` keys (the classifier, absent here) are dropped;
    every other key must match in name and shape. ``num_batches_tracked``
    buffers missing from old torchvision files are filled with 0.

    Args:
        backbone: A backbone from :data:`BACKBONES`.
        weights: Path of a file saved with ``torch.save(state_dict)``, or the mapping itself.

    Returns:
        ``backbone``, with the weights loaded in place.

    Raises:
        ValueError: Missing or unexpected keys, or shape mismatches, all listed.
    """
    if isinstance(weights, Mapping):
        state = dict(weights)
    else:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        if not isinstance(state, Mapping):
            raise ValueError(f"{os.fspath(weights)} holds a {type(state).__name__}, not a state_dict")
        state = dict(state)
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    own = backbone.state_dict()
    for key in own:
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = torch.zeros_like(own[key])
    missing = sorted(own.keys() - state.keys())
    unexpected = sorted(state.keys() - own.keys())
    mismatched = [
        f"{k}: {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
        for k in own.keys() & state.keys()
        if tuple(state[k].shape) != tuple(own[k].shape)
    ]
    problems = [
        f"{what} ({len(keys)}): {', '.join(keys[:10])}{' ...' if len(keys) > 10 else ''}"
        for what, keys in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatch", mismatched))
        if keys
    ]
    if problems:
        raise ValueError("weights do not fit the backbone; " + "; ".join(problems))
    backbone.load_state_dict(state, strict=True)
    return backbone


# --------------------------------------------------------------------------
# psi's upsampling, the heads, and the warm-start gradient scaling.
# --------------------------------------------------------------------------


class Upsampling(nn.Sequential):
    """SimpleBaseline upsampling: ``num_layers`` x [4x4 deconvolution (stride 2) -> BN -> ReLU].

    Three layers take the stride-32 backbone map to stride 4 (8x8 -> 64x64 for
    a 256x256 image). Deconvolution weights start N(0, 0.001).

    Args:
        in_channels: Backbone output channels.
        channels: Channels of every layer (256 for the ResNets, fewer for ``tiny``).
        num_layers: Each doubles the resolution.
    """

    def __init__(self, in_channels: int, channels: int = 256, num_layers: int = 3):
        layers: list[nn.Module] = []
        for i in range(num_layers):
            deconv = nn.ConvTranspose2d(in_channels if i == 0 else channels, channels, 4, 2, 1, bias=False)
            nn.init.normal_(deconv.weight, std=0.001)
            layers += [deconv, nn.BatchNorm2d(channels), nn.ReLU(inplace=True)]
        super().__init__(*layers)
        self.out_channels = channels


class Head(nn.Sequential):
    """A keypoint regressor: ``(num_layers - 1)`` x [3x3 conv -> BN -> ReLU], then a 1x1 conv to ``K`` maps.

    Every convolution starts N(0, 0.001) with zero bias, so initial heatmap
    logits are near zero everywhere (a flat softmax).

    Args:
        in_channels: Channels of ``psi``; hidden layers keep this width.
        num_keypoints: ``K``.
        num_layers: 1 gives a single 1x1 convolution.

    Shapes:
        ``(B, C, H', W')`` -> ``(B, K, H', W')``.
    """

    def __init__(self, in_channels: int, num_keypoints: int, num_layers: int = 2):
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        layers: list[nn.Module] = []
        for _ in range(num_layers - 1):
            layers += [nn.Conv2d(in_channels, in_channels, 3, padding=1), nn.BatchNorm2d(in_channels), nn.ReLU()]
        layers.append(nn.Conv2d(in_channels, num_keypoints, 1))
        for m in layers:
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.001)
                nn.init.zeros_(m.bias)
        super().__init__(*layers)


def warm_start_lambda(step: int, lo: float = 0.0, hi: float = 0.1, alpha: float = 1.0, max_steps: int = 1000) -> float:
    """Gradient coefficient at iteration ``step``: ``lo + (hi - lo) * tanh(alpha * step / (2 * max_steps))``.

    Rises smoothly from ``lo`` (0.0245 at 500, 0.0462 at 1000, 0.0762 at 2000
    iterations with the defaults) towards ``hi``. Why warm up: early on the
    adversarial head is random and its gradient would only disturb ``psi``.

    >>> round(warm_start_lambda(1000), 4)
    0.0462
    """
    step = operator.index(step)
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    check_positive("max_steps", max_steps)
    return lo + (hi - lo) * math.tanh(alpha * step / (2 * max_steps))


class _ScaleGradient(torch.autograd.Function):
    """The one gradient layer: identity forward, gradient times ``lam`` backward (``lam < 0`` reverses it)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, lam: float | None) -> torch.Tensor:
        ctx.lam = lam  # captured now, so a later change of step cannot reach this backward
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        if ctx.lam is None:
            raise RuntimeError(
                "a gradient reached GradientScale without an iteration: call model(x, step=it) "
                "when a loss on y_adv is back-propagated"
            )
        return grad * ctx.lam, None


def scale_gradient(x: torch.Tensor, lam: float) -> torch.Tensor:
    """Identity forward; backward multiplies the gradient by ``lam`` (>= 0, not a reversal).

    RegDA's layer between ``psi`` and ``f'`` (the paper's Fig. 2), with ``lam``
    its warm-start ``λ`` (:func:`warm_start_lambda`).

    >>> x = torch.ones(3, requires_grad=True)
    >>> scale_gradient(x, 0.5).sum().backward()
    >>> x.grad
    tensor([0.5000, 0.5000, 0.5000])
    """
    return _ScaleGradient.apply(x, check_positive("lam", lam, allow_zero=True))


def reverse_gradient(x: torch.Tensor, lam: float) -> torch.Tensor:
    """Identity forward; backward multiplies the gradient by ``-lam`` (DANN's gradient reversal ``R_λ``, Eq. 10).

    The same layer as :func:`scale_gradient`, scaling by ``-lam``: the players
    on either side of it descend and ascend the same loss.

    >>> x = torch.ones(2, requires_grad=True)
    >>> reverse_gradient(x, 0.5).sum().backward()
    >>> x.grad
    tensor([-0.5000, -0.5000])
    """
    return _ScaleGradient.apply(x, -check_positive("lam", lam, allow_zero=True))


class GradientScale(nn.Module):
    """The warm-start gradient layer between ``psi`` and ``f'``, with ``λ = warm_start_lambda(step, ...)``.

    Holds only the schedule (``lo``, ``hi``, ``alpha``, ``max_steps``), no
    counter: the iteration is passed in. All passes of one iteration (steps A,
    B, C of RegDA) then see the same ``λ``, nothing needs advancing, and a
    resumed run continues the warm-up exactly (the trainer already saves its
    iteration). Without a ``step`` the forward works, but a gradient reaching
    the layer raises: a silent ``λ`` would hide a missing argument.

    This is the layer of ``model(x, step=it)`` (the reference's defaults). The
    trainer does not use it: RegDA's step owns its warm start
    (``regda.Config.warmup_iterations``) and applies :func:`scale_gradient`
    with its own ``λ`` (:mod:`regdakit.methods.regda`).

    Args:
        lo: ``λ`` at step 0 (>= 0).
        hi: ``λ`` after warm-up (>= 0).
        alpha: Steepness.
        max_steps: Time scale of the warm-up in iterations.
    """

    def __init__(self, lo: float = 0.0, hi: float = 0.1, alpha: float = 1.0, max_steps: int = 1000):
        super().__init__()
        self.lo = check_positive("lo", lo, allow_zero=True)
        self.hi = check_positive("hi", hi, allow_zero=True)
        self.alpha = check_positive("alpha", alpha, allow_zero=True)
        self.max_steps = int(check_positive("max_steps", max_steps))

    def lam(self, step: int) -> float:
        """``λ`` at iteration ``step``."""
        return warm_start_lambda(step, self.lo, self.hi, self.alpha, self.max_steps)

    def forward(self, x: torch.Tensor, step: int | None = None) -> torch.Tensor:
        """Identity forward; backward scales by ``λ(step)``. Any shape."""
        return _ScaleGradient.apply(x, None if step is None else self.lam(step))

    def extra_repr(self) -> str:
        """The schedule, shown by ``print(model)``."""
        return f"lo={self.lo}, hi={self.hi}, alpha={self.alpha}, max_steps={self.max_steps}"


# --------------------------------------------------------------------------
# The model.
# --------------------------------------------------------------------------


class PoseResNet(nn.Module):
    """Keypoint detector ``psi -> (f, f')`` of RegDA (Fig. 2).

    ``model(x, step)`` returns ``(y, y_adv)`` in train and eval mode alike;
    ``y_adv`` is ``None`` when ``adversarial=False`` (source-only models).
    ``model.heatmaps(x)`` gives ``f``'s logits alone (what prediction needs);
    ``model.features(x)`` gives ``psi`` for feature-level methods (DAN, DANN).

    Args:
        backbone: A module with ``out_channels`` returning a stride-32 map.
        num_keypoints: ``K``.
        upsampling_channels: Channels of ``psi`` (and of the heads' hidden layers).
        head_layers: Depth of each head (2 as in the reference's RegDA model).
        adversarial: Build the adversarial head ``f'``.
        gradient_scale: Warm-up schedule of the ``psi <- f'`` gradient; default :class:`GradientScale`.
    """

    def __init__(
        self,
        backbone: nn.Module,
        num_keypoints: int,
        upsampling_channels: int = 256,
        head_layers: int = 2,
        adversarial: bool = True,
        gradient_scale: GradientScale | None = None,
    ):
        super().__init__()
        if not isinstance(getattr(backbone, "out_channels", None), int):
            raise TypeError("backbone must have an int attribute out_channels")
        self.backbone = backbone
        self.upsampling = Upsampling(backbone.out_channels, upsampling_channels)
        self.head = Head(upsampling_channels, num_keypoints, head_layers)
        self.head_adv = Head(upsampling_channels, num_keypoints, head_layers) if adversarial else None
        self.gradient_scale = gradient_scale if gradient_scale is not None else GradientScale()
        self.num_keypoints = num_keypoints
        # Non-persistent: part of the model's definition, not of its weights.
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``psi(x)``: normalise, backbone, upsampling.

        Args:
            x: ``(B, 3, H, W)`` images in [0, 1], ``H`` and ``W`` divisible by 32.

        Returns:
            ``(B, C, H / 4, W / 4)``.

        Raises:
            ValueError: ``x`` has another shape (the message gives it).
        """
        _check_images(x)
        return self.upsampling(self.backbone((x - self.mean) / self.std))

    def heatmaps(self, x: torch.Tensor) -> torch.Tensor:
        """``f(psi(x))``: the main head's logits only, the detector's prediction (``f'`` is not run).

        What evaluation and prediction call (:func:`regdakit.inference.predict`); training steps
        that reuse ``psi`` call :meth:`features` and the heads themselves.

        Args:
            x: ``(B, 3, H, W)`` images in [0, 1], ``H`` and ``W`` divisible by 32.

        Returns:
            ``(B, K, H / 4, W / 4)`` logits; :func:`regdakit.heatmaps.decode` turns them into positions.
        """
        return self.head(self.features(x))

    def forward_heads(self, psi: torch.Tensor, step: int | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Both heads on given features: ``y = f(psi)``, ``y_adv = f'(scale_λ(psi))``.

        The gradient scaling sits only between ``psi`` and ``f'``: the main
        head and its loss reach ``psi`` at full strength.

        Args:
            psi: ``(B, C, H', W')`` features.
            step: Training iteration that sets ``λ``; needed only when a loss on ``y_adv`` is back-propagated.

        Returns:
            ``(y, y_adv)``, each ``(B, K, H', W')`` logits; ``y_adv`` is ``None`` without ``f'``.
        """
        y = self.head(psi)
        y_adv = None if self.head_adv is None else self.head_adv(self.gradient_scale(psi, step))
        return y, y_adv

    def forward(self, x: torch.Tensor, step: int | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Heatmap logits of both heads.

        Args:
            x: ``(B, 3, H, W)`` images in [0, 1], ``H`` and ``W`` divisible by 32.
            step: Training iteration that sets the warm-start ``λ`` (pass the
                same ``it`` to every forward of an iteration).

        Returns:
            ``(y, y_adv)``, each ``(B, K, H / 4, W / 4)``; ``y_adv`` is ``None`` when ``adversarial=False``.
        """
        return self.forward_heads(self.features(x), step)


def parameter_groups(model: PoseResNet) -> dict[str, list[nn.Parameter]]:
    """Parameters by part, for optimisers built elsewhere (RegDA gives each its own).

    Returns:
        ``{"backbone", "upsampling", "head", "head_adv"}`` -> parameter lists;
        ``"head_adv"`` is absent for a model without ``f'``.
    """
    groups = {
        "backbone": list(model.backbone.parameters()),
        "upsampling": list(model.upsampling.parameters()),
        "head": list(model.head.parameters()),
    }
    if model.head_adv is not None:
        groups["head_adv"] = list(model.head_adv.parameters())
    return groups


def pose_resnet(
    name: str,
    num_keypoints: int,
    weights: str | os.PathLike | None = None,
    **kwargs: object,
) -> PoseResNet:
    """Build a :class:`PoseResNet` on a backbone from :data:`BACKBONES`.

    ``psi`` has 256 channels on the ResNets and 64 on ``"tiny"`` unless
    ``upsampling_channels`` is given.

    Args:
        name: A key of :data:`BACKBONES` (``"resnet101"`` is the paper's).
        num_keypoints: ``K``.
        weights: Optional local file of torchvision ImageNet weights for the backbone.
        **kwargs: Passed to :class:`PoseResNet`.

    Raises:
        ValueError: Unknown ``name``.
    """
    if name not in BACKBONES:
        raise ValueError(f"name must be one of {sorted(BACKBONES)}, got {name!r}")
    backbone = BACKBONES[name]()
    if weights is not None:
        load_pretrained(backbone, weights)
    kwargs.setdefault("upsampling_channels", 64 if name == "tiny" else 256)
    return PoseResNet(backbone, num_keypoints, **kwargs)  # type: ignore[arg-type]
