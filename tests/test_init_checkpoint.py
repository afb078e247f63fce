"""Adapting a shipped model: ``--method <adaptation method> --init_checkpoint=<shipped model>``."""

import json
import math

import pytest
import torch

from regdakit import __main__ as cli
from regdakit import pretrained, training
from regdakit import train as T
from regdakit.distributed import Context
from regdakit.training import pretraining

pytestmark = pytest.mark.usefixtures("one_thread")

#: The shipped seed-0 hands model: the tiny backbone on 128-pixel images, Gaussians of 2 cells (the first version's).
SHIPPED = pretrained.checkpoint_path("hands", 0)


def _cfg(tmp_path, method, **changes):
    """The ``ci`` sizes of a run, with the shipped model's geometry (its architecture is ``ci``'s)."""
    small = dict(
        method=method, image_size=128, heatmap_size=32, sigma=2.0, batch_size=2, adapt_iterations=2, eval_every=1,
        checkpoint_every=2, log_every=2, eval_size=8, out=str(tmp_path), device="cpu", init_checkpoint=str(SHIPPED),
    )  # fmt: skip
    return T.make_config("ci", **(small | changes))


@pytest.mark.skipif(not SHIPPED.is_file(), reason="the shipped model is not in this checkout")
@pytest.mark.parametrize(("method", "precision"), [("regda", "as shipped"), ("continue", "half")])
def test_an_adaptation_starts_from_the_shipped_model(tmp_path, method, precision):
    init = SHIPPED
    if precision == "half":  # as tools/ship_checkpoints.py writes the models of this version
        state = torch.load(SHIPPED, weights_only=True)
        state["model"] = {k: v.half() if v.is_floating_point() else v for k, v in state["model"].items()}
        init = tmp_path / "half.pt"
        torch.save(state, init)
    shipped = torch.load(init, weights_only=True)["model"]
    cfg = _cfg(tmp_path, method, init_checkpoint=str(init))
    model = pretraining.adaptation_model(cfg, {}, Context(), progress=False)
    state = model.state_dict()
    for key, value in shipped.items():  # psi and f are the shipped weights, in the run's float32
        assert state[key].dtype == (torch.float32 if value.is_floating_point() else value.dtype)
        assert torch.equal(state[key], value.to(state[key].dtype)), key
    assert (model.head_adv is not None) == (method == "regda")  # f' starts new
    result = T.train(cfg, progress=False)
    assert result["iteration"] == 2 and result["summary"]["iterations"] == [1, 2]
    assert all(math.isfinite(v) for split in result["metrics"].values() for v in split.values())
    assert json.loads((cfg.run_dir / "config.json").read_text())["init_checkpoint"] == str(init)
    assert not (tmp_path / "pretrain").exists()  # no pre-training: the shipped model is the source-only model


@pytest.mark.skipif(not SHIPPED.is_file(), reason="the shipped model is not in this checkout")
def test_another_image_size_is_refused_and_another_sigma_warned_with_the_fix(tmp_path):
    with pytest.raises(ValueError, match=r"has image_size=128, this run 64: pass --image_size=128 --heatmap_size=32"):
        T.train(_cfg(tmp_path, "regda", image_size=64, heatmap_size=16, sigma=0.5, run_name="size"), progress=False)
    with pytest.raises(ValueError, match="init_checkpoint starts an adaptation method"):
        _cfg(tmp_path, "erm")
    # The seed-0 models learnt Gaussians of 2 cells; adapting them at 1 changes the targets as well as the method.
    cfg = _cfg(tmp_path, "continue", sigma=1.0, adapt_iterations=1, run_name="sigma")
    with pytest.warns(UserWarning, match=r"trained with sigma=2.0, this run has sigma=1.0: .*pass --sigma=2.0"):
        pretraining.adaptation_model(cfg, {}, Context(), progress=False)


def test_the_command_line_takes_the_shipped_model(monkeypatch):
    seen = []
    monkeypatch.setattr(training, "train", lambda cfg, **kwargs: seen.append(cfg) or {})
    argv = ["train", "--task", "hands", "--method", "finetune", "--preset", "cpu-bench", "--sigma=2.0",
            f"--init_checkpoint={SHIPPED}"]  # fmt: skip
    assert cli.main(argv) == 0
    (cfg,) = seen
    assert cfg.method == "finetune" and cfg.init_checkpoint == str(SHIPPED) and cfg.sigma == 2.0
