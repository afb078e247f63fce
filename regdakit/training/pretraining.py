"""The model of a run, and the source-only weights every adaptation starts from (the cached pre-training).

The pre-training of an adaptation run (RegDA, the control, a baseline) is
cached per (task, source, seed, recipe) in ``<out>/pretrain/`` and shared by
every run that needs it (the reference repeats its 70 epochs in every run).
Unlike the reference, whose heads restart from random weights after
pre-training because of a key mismatch (``docs/training.md``, "where
regdakit departs from the reference"), regdakit carries ``psi`` *and* the
main head ``f`` over, as the paper describes ("after source-only pre-training
of psi and f"); ``f'`` starts random in both. ``keep_pretrained_head=False``
restores the reference's behaviour.

``init_checkpoint`` starts an adaptation method from a given source-only
model instead of pre-training: the documented way to adapt a shipped model
(:mod:`regdakit.pretrained`), e.g. ``python -m regdakit train --task hands
--method regda --preset cpu-bench --sigma=2.0
--init_checkpoint=data_samples/checkpoints/hands_source_only.pt`` (the seed-0
models were trained with ``sigma`` 2.0; the run must have the model's task,
backbone, head depth and image size, and is warned of another ``sigma``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch

from regdakit.data.synthetic import GENERATOR_VERSIONS, SKELETONS
from regdakit.distributed import Context
from regdakit.methods import METHODS, contract
from regdakit.models import PoseResNet, pose_resnet
from regdakit.training.config import LEGACY_SIGMA, TrainConfig, method_config
from regdakit.training.files import (
    CheckpointError,
    atomic_save,
    check_keys,
    load_weights,
    locked,
    make_dir,
    read_checkpoint,
    write_json,
)
from regdakit.training.loop import Phase, StreamSpec, run_phase
from regdakit.training.streams import make_eval_sets

__all__ = [
    "adaptation_model",
    "build_model",
    "prepare_for_method",
    "pretrain_cache_dir",
    "pretrain_key",
    "source_only_weights",
]


def build_model(
    cfg: TrainConfig,
    *,
    adversarial: bool = False,
    seed: int | None = None,
    device: torch.device | str = "cpu",
    load_backbone_weights: bool = True,
) -> PoseResNet:
    """The model of ``cfg``, freshly initialised: images ``(B, 3, S, S)`` -> heatmaps ``(B, K, S/4, S/4)``.

    The model holds weights only: the schedules of the methods (RegDA's warm start, DANN's reversal
    weight) belong to their steps, and the parts a method attaches are added by :func:`prepare_for_method`.

    Args:
        cfg: Gives the backbone, ``head_layers`` and the task's ``K`` keypoints.
        adversarial: Add the second head ``f'`` (a method whose ``PARTS`` has ``"head_adv"``).
        seed: Seeds the initialisation (``torch.manual_seed``, the global generator); ``None`` for
            ``cfg.seed``. A run's model is ``seed=cfg.seed`` (ERM, the oracle, the pre-training) or
            ``cfg.seed + 1`` (an adaptation).
        device: Where the model goes.
        load_backbone_weights: Load ``cfg.backbone_weights`` (ImageNet weights) into the backbone when set;
            ``False`` when trained weights replace them anyway.
    """
    torch.manual_seed(cfg.seed if seed is None else seed)  # the weights' initialisation is part of the run's definition
    weights = cfg.backbone_weights if load_backbone_weights else None
    k = SKELETONS[cfg.task].num_keypoints
    model = pose_resnet(cfg.backbone, k, weights, head_layers=cfg.head_layers, adversarial=adversarial)
    return model.to(device)


def prepare_for_method(model: PoseResNet, cfg: TrainConfig) -> PoseResNet:
    """Let the method attach its own parts (DANN's discriminator) before optimisers or weights are loaded."""
    if cfg.method in METHODS:  # the oracle is ERM, which attaches nothing
        contract.prepare(METHODS[cfg.method], model, method_config(cfg))
    return model


def pretrain_key(cfg: TrainConfig) -> str:
    """The cache key of the source-only pre-training: everything it depends on.

    ``<task>-<source domain>-seed<seed>-<digest>``, the digest a hash of the recipe. Committed caches and
    results are found by it: a change of what it hashes re-runs every pre-training. The heatmap ``sigma``
    (the width of the targets the pre-training learns) enters the hash only when it is not
    :data:`~regdakit.training.config.LEGACY_SIGMA` (2.0), so that the keys of every run before the
    setting existed stay what they were.
    """
    recipe = {
        "generator": GENERATOR_VERSIONS[cfg.task],
        "erm": dataclasses.asdict(cfg.erm),
        **{
            k: getattr(cfg, k)
            for k in (
                "backbone",
                "backbone_weights",
                "head_layers",
                "image_size",
                "batch_size",
                "pretrain_iterations",
                "augment",
                "source_root",  # a real source dataset: which copy of it
            )
        },
    }
    if cfg.sigma != LEGACY_SIGMA:
        recipe["sigma"] = cfg.sigma
    digest = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]
    return f"{cfg.task}-{cfg.source_domain}-seed{cfg.seed}-{digest}"


def pretrain_cache_dir(cfg: TrainConfig) -> Path:
    """The folder of ``cfg``'s cached pre-training, ``<out>/pretrain/<key>``; ``model.pt`` in it once finished."""
    return Path(cfg.out) / "pretrain" / pretrain_key(cfg)


def source_only_weights(
    cfg: TrainConfig,
    eval_sets: Mapping[str, Iterable[tuple[torch.Tensor, ...]]] | None = None,
    device: torch.device | str = "cpu",
    *,
    progress: bool = False,
    ctx: Context | None = None,
) -> dict[str, torch.Tensor]:
    """The source-only weights of ``cfg``'s recipe: the cached pre-training, trained now if not there yet.

    Source-only pre-training, cached in ``<out>/pretrain/<key>/`` (:func:`pretrain_cache_dir`;
    resumable; ``model.pt`` when done). The key does not hold the world size: a pre-training run with any
    number of processes is reused.

    Args:
        cfg: The run whose pre-training it is (its ``erm`` recipe, ``pretrain_iterations``, source...).
        eval_sets: The sets the pre-training evaluates on (:func:`~regdakit.training.streams.make_eval_sets`
            of ``cfg`` when ``None``).
        device: Where it trains and where the weights go.
        progress: Show a tqdm bar while it trains.
        ctx: Under torchrun, the process group (every rank gets the weights).

    Returns:
        The state dict of the pre-trained model (no ``f'``).

    Raises:
        CheckpointError: The cached ``model.pt`` is damaged (the message says to delete the folder).
    """
    ctx = ctx if ctx is not None else Context(device=torch.device(device))
    directory = pretrain_cache_dir(cfg)
    final = directory / "model.pt"
    where = "cpu" if ctx.distributed else device
    if ctx.on_main(final.exists):  # model.pt appears whole (renamed into place): reading it needs no lock
        return ctx.on_main(_read_cached, final, where)
    # Runs that need the same pre-training at once: one trains it, the others wait on the folder's lock
    # (rank 0 waits; under torchrun the other ranks wait in its next collective, at most dist_timeout)
    # and then read its model.pt. An interrupted pre-training is resumed by the next run that needs it.
    with contextlib.ExitStack() as held:

        def claim() -> bool:
            make_dir(directory, "the pre-training cache folder")
            held.enter_context(locked(directory, wait=True, what="the pre-training in"))
            return final.exists()

        if ctx.on_main(claim):  # another run finished it while this one waited
            return ctx.on_main(_read_cached, final, where)
        model = build_model(cfg, adversarial=False, seed=cfg.seed, device=device)
        source = StreamSpec(cfg.source_domain, 2 * cfg.seed, labels=True)
        phase = Phase("pretrain", "erm", cfg.erm, cfg.pretrain_iterations, directory, source, None, snapshots=False)
        if ctx.is_main:
            write_json(dataclasses.asdict(cfg), directory / "config.json")
        if eval_sets is None:
            eval_sets = make_eval_sets(cfg)
        run_phase(cfg, phase, model, eval_sets, resume=True, stop_after=None, progress=progress, ctx=ctx)
        if ctx.is_main:
            atomic_save(model.state_dict(), final)
        return model.state_dict()


def _read_cached(path: Path, map_location: torch.device | str) -> dict[str, torch.Tensor]:
    """The weights of a finished pre-training cache; a damaged file says how to rebuild it."""
    try:
        weights = read_checkpoint(path, map_location, "the cached pre-training")
        if not isinstance(weights, dict) or not all(isinstance(v, torch.Tensor) for v in weights.values()):
            raise CheckpointError(f"the cached pre-training {path} holds no model weights")
    except CheckpointError as err:
        raise CheckpointError(f"{err}; delete the folder {path.parent} to pre-train again") from err
    return weights


def _initial_weights(cfg: TrainConfig, device: torch.device | str) -> dict[str, torch.Tensor]:
    """The weights of ``cfg.init_checkpoint``, checked against ``cfg``'s task, architecture and geometry.

    The architecture (``task``, ``backbone``, ``head_layers``) and ``image_size`` must match (an error):
    the weights must fit, and the model must see images of the size it learnt. Another ``sigma`` is a
    :class:`UserWarning`: a model that learnt Gaussians of 2 cells, adapted with targets and pseudo-labels
    of 1 cell, moves for that reason alone (the shipped seed-0 models are such: ``sigma`` 2.0, the first
    version's, while the presets use :func:`~regdakit.training.config.paper_sigma`: pass ``--sigma=2.0``).
    Weights of any floating dtype load (the models shipped by ``tools/ship_checkpoints.py`` are half
    precision): ``load_state_dict`` copies them into the run's float32 model.
    """
    path = Path(cfg.init_checkpoint)
    state = check_keys(read_checkpoint(path, device, "init_checkpoint"), path, "init_checkpoint", ("config", "model"))
    saved = state["config"]
    if not isinstance(saved, Mapping):
        raise CheckpointError(f"init_checkpoint {path} is not a regdakit checkpoint (its 'config' is not a dict)")
    # A config saved before the sigma setting trained on Gaussians of LEGACY_SIGMA cells.
    found = {"sigma": LEGACY_SIGMA, **saved}
    for key in ("task", "backbone", "head_layers", "image_size"):
        if found.get(key) != getattr(cfg, key):
            hint = ""
            if key == "image_size" and isinstance(found.get(key), int):
                hint = f": pass --image_size={found[key]} --heatmap_size={found[key] // 4}"
            raise ValueError(
                f"init_checkpoint {cfg.init_checkpoint} has {key}={found.get(key)!r}, this run {getattr(cfg, key)!r}"
                f"{hint}"
            )
    if found["sigma"] != cfg.sigma:
        # A warning, not an error, while notebook 04 adapts the seed-0 models at the presets' sigma.
        warnings.warn(
            f"init_checkpoint {cfg.init_checkpoint} was trained with sigma={found['sigma']!r}, this run has "
            f"sigma={cfg.sigma!r}: its targets and pseudo-labels change width, which alone moves the model "
            f"(pass --sigma={found['sigma']} to adapt it as it was trained)",
            UserWarning,
            stacklevel=2,
        )
    return state["model"]


def adaptation_model(
    cfg: TrainConfig,
    eval_sets: Mapping[str, Iterable[tuple[torch.Tensor, ...]]],
    ctx: Context,
    *,
    progress: bool,
) -> PoseResNet:
    """The model an adaptation method of ``cfg`` starts from, on ``ctx.device``.

    ``psi`` (and ``f``, unless ``keep_pretrained_head=False``) come from the source-only model:
    ``cfg.init_checkpoint`` when given, else the cached pre-training (:func:`source_only_weights`, trained
    now if needed); the method's ``PARTS`` (``f'``, the modules it attaches with :func:`prepare_for_method`)
    start new.

    Raises:
        ValueError: The method did not attach a part it declares.
    """
    device = ctx.device
    if cfg.init_checkpoint is not None:
        pretrained = ctx.on_main(_initial_weights, cfg, "cpu" if ctx.distributed else device)
    else:
        pretrained = source_only_weights(cfg, eval_sets, device, progress=progress, ctx=ctx)
    method = METHODS[cfg.method]
    model = build_model(cfg, adversarial="head_adv" in method.PARTS, seed=cfg.seed + 1, device=device)
    keep = ("backbone.", "upsampling.") + (("head.",) if cfg.keep_pretrained_head else ())
    if cfg.init_checkpoint is not None:
        origin, what = Path(cfg.init_checkpoint), "init_checkpoint"
    else:
        origin, what = pretrain_cache_dir(cfg) / "model.pt", "the cached pre-training"
    load_weights(model, pretrained, origin, what, prefixes=keep)
    prepare_for_method(model, cfg)
    missing = sorted(set(method.PARTS) - set(contract.parts_of(model)))
    if missing:
        raise ValueError(f"method {cfg.method!r} declares the parts {missing} in PARTS but did not attach them")
    return model
