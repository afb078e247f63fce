"""Continue-ERM and the target fine-tune: the same budget from the source-only model, without a method."""

import json
import math

import pytest
import torch

from regdakit import train as T
from regdakit.heatmaps import encode
from regdakit.methods import METHODS, continue_erm, contract, control, finetune
from regdakit.models import pose_resnet
from regdakit.training import loop

pytestmark = pytest.mark.usefixtures("one_thread")

K, SIZE = 5, 64


def _cfg(tmp_path, **changes):
    small = dict(
        batch_size=2, pretrain_iterations=4, adapt_iterations=3, eval_every=3, checkpoint_every=3, log_every=3,
        eval_size=8, out=str(tmp_path), device="cpu",
    )  # fmt: skip
    return T.make_config("ci", **(small | changes))


def test_they_are_run_methods_that_start_from_the_source_only_model():
    assert METHODS["continue"] is continue_erm and METHODS["finetune"] is finetune
    assert {"continue", "finetune"} <= set(T.ADAPT_METHODS) and {"continue", "finetune"} <= set(T.RUN_METHODS)
    assert contract.labelled_domain(continue_erm) == "source" and contract.labelled_domain(finetune) == "target"
    assert not contract.target_images(continue_erm) and not contract.target_images(finetune)
    assert contract.labelled_domain(METHODS["regda"]) == "source" and contract.target_images(METHODS["regda"])
    # Same optimiser section as every adaptation method: the comparison changes the objective only.
    cfg = T.make_config("ci", method="continue")
    assert T.method_config(cfg) is cfg.regda and T.method_config(T.make_config("ci", method="finetune")) is cfg.regda


def test_continue_erm_updates_the_parameters_as_the_control_and_leaves_batchnorm_to_the_source():
    """From the same model and batches, continue-ERM and the control make the same parameter update;
    only the control's target forward moves BatchNorm's running statistics."""
    g = torch.Generator().manual_seed(3)
    kp = torch.rand(4, K, 2, generator=g) * (SIZE - 8) + 4
    heat, weight = encode(kp, torch.ones(4, K, dtype=torch.bool), SIZE // 4, 1.0)
    batch_s = {"image": torch.rand(4, 3, SIZE, SIZE, generator=g), "heatmap": heat, "weight": weight}
    batch_t = {"image": torch.rand(4, 3, SIZE, SIZE, generator=g)}
    states = {}
    for module in (continue_erm, control):
        torch.manual_seed(0)
        model = pose_resnet("tiny", K, adversarial=False).train()
        cfg = module.Config()
        opts = module.make_optimizers(model, cfg)
        for it in range(2):
            module.step(model, batch_s, batch_t if module is control else None, opts, cfg, it)
        states[module.__name__] = model.state_dict()
    a, b = states.values()
    params = dict(pose_resnet("tiny", K, adversarial=False).named_parameters())
    assert all(torch.equal(a[k], b[k]) for k in params)
    assert any(not torch.equal(a[k], b[k]) for k in a if k.endswith("running_mean"))


def test_the_trainer_draws_source_or_target_labels_and_no_unlabelled_batch(tmp_path, monkeypatch):
    erm = T.train(_cfg(tmp_path, method="erm"), progress=False)
    opened = []
    real = loop.make_stream

    def spy(cfg, domain, seed, labels, **kwargs):
        opened.append((cfg.method, domain, seed, labels))
        return real(cfg, domain, seed, labels, **kwargs)

    monkeypatch.setattr(loop, "make_stream", spy)
    results = {}
    for method in ("continue", "finetune", "regda"):
        cfg = _cfg(tmp_path, method=method, init_checkpoint=f"{erm['run_dir']}/last.pt")
        results[method] = T.train(cfg, progress=False)
    # seed 0: the adaptation's streams have seed 2 * 0 + 1; the fine-tune reads the target's images *with labels*.
    assert opened == [
        ("continue", "rendered", 1, True),
        ("finetune", "studio", 1, True),
        ("regda", "rendered", 1, True),
        ("regda", "studio", 1, False),
    ]
    for method in ("continue", "finetune"):
        result = results[method]
        assert result["iteration"] == 3
        assert all(math.isfinite(v) for m in result["metrics"].values() for v in m.values())
        run_dir = _cfg(tmp_path, method=method).run_dir
        records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
        assert [list(r["train"]) for r in records if "train" in r] == [["A/source"]]
        assert torch.load(run_dir / "last.pt", weights_only=True)["parts"] == []


def test_continue_starts_from_the_init_checkpoint_and_trains_on(tmp_path):
    erm = T.train(_cfg(tmp_path, method="erm"), progress=False)
    start = torch.load(f"{erm['run_dir']}/last.pt", weights_only=True)["model"]
    cfg = _cfg(tmp_path, method="continue", init_checkpoint=f"{erm['run_dir']}/last.pt", adapt_iterations=1)
    T.train(cfg, progress=False)
    after = torch.load(cfg.run_dir / "last.pt", weights_only=True)["model"]
    assert after.keys() == start.keys()
    moved = {k.split(".")[0] for k in start if start[k].is_floating_point() and not torch.equal(start[k], after[k])}
    assert moved == {"backbone", "upsampling", "head"}  # one SGD step of psi and f from the given weights
    # Without init_checkpoint it starts from the cached pre-training, as every adaptation method.
    T.train(_cfg(tmp_path, method="finetune", run_name="from-cache"), progress=False)
    assert len(list((tmp_path / "pretrain").iterdir())) == 1
