"""Distributed training on CPU with gloo: 2 spawned processes against one process with the same global batch.

One launch of 2 ranks (module fixture) trains ERM and RegDA (fused), and an
ERM run cut and resumed; each rank is given its own ``out`` folder, so rank
1's must stay empty (rank 0 alone writes). The single-process references
draw the same images (the two ranks' streams, concatenated) and normalise
each rank's half of the batch on its own (the per-rank BatchNorm of the
distributed run; PyTorch's SyncBatchNorm needs CUDA).
"""

import dataclasses
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import _ddp_worker as W
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from regdakit import distributed, training
from regdakit import train as T
from regdakit.data.synthetic import SKELETONS

pytestmark = [
    pytest.mark.usefixtures("one_thread"),
    pytest.mark.skipif(
        not (torch.distributed.is_available() and torch.distributed.is_gloo_available()),
        reason="this torch build has no gloo backend",
    ),
]

WORLD = 2


def _cfg(**changes):
    """The "ci" preset at a global batch of 4 (2 per rank), a handful of iterations."""
    small = dict(
        batch_size=4,
        pretrain_iterations=4,
        adapt_iterations=3,
        eval_every=2,
        checkpoint_every=2,
        log_every=1,
        eval_size=8,
        device="cpu",
        dist_timeout=60.0,
    )
    return T.make_config("ci", **(small | changes))


#: RegDA's warm start at the horizon these tests were written for (N = 1000: over 3 iterations lambda < 2e-4, the
#: game's gradient into psi negligible), for the exact comparisons. With the game on ("regda_game_on", N scaled
#: to the run) the two runs cannot agree exactly: see test_the_game_on_agrees_but_for_relu_kinks.
_GAME_OFF = dataclasses.replace(T.PRESETS["ci"].regda, warmup_iterations=1000)
_PLAIN = dataclasses.replace(_GAME_OFF, fused=False)
EVAL_CFG = _cfg(eval_size=9)  # uneven shards: 4 and 5 images
RUNS = {
    "erm": (_cfg(method="erm", run_name="erm"), {}),
    "regda": (_cfg(method="regda", pretrain_iterations=2, run_name="regda", regda=_GAME_OFF), {}),
    "regda_game_on": (_cfg(method="regda", pretrain_iterations=2, run_name="regda_game_on"), {}),
    "regda_plain": (_cfg(method="regda", pretrain_iterations=2, run_name="regda_plain", regda=_PLAIN), {}),
    # The other methods, from the same cached pre-training: each step's pattern of players under DDP.
    **{m: (_cfg(method=m, pretrain_iterations=2, run_name=m), {}) for m in ("control", "dd", "mcd", "dan", "dann")},
    "cut": (_cfg(method="erm", run_name="cut", checkpoint_every=100), {"stop_after": 2}),
    "resumed": (_cfg(method="erm", run_name="cut", checkpoint_every=100), {"resume": True}),
    "cut_only": (_cfg(method="erm", run_name="cut_only", checkpoint_every=100), {"stop_after": 2}),
}


@pytest.fixture(scope="module")
def ddp(tmp_path_factory):
    """The 2-rank launch: ``(root, results per rank)``; rank r's files are under ``root / f"rank{r}"``."""
    root = tmp_path_factory.mktemp("ddp")
    results = W.launch(W.train_runs, (RUNS, str(root), EVAL_CFG), root / "results", world=WORLD)
    for rank, result in enumerate(results):
        assert "error" not in result, f"rank {rank}: {result['error'][2]}"
    return root, results


# ----------------------------------------------------- the single-process reference


class _Concat:
    """One stream whose batch is the ranks' batches of a distributed run, concatenated in rank order."""

    def __init__(self, streams):
        self.streams = streams

    def __iter__(self):
        return self

    def __next__(self):
        parts = [next(s) for s in self.streams]
        return {k: torch.cat([p[k] for p in parts]) if isinstance(v, torch.Tensor) else v for k, v in parts[0].items()}

    def state_dict(self):
        return [s.state_dict() for s in self.streams]

    def load_state_dict(self, state):
        for s, st in zip(self.streams, state, strict=True):
            s.load_state_dict(st)


def _ghost_batchnorm(bn: nn.modules.batchnorm._BatchNorm, x: torch.Tensor) -> torch.Tensor:
    """BatchNorm of each rank's share of the batch on its own, running statistics averaged over the shares."""
    if not bn.training:
        return type(bn).forward(bn, x)
    dims = [0, *range(2, x.dim())]
    outs, means, variances = [], [], []
    for part in x.chunk(WORLD):  # (B / WORLD, C, ...) each
        outs.append(F.batch_norm(part, None, None, bn.weight, bn.bias, True, 0.0, bn.eps))
        means.append(part.detach().mean(dims))
        variances.append(part.detach().var(dims, unbiased=True))
    with torch.no_grad():
        bn.running_mean.mul_(1 - bn.momentum).add_(bn.momentum * torch.stack(means).mean(0))
        bn.running_var.mul_(1 - bn.momentum).add_(bn.momentum * torch.stack(variances).mean(0))
        bn.num_batches_tracked.add_(1)
    return torch.cat(outs)


@pytest.fixture
def as_two_ranks(monkeypatch):
    """Make a single-process ``train`` draw and normalise its global batch as the 2 ranks do."""
    make_stream, build = T.make_stream, T.build_model

    def concat_stream(cfg, domain, seed, labels, rank=0, world_size=1):
        assert (rank, world_size) == (0, 1)
        return _Concat(
            [
                make_stream(cfg, domain, distributed.stream_seed(seed, r), labels, rank=r, world_size=WORLD)
                for r in range(WORLD)
            ]
        )

    def ghost_model(*args, **kwargs):
        model = build(*args, **kwargs)
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.forward = lambda x, m=m: _ghost_batchnorm(m, x)
        return model

    monkeypatch.setattr(training.loop, "make_stream", concat_stream)  # where the loop opens its streams
    for module in (training.pretraining, training.run):  # the pre-training's model, and the run's
        monkeypatch.setattr(module, "build_model", ghost_model)


def _assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key, value in a.items():
        if value.is_floating_point():
            torch.testing.assert_close(b[key], value, rtol=1e-4, atol=1e-5, msg=lambda m, key=key: f"{key}: {m}")
        else:
            assert torch.equal(b[key], value), key


def _last(root: Path, name: str) -> dict:
    return torch.load(root / "rank0" / name / "last.pt", weights_only=True)


# ----------------------------------------------------------------------- tests


@pytest.mark.parametrize(
    "name",
    [
        "erm",
        "regda",
        "regda_plain",
    ],
)
def test_two_processes_train_as_one_with_the_same_global_batch(ddp, name, tmp_path, as_two_ranks):
    root, results = ddp
    cfg, _ = RUNS[name]
    reference = T.train(dataclasses.replace(cfg, out=str(tmp_path)), progress=False)
    mine, theirs = _last(root, name), torch.load(tmp_path / name / "last.pt", weights_only=True)
    assert mine["world_size"] == WORLD and len(mine["ranks"]) == WORLD
    _assert_same_weights(theirs["model"], mine["model"])
    for opt in theirs["optimizers"]:  # the momentum buffers too: the gradients were the same
        for pid, state in theirs["optimizers"][opt]["state"].items():
            _assert_same_weights(state, mine["optimizers"][opt]["state"][pid])
    # The logged losses are the means over the ranks: the global batch's losses.
    ours = [json.loads(line) for line in (root / "rank0" / name / "metrics.jsonl").read_text().splitlines()]
    ref = [json.loads(line) for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in ours] == [r["iteration"] for r in ref]
    for a, b in zip(ours, ref, strict=True):
        if "train" in a:
            assert a["train"] == pytest.approx(b["train"], rel=1e-4, abs=1e-6)
    # Both ranks return the same (gathered) evaluation.
    assert results[0]["value"][name]["metrics"] == results[1]["value"][name]["metrics"]
    assert reference["iteration"] == results[0]["value"][name]["iteration"]


def test_the_game_on_agrees_but_for_relu_kinks(ddp, tmp_path, as_two_ranks):
    # With the game on (lambda 0.05-0.08 by iteration 3), step C's gradient reaches psi through f', and the two
    # runs agree to 1e-6 in weights, features and f''s outputs, yet one momentum tensor differs by 0.2 %. Traced
    # (an ad hoc probe, 2026-12-06): at iteration 3 a single pre-activation before a ReLU of the upsampling sits
    # at -5e-8 in one run and +8e-7 in the other, float32 noise on either side of the kink; the gradient routed
    # through that one element moves the grads of the layer below it by ~1 % (each run matches its own float64
    # recomputation). The DDP gradients equal the same process's plain autograd gradients exactly, and the
    # all-reduce is exact. So the check here is in norms, loose enough for one kink, tight enough for a real bug
    # (a missing average, lambda or player gives differences of order 1).
    root, _ = ddp
    cfg, _ = RUNS["regda_game_on"]
    T.train(dataclasses.replace(cfg, out=str(tmp_path)), progress=False)
    mine, theirs = _last(root, "regda_game_on"), torch.load(tmp_path / "regda_game_on" / "last.pt", weights_only=True)

    def close_in_norm(a: torch.Tensor, b: torch.Tensor, rel: float) -> bool:
        return bool((a - b).norm() <= rel * b.norm() + 1e-7)

    for key, value in theirs["model"].items():
        if value.is_floating_point():
            assert close_in_norm(mine["model"][key], value, 1e-4), key
    buffers = [
        (f"{opt}/{pid}", state["momentum_buffer"], mine["optimizers"][opt]["state"][pid]["momentum_buffer"])
        for opt in theirs["optimizers"]
        for pid, state in theirs["optimizers"][opt]["state"].items()
    ]
    assert buffers and all(close_in_norm(b, a, 1e-2) for _, a, b in buffers), [
        (name, float((b - a).norm() / a.norm())) for name, a, b in buffers if not close_in_norm(b, a, 1e-2)
    ]
    # lambda was on: the game moved psi (else this test would be the game-off one).
    assert T.make_config("ci").regda.warmup_iterations is None


@pytest.mark.parametrize("name", ["control", "dd", "mcd", "dan", "dann"])
def test_every_method_keeps_the_ranks_in_step(ddp, name):
    # The distributed evaluation gathers each rank's predictions made with its own weights; it equals one
    # process's evaluation of rank 0's weights only if the ranks' weights (and BatchNorm statistics) agree.
    root, results = ddp
    reported = results[0]["value"][name]
    assert reported["iteration"] == RUNS[name][0].adapt_iterations
    state = _last(root, name)
    assert state["window"] == {} and all(math.isfinite(v) for v in _train_losses(root, name))
    assert T.evaluate_checkpoint(root / "rank0" / name / "last.pt", "cpu")["metrics"] == reported["metrics"]


def _train_losses(root: Path, name: str) -> list[float]:
    lines = [json.loads(line) for line in (root / "rank0" / name / "metrics.jsonl").read_text().splitlines()]
    return [v for line in lines if "train" in line for v in line["train"].values()]


def test_ranks_draw_different_batches():
    cfg = _cfg()
    a, b = (
        next(T.make_stream(cfg, "rendered", distributed.stream_seed(1, r), labels=True, rank=r, world_size=WORLD))
        for r in range(WORLD)
    )
    assert a["image"].shape[0] == b["image"].shape[0] == cfg.batch_size // WORLD
    assert not torch.equal(a["image"], b["image"])
    with pytest.raises(ValueError, match="multiple of the 3 processes"):
        T.make_stream(cfg, "rendered", 0, labels=True, rank=0, world_size=3)


def test_only_rank_0_writes(ddp):
    root, _ = ddp
    assert not (root / "rank1").exists()  # rank 1 was given its own out: it never wrote (nor read) anything
    for name in sorted({cfg.run_name for cfg, _ in RUNS.values()} - {"cut_only"}):  # cut_only stopped early
        run = root / "rank0" / name
        assert {"config.json", "metrics.jsonl", "last.pt", "final.json"} <= {p.name for p in run.iterdir()}
        lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        keys = [(line["phase"], line["iteration"], "eval" in line) for line in lines]
        assert len(keys) == len(set(keys)), "a line was written twice"
    assert len(list((root / "rank0" / "pretrain").iterdir())) == 1  # RegDA's pre-training cache, once


def test_resume_with_the_same_world_size_is_exact(ddp):
    root, results = ddp
    assert results[0]["value"]["cut"]["metrics"] is None
    whole, resumed = _last(root, "erm"), _last(root, "cut")
    assert whole["iteration"] == resumed["iteration"] == 4
    for key, value in whole["model"].items():
        assert torch.equal(value, resumed["model"][key]), key
    for r in range(WORLD):
        for name in ("generator", "batches"):
            assert torch.equal(
                torch.as_tensor(whole["ranks"][r]["streams"]["source"][name]),
                torch.as_tensor(resumed["ranks"][r]["streams"]["source"][name]),
            )
    assert results[0]["value"]["resumed"]["metrics"] == results[0]["value"]["erm"]["metrics"]


def test_a_distributed_checkpoint_resumes_in_one_process(ddp, tmp_path):
    # Another world size: model, optimisers and schedulers continue; the streams start afresh (new seeds).
    root, _ = ddp
    shutil.copytree(root / "rank0" / "cut_only", tmp_path / "cut_only")
    before = torch.load(tmp_path / "cut_only" / "last.pt", weights_only=True)
    assert before["iteration"] == 2 and before["world_size"] == WORLD
    cfg = dataclasses.replace(RUNS["cut_only"][0], out=str(tmp_path))
    result = T.train(cfg, resume=True, progress=False)
    assert result["iteration"] == 4 and result["metrics"] is not None
    after = torch.load(tmp_path / "cut_only" / "last.pt", weights_only=True)
    assert "ranks" not in after and after["schedulers"]["model"]["last_epoch"] == 4
    assert after["streams"]["source"]["batches"] == 2  # a fresh stream since the resume, not rank 0's continued
    iterations = [json.loads(line)["iteration"] for line in (tmp_path / "cut_only" / "metrics.jsonl").open()]
    assert iterations == sorted(iterations) and iterations[-1] == 4


def test_gathered_evaluation_equals_single_process_evaluation(ddp):
    _, results = ddp
    model = T.build_model(EVAL_CFG, adversarial=False, seed=0)
    skeleton = SKELETONS[EVAL_CFG.task]
    single = {name: T.evaluate(model, data, skeleton) for name, data in T.make_eval_sets(EVAL_CFG).items()}
    assert results[0]["value"]["eval"] == results[1]["value"]["eval"] == single


@pytest.mark.parametrize("how", ["hang", "crash"])
def test_a_failed_rank_stops_the_job_with_a_clear_error(tmp_path, how):
    timeout = 5.0
    cfg = _cfg(method="erm", pretrain_iterations=6, dist_timeout=timeout, out=str(tmp_path / "out"))
    # grace: rank 1 of "hang" sleeps on; it is killed (after a faulthandler dump) 3 s after rank 0 finished.
    results = W.launch(W.failing_rank, (cfg, how), tmp_path, world=WORLD, init=False, wait=180, grace=3.0)
    assert "error" not in results[0], results[0]["error"][2]
    assert results[0]["exitcode"] == 0, results[0]["log"]
    name, message = results[0]["value"]["error"]
    assert name == "DistributedError", f"{message}\n{results[0]['log']}"
    assert "rank 0 of 2" in message and "in phase 'erm' at iteration 2" in message
    assert "crashed, hung or was killed" in message
    # Rank 0 gave up after the timeout (a hung peer) or at once (a dead one: gloo sees the closed connection).
    waited = results[0]["value"]["waited"]
    assert waited < timeout + 30, waited  # + the step's own time on a busy machine
    if how == "hang":
        assert waited >= timeout
        assert results[1]["error"][1] == "killed after its time was up"
        # faulthandler's dump shows where the hung rank sleeps. The whole log: the result's "log" is only its
        # tail, and the dump lists the innermost frame first, above the long pytest stack.
        assert "in failing_rank" in (tmp_path / "rank1.log").read_text(errors="replace")
    else:
        assert waited < timeout  # a dead peer is noticed at once, not after the timeout
        assert results[1]["exitcode"] == 3


def test_torchrun_cli(tmp_path):
    # The real launcher, the CLI and the trainer's own process group; the result is printed by rank 0 only.
    run = subprocess.run(
        [
            *(sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"),
            *("-m", "regdakit", "train", "--preset", "ci", "--method", "erm", "--no-progress", "--device", "cpu"),
            *("--pretrain_iterations", "2", "--eval_size", "8", "--out", str(tmp_path)),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=os.environ | {"OMP_NUM_THREADS": "1"},
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.count('"run_dir"') == 1
    state = torch.load(next(tmp_path.glob("*/last.pt")), weights_only=True)
    assert state["world_size"] == 2 and state["iteration"] == 2


def _fake_group(monkeypatch, calls):
    """A session under torchrun's environment whose process-group calls are recorded, not made."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(distributed.dist, "is_initialized", lambda: False)
    monkeypatch.setattr(distributed.dist, "init_process_group", lambda *a, **k: calls.append("init"))
    monkeypatch.setattr(distributed.dist, "barrier", lambda *a, **k: calls.append("barrier"))
    monkeypatch.setattr(distributed.dist, "destroy_process_group", lambda *a, **k: calls.append("destroy"))


def test_a_finished_session_meets_its_peers_before_destroying_the_group(monkeypatch):
    # Without the barrier a rank could tear the connections down while a peer still used them (a hang in
    # destroy_process_group on torch 2.4.1, 2 of 19 torchrun runs).
    calls = []
    _fake_group(monkeypatch, calls)
    with distributed.session(device="cpu") as ctx:
        assert (ctx.rank, ctx.world_size) == (1, 2)
        calls.append("work")
    assert calls == ["init", "work", "barrier", "destroy"]


def test_a_failed_session_destroys_the_group_without_meeting_its_peers(monkeypatch):
    # A rank that raised cannot count on its peers reaching a barrier: it closes its side and re-raises.
    calls = []
    _fake_group(monkeypatch, calls)
    with pytest.raises(KeyError, match="own bug"), distributed.session(device="cpu"):
        raise KeyError("own bug")
    assert calls == ["init", "destroy"]
