"""benchmarks/landing_after_adaptation.py with stand-in runs: its lookups, its errors and its pairing."""

import dataclasses
import json

import pytest
import torch

from tests._repo import ROOT, benchmark_script


@pytest.fixture(scope="module")
def script():
    with benchmark_script("landing_after_adaptation") as module:
        yield module


def _run(folder, task, row, seed, weights_seed):
    """A finished stand-in run: a fresh ``ci`` detector as ``last.pt`` beside a ``final.json``."""
    from regdakit import training as T

    run = folder / f"reported-{task}-{row}-seed{seed}"
    run.mkdir(parents=True)
    cfg = T.make_config("ci", task=task, method="erm", seed=seed)
    model = T.build_model(cfg, adversarial=False, seed=weights_seed)
    torch.save({"config": dataclasses.asdict(cfg), "model": model.state_dict()}, run / "last.pt")
    (run / "final.json").write_text("{}")


def test_a_missing_runs_folder_or_run_is_named(script, tmp_path, capsys):
    with pytest.raises(SystemExit):
        script.main(["--runs", str(tmp_path / "absent")])
    assert "no such folder" in capsys.readouterr().err
    (tmp_path / "reported-hands-regda-seed1").mkdir()  # started, not finished
    with pytest.raises(FileNotFoundError, match="no finished run"):
        script.checkpoint(tmp_path, "hands", "regda", 1)
    from regdakit import pretrained

    assert script.checkpoint(tmp_path, "hands", "source_only", 1) == pretrained.checkpoint_path("hands", 1)


def test_rows_are_paired_by_seed(script, tmp_path, monkeypatch):
    for seed in (1, 2):
        _run(tmp_path, "hands", "continue", seed, weights_seed=10 + seed)
        _run(tmp_path, "hands", "control", seed, weights_seed=20 + seed)
        _run(tmp_path, "hands", "regda", seed, weights_seed=10 + seed)  # the same weights as continue-ERM
    written = {}
    monkeypatch.setattr(script, "write", lambda name, result: written.setdefault(name, result) and ROOT / "x.json")
    script.main(["--runs", str(tmp_path), "--tasks", "hands", "--seeds", "1", "2", "--n", "8"])
    result = json.loads(json.dumps(written["landing_after_adaptation"]))
    hands = result["tasks"]["hands"]
    assert result["seeds"] == [1, 2] and result["images"] == 8 and hands["target"] == "studio"
    for row in script.ROWS:
        assert hands["rows"][row]["landing_on_other"]["n"] == 2
        assert 0 <= hands["rows"][row]["landing_on_other"]["mean"] <= 1
    # Identical weights land identically: the paired difference is exactly zero on each seed.
    same = hands["regda_minus"]["continue"]["landing_on_other"]
    assert same["values"] == [0.0, 0.0] and same["seeds"] == [1, 2]
    other = hands["regda_minus"]["control"]["landing_on_other"]
    expected = [
        round(a - b, 4)
        for a, b in zip(
            hands["rows"]["regda"]["landing_on_other"]["values"],
            hands["rows"]["control"]["landing_on_other"]["values"],
            strict=True,
        )
    ]
    assert other["values"] == pytest.approx(expected, abs=2e-4)
