"""The shipped models: one command per model, its config, half-precision shipping and loading."""

import dataclasses
import shlex
import sys

import pytest
import torch

from regdakit import __main__ as cli
from regdakit import pretrained, training
from tests._repo import ROOT

sys.path.insert(0, str(ROOT / "tools"))
import ship_checkpoints  # noqa: E402


def _config_of(command: str, monkeypatch) -> training.TrainConfig:
    """The config the CLI would train for ``command`` (``python -m regdakit train ...``), without training."""
    seen = []
    monkeypatch.setattr(training, "train", lambda cfg, **kwargs: seen.append(cfg) or {})
    argv = shlex.split(command)
    assert argv[:3] == ["python", "-m", "regdakit"]
    assert cli.main(argv[3:]) == 0
    return seen[0]


@pytest.mark.parametrize("task", sorted(pretrained.SEEDS))
def test_each_retrain_command_is_exactly_the_recipe_of_its_model(task, monkeypatch, capsys):
    for seed in (*pretrained.SEEDS[task], 3):
        assert _config_of(pretrained.retrain_command(task, seed), monkeypatch) == pretrained.retrain_config(task, seed)
    for target in ("lab", "wild") if task == "bodies" else ("studio",):
        cfg = _config_of(pretrained.oracle_command(task, target, 2), monkeypatch)
        assert cfg == pretrained.oracle_config(task, target, 2)
        assert cfg.method == "oracle" and cfg.target_domain == target and cfg.seed == 2


def test_this_versions_recipe_and_the_first_versions_legacy_recipe():
    new, old = pretrained.retrain_config("hands", 1), pretrained.retrain_config("hands", 0)
    assert new.sigma == 1.0 and old.sigma == 2.0  # the paper's relative width; v1 used 2 cells on 32 x 32
    assert old.pretrain_iterations == 600 and old.erm.milestones == () and old.batch_size == 32
    # this version: batch 16, 12000 iterations, the rate divided by 10 for the last quarter (docs/source_recipe.md)
    assert (new.batch_size, new.pretrain_iterations, new.erm.milestones) == (16, 12000, (9000,))
    changed = ("sigma", "batch_size", "pretrain_iterations", "erm")
    assert dataclasses.replace(old, **{k: getattr(new, k) for k in changed}) == (
        dataclasses.replace(
            new,
            seed=0,
            run_name=old.run_name,
            eval_every=100,
            checkpoint_every=200,
            dann=dataclasses.replace(new.dann, reversal_iterations=1000),
        )  # fmt: skip
    )


def test_unknown_tasks_seeds_and_targets_are_named():
    with pytest.raises(ValueError, match="task must be one of"):
        pretrained.checkpoint_path("feet")
    with pytest.raises(ValueError, match="seed must be an int >= 0"):
        pretrained.retrain_command("hands", -1)
    with pytest.raises(ValueError, match=r"target of task 'bodies' must be one of \['wild', 'lab'\]"):
        pretrained.oracle_command("bodies", "synthetic")
    with pytest.raises(FileNotFoundError, match=r"no shipped hands model of seed 9 \(shipped seeds: .*--seed=9 "):
        pretrained.load_source_only("hands", seed=9)
    with pytest.raises(FileNotFoundError, match=r"no shipped oracle of hands on studio with seed 9 .*--seed=9 "):
        pretrained.load_oracle("hands", seed=9)


@pytest.mark.parametrize("task", sorted(pretrained.SEEDS))
def test_every_shipped_model_loads_with_its_recipe_and_log(task):
    for seed in pretrained.SEEDS[task]:
        model, cfg = pretrained.load_source_only(task, seed=seed)
        assert pretrained.recipe_differences(dataclasses.asdict(cfg), pretrained.retrain_config(task, seed)) == []
        assert all(p.dtype == torch.float32 for p in model.parameters())
        path, log = pretrained.source_only_files(task, seed=seed)
        assert path.stat().st_size < 3e6 and log.read_text().count('"eval"') >= 1
    # the first version's model still loads by its seed, with the first version's recipe
    _, legacy = pretrained.load_source_only(task, seed=pretrained.LEGACY_SEED)
    assert legacy.sigma == 2.0 and legacy.pretrain_iterations == 600
    assert pretrained.LEGACY_SEED not in pretrained.SEEDS[task]


@pytest.mark.parametrize(("task", "target"), sorted(pretrained.ORACLE_SEEDS))
def test_every_shipped_oracle_loads_with_its_recipe_and_log(task, target):
    for seed in pretrained.ORACLE_SEEDS[task, target]:
        model, cfg = pretrained.load_oracle(task, target, seed=seed)
        assert (
            pretrained.recipe_differences(dataclasses.asdict(cfg), pretrained.oracle_config(task, target, seed)) == []
        )
        assert cfg.method == "oracle" and cfg.target_domain == target
        assert pretrained.oracle_path(task, target, seed).with_suffix(".metrics.jsonl").is_file()


def test_the_shipped_checkpoints_stay_within_their_size_budget():
    # the teaching-benchmark-v2 issue: at most 3 MB per model and 30 MB for every shipped file together
    folder = pretrained.checkpoint_path("hands").parent
    files = [path for path in folder.iterdir() if path.is_file()]
    assert any(path.suffix == ".pt" for path in files)
    assert all(path.stat().st_size < 3e6 for path in files if path.suffix == ".pt")
    assert sum(path.stat().st_size for path in files) < 30e6


def test_shipping_halves_the_weights_and_refuses_another_recipe(tmp_path, monkeypatch):
    monkeypatch.setattr(pretrained, "PRESET", "ci")  # the shipping steps on a 30-iteration run
    cfg = pretrained.retrain_config("hands", 2, out=tmp_path)
    training.train(cfg, progress=False)
    target = tmp_path / "shipped" / "hands_source_only_seed2.pt"
    ship_checkpoints.ship(cfg, target)
    full, _, _ = training.load_checkpoint(cfg.run_dir / "last.pt", "cpu")
    shipped, shipped_cfg, state = training.load_checkpoint(target, "cpu")
    assert shipped_cfg == dataclasses.replace(cfg, out="runs")
    assert all(v.dtype == torch.float16 for v in state["model"].values() if v.is_floating_point())
    assert target.stat().st_size < 0.6 * (cfg.run_dir / "last.pt").stat().st_size
    x = torch.rand(2, 3, cfg.image_size, cfg.image_size)
    with torch.no_grad():
        a, b = full.heatmaps(x), shipped.heatmaps(x)
    assert torch.allclose(a, b, atol=0.05 * a.abs().max().item())  # half precision: close, not equal
    assert target.with_suffix(".metrics.jsonl").read_text() == (cfg.run_dir / "metrics.jsonl").read_text()
    # seed 3's recipe pointed at seed 2's finished run: the saved config differs, nothing is written
    impostor = dataclasses.replace(pretrained.retrain_config("hands", 3, out=tmp_path), run_name=cfg.run_name)
    before = target.read_bytes()
    with pytest.raises(SystemExit, match="was not trained with the command of hands_source_only_seed2.pt"):
        ship_checkpoints.ship(impostor, target)
    assert target.read_bytes() == before


def test_shipping_ignores_settings_a_supervised_run_never_reads():
    cfg = pretrained.retrain_config("hands", 1)
    saved = dataclasses.asdict(cfg)
    saved["dann"] = dict(saved["dann"], trade_off=1.0)  # an adaptation method's default changed later
    saved["out"], saved["device"] = "/elsewhere", "cpu"
    assert pretrained.recipe_differences(saved, cfg) == []
    saved["sigma"] = 2.0
    assert pretrained.recipe_differences(saved, cfg) == [f"sigma: 2.0 != {cfg.sigma!r}"]
