"""Trainer: configs and overrides, exact resume, NaN stop, label-free target stream, CLI."""

import dataclasses
import json
import math
import multiprocessing
import sys
import time
from pathlib import Path

import pytest
import torch

from regdakit import __main__ as cli
from regdakit import train as T
from regdakit.methods import METHODS, dan, regda

pytestmark = pytest.mark.usefixtures("one_thread")


def _cfg(tmp_path, **changes):
    """The "ci" preset, smaller still: seconds per run."""
    small = dict(
        batch_size=2,
        pretrain_iterations=4,
        adapt_iterations=6,
        eval_every=3,
        checkpoint_every=3,
        log_every=2,
        eval_size=8,
        out=str(tmp_path),
        device="cpu",
    )
    return T.make_config("ci", **(small | changes))


# ------------------------------------------------------------------ configs


def test_presets_are_valid_and_distinct():
    assert {"ci", "cpu-small", "paper"} <= set(T.PRESETS)
    paper = T.PRESETS["paper"]
    assert (paper.backbone, paper.image_size, paper.heatmap_size, paper.batch_size) == ("resnet101", 256, 64, 32)
    assert (T.PRESETS["cpu-small"].backbone, T.PRESETS["cpu-small"].image_size) == ("tiny", 128)


def test_config_json_round_trip():
    cfg = T.make_config("paper", regda=regda.Config(margin=2.0, fused=False))
    data = json.loads(json.dumps(dataclasses.asdict(cfg)))
    assert T.config_from_dict(data) == cfg


def test_overrides_are_type_checked():
    cfg = T.apply_overrides(
        T.PRESETS["ci"],
        {"batch_size": "8", "regda.margin": "2", "regda.fused": "false", "erm.milestones": "10,20", "source": "none"},
    )
    assert (cfg.batch_size, cfg.regda.margin, cfg.regda.fused, cfg.erm.milestones, cfg.source) == (
        8,
        2.0,
        False,
        (10, 20),
        None,
    )
    with pytest.raises(ValueError, match="--batch_size expects int"):
        T.apply_overrides(cfg, {"batch_size": "eight"})
    with pytest.raises(ValueError, match="unknown setting --nope"):
        T.apply_overrides(cfg, {"nope": "1"})
    with pytest.raises(ValueError, match="heatmap_size must be"):
        T.apply_overrides(cfg, {"heatmap_size": "8"})
    with pytest.raises(ValueError, match="method must be"):
        T.apply_overrides(cfg, {"method": "cyclegan"})


# ----------------------------------------------------------------- training


def _tensors(obj, prefix=""):
    """Every tensor of a (nested) checkpoint entry by its path: what bitwise equality is checked on."""
    if isinstance(obj, torch.Tensor):
        return {prefix: obj}
    if isinstance(obj, dict):
        return {k: v for key, value in obj.items() for k, v in _tensors(value, f"{prefix}/{key}").items()}
    if isinstance(obj, (list, tuple)):
        return {k: v for i, value in enumerate(obj) for k, v in _tensors(value, f"{prefix}/{i}").items()}
    return {}


@pytest.mark.parametrize("method", sorted(METHODS))
def test_exact_resume_equals_an_uninterrupted_run(tmp_path, method):
    # Every method (an adaptation after its shared, cached pre-training): 3 iterations, stop, resume, 3 more
    # == 6 iterations, bit for bit: weights, every optimiser and schedule state, streams, the loss window.
    length = {"pretrain_iterations": 6} if method == "erm" else {}
    whole = T.train(_cfg(tmp_path, method=method, run_name="whole", **length), progress=False)
    cut = _cfg(tmp_path, method=method, run_name="cut", checkpoint_every=100, **length)  # only the stop writes
    assert T.train(cut, stop_after=3, progress=False)["metrics"] is None
    resumed = T.train(cut, resume=True, progress=False)
    assert resumed["metrics"] == whole["metrics"]
    a = torch.load(tmp_path / "whole" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "cut" / "last.pt", weights_only=True)
    assert a["iteration"] == b["iteration"] == 6
    assert a["parts"] == b["parts"] == list(METHODS[method].PARTS)
    for entry in ("model", "optimizers", "streams"):
        tensors_a, tensors_b = _tensors(a[entry]), _tensors(b[entry])
        assert tensors_a.keys() == tensors_b.keys() and tensors_a, entry
        for key, value in tensors_a.items():
            assert torch.equal(value, tensors_b[key]), (entry, key)
    assert a["schedulers"] == b["schedulers"] and a["window"] == b["window"]
    # The metrics log is the same line for line (the lines after the cut were not duplicated).
    log_whole = (tmp_path / "whole" / "metrics.jsonl").read_text().splitlines()
    log_cut = (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()
    assert log_whole == log_cut
    # An adaptation method's pre-training ran once, for both runs (ERM has none).
    cached = list((tmp_path / "pretrain").iterdir()) if method != "erm" else []
    assert len(cached) == (0 if method == "erm" else 1) and not (method == "erm" and (tmp_path / "pretrain").exists())


def test_a_run_resumes_exactly_across_the_rename_of_the_loss_keys(tmp_path):
    # A checkpoint written before the loss-key vocabulary holds its loss window under the old names: resumed,
    # the window continues under the new ones, so the next logged means are those of an uninterrupted run.
    whole = _cfg(tmp_path, run_name="whole", log_every=4)
    T.train(whole, progress=False)
    cut = _cfg(tmp_path, run_name="cut", log_every=4, checkpoint_every=100)
    T.train(cut, stop_after=3, progress=False)
    state = torch.load(cut.run_dir / "last.pt", weights_only=True)
    old_names = {"A/source": "A_source", "A/truth": "A_truth", "B/adversary": "B_false", "C/features": "C_truth"}
    state["window"] = {old_names.get(k, k): v for k, v in state["window"].items()}
    del state["parts"]  # nor did checkpoints record their parts
    torch.save(state, cut.run_dir / "last.pt")
    T.train(cut, resume=True, progress=False)
    logs = [(run.run_dir / "metrics.jsonl").read_text() for run in (whole, cut)]
    assert logs[0] == logs[1]


def test_a_fresh_run_refuses_an_existing_run_directory(tmp_path):
    cfg = _cfg(tmp_path, method="erm", pretrain_iterations=2)
    T.train(cfg, progress=False)
    with pytest.raises(FileExistsError):
        T.train(cfg, progress=False)
    assert T.train(cfg, resume=True, progress=False)["iteration"] == 2


def test_nan_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    real_step = regda.step
    seen_target_keys = set()

    def step(model, batch_s, batch_t, optimizers, cfg, it, **settings):
        seen_target_keys.update(batch_t)
        losses = real_step(model, batch_s, batch_t, optimizers, cfg, it, **settings)
        if it == 4:
            losses["B/adversary"] = float("nan")
        return losses

    monkeypatch.setattr(regda, "step", step)
    cfg = _cfg(tmp_path)
    message = r"'B/adversary' of regda's step B \(f' on the target, psi and f fixed\) is nan at iteration 4"
    with pytest.raises(T.NonFiniteLossError, match=message):
        T.train(cfg, progress=False)
    assert torch.load(cfg.run_dir / "last.pt", weights_only=True)["iteration"] == 3
    # Target batches reached the step without labels.
    assert seen_target_keys == {"image", "meta"}
    # The kept checkpoint evaluates.
    kept = T.evaluate_checkpoint(cfg.run_dir / "last.pt", "cpu")
    assert kept["iteration"] == 3 and all(math.isfinite(v) for m in kept["metrics"].values() for v in m.values())


def test_a_nan_names_the_step_of_the_method_that_computed_it(tmp_path, monkeypatch):
    # DAN has one update; its MMD is a loss of DAN's step A, not of "the ERM step".
    real_step = dan.step

    def step(*args, **settings):
        return {**real_step(*args, **settings), "A/mmd": float("inf")}

    monkeypatch.setattr(dan, "step", step)
    with pytest.raises(T.NonFiniteLossError, match=r"loss 'A/mmd' of dan's step A \(psi and f on source and target"):
        T.train(_cfg(tmp_path, method="dan"), progress=False)


def test_non_finite_batchnorm_statistics_stop_the_run_before_a_checkpoint_holds_them(tmp_path, monkeypatch):
    # Running variances can overflow while every loss stays finite (training normalises with the batch's
    # statistics); a checkpoint holding them would evaluate to nonsense, so the run stops at the next
    # evaluation / checkpoint with the last good checkpoint kept, as for a NaN loss.
    from regdakit.methods import erm

    real_step = erm.step

    def step(model, batch_s, batch_t, optimizers, cfg, it):
        losses = real_step(model, batch_s, batch_t, optimizers, cfg, it)
        if it == 4:  # after the checkpoint at 3
            bn = next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
            bn.running_var[0] = float("inf")
        return losses

    monkeypatch.setattr(erm, "step", step)
    cfg = _cfg(tmp_path, method="erm", pretrain_iterations=6)
    with pytest.raises(T.NonFiniteStateError, match=r"running_var' holds NaN/Inf at iteration 6 .*/last\.pt is kept"):
        T.train(cfg, progress=False)
    assert issubclass(T.NonFiniteStateError, T.NonFiniteLossError)  # the CLI's exit status 1, as a NaN loss
    kept = T.evaluate_checkpoint(cfg.run_dir / "last.pt", "cpu")
    assert kept["iteration"] == 3 and all(math.isfinite(v) for m in kept["metrics"].values() for v in m.values())
    assert not list(cfg.run_dir.glob("iter_0000006.pt"))
    evaluated = [json.loads(line)["iteration"] for line in (cfg.run_dir / "metrics.jsonl").open() if "eval" in line]
    assert evaluated == [3]  # no evaluation of the broken model was logged


def test_resume_refuses_other_settings_and_lists_them(tmp_path):
    cfg = _cfg(tmp_path, method="erm", pretrain_iterations=4)
    T.train(cfg, stop_after=2, progress=False)
    saved = (cfg.run_dir / "config.json").read_text()
    changed = dataclasses.replace(cfg, eval_every=2, erm=dataclasses.replace(cfg.erm, lr=0.5))
    with pytest.raises(T.ResumeError) as err:
        T.train(changed, resume=True, progress=False)
    assert str(err.value) == (
        f"cannot resume {cfg.run_dir} with other settings than it ran with: eval_every: 3 -> 2; erm.lr: 0.1 -> 0.5 "
        "(erm.lr cannot change in a run: start another run (another run_name); to continue with the new "
        "eval_every, pass --resume_allow=eval_every)"
    )
    with pytest.raises(ValueError, match=r"resume_allow: erm\.lr cannot change in a run"):
        T.train(changed, resume=True, resume_allow=("erm.lr", "eval_every"), progress=False)
    assert (cfg.run_dir / "config.json").read_text() == saved  # a refused resume records nothing
    # The safe ones, when allowed, change and are recorded; where the run lives is never compared.
    moved = tmp_path / "moved"
    moved.mkdir()
    cfg.run_dir.rename(moved / cfg.run_dir.name)
    allowed = dataclasses.replace(cfg, eval_every=2, out=str(moved))
    result = T.train(allowed, resume=True, resume_allow=("eval_every",), progress=False)
    assert result["iteration"] == 4 and json.loads((allowed.run_dir / "config.json").read_text())["eval_every"] == 2
    # A finished run resumed again: the same evaluation, and no second final record in the log.
    log = (allowed.run_dir / "metrics.jsonl").read_text()
    assert T.train(allowed, resume=True, progress=False)["metrics"] == result["metrics"]
    assert (allowed.run_dir / "metrics.jsonl").read_text() == log
    # A run cannot be shortened below its checkpoint, even when its length may change ...
    shorter = dataclasses.replace(allowed, pretrain_iterations=3)
    with pytest.raises(T.ResumeError, match=r"pretrain_iterations: 4 -> 3 .*--resume_allow=pretrain_iterations\)"):
        T.train(shorter, resume=True, progress=False)
    with pytest.raises(ValueError, match=r"at iteration 4, past this run's pretrain_iterations=3"):
        T.train(shorter, resume=True, resume_allow=("pretrain_iterations",), progress=False)
    # ... but extended: the same model as a run of that length from the start.
    longer = dataclasses.replace(allowed, pretrain_iterations=6)
    T.train(longer, resume=True, resume_allow=["pretrain_iterations"], progress=False)
    straight = T.train(dataclasses.replace(longer, run_name="straight", out=str(tmp_path)), progress=False)
    a = torch.load(longer.run_dir / "last.pt", weights_only=True)["model"]
    b = torch.load(Path(straight["run_dir"]) / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    # For an adaptation method the pre-training length selects the cached pre-training: never allowed.
    with pytest.raises(ValueError, match="resume_allow: pretrain_iterations cannot change"):
        T.train(_cfg(tmp_path, method="regda"), resume=True, resume_allow=("pretrain_iterations",), progress=False)


def _concurrent_run(sync: Path, argv: list[str]) -> None:
    """One of two forked processes: the CLI, the pre-training's holder kept until the other one waits for it."""
    import fcntl

    class Flock:  # fcntl, leaving a mark when this process finds a folder locked by the other one
        def __getattr__(self, name):
            return getattr(fcntl, name)

        def flock(self, fd, op):
            try:
                return fcntl.flock(fd, op)
            except BlockingIOError:
                (sync / "blocked").touch()
                raise

    from regdakit.training import files, pretraining

    run_phase = pretraining.run_phase

    def holding(cfg, phase, *args, **kwargs):
        if phase.name == "pretrain":
            print("pre-training here", flush=True)
            deadline = time.monotonic() + 60
            while not (sync / "blocked").exists() and time.monotonic() < deadline:
                time.sleep(0.01)
        return run_phase(cfg, phase, *args, **kwargs)

    files.fcntl, pretraining.run_phase = Flock(), holding  # in this forked process only
    name = argv[-1].split("=")[1]
    sys.stdout = (sync / f"{name}.out").open("w")
    sys.stderr = (sync / f"{name}.err").open("w")
    (sync / f"ready-{name}").touch()
    while not (sync / "go").exists():
        time.sleep(0.01)
    code = cli.main(argv)
    sys.stdout.flush()
    sys.stderr.flush()
    sys.exit(code)


@pytest.mark.skipif(sys.platform == "win32", reason="fcntl.flock and fork: POSIX only")
def test_two_runs_started_at_once_share_one_pre_training(tmp_path):
    # RegDA and the control, same task and seed, started together: they need the same cached pre-training.
    # One trains it while the other waits on the cache's lock, then reads its model.pt. (Forked processes:
    # no second import of torch.)
    sync, out = tmp_path / "sync", tmp_path / "runs"
    sync.mkdir()
    common = ["train", "--preset=ci", "--no-progress", f"--out={out}", "--device=cpu", "--batch_size=2"]
    common += ["--pretrain_iterations=3", "--adapt_iterations=1", "--eval_every=2", "--log_every=2", "--eval_size=4"]
    fork = multiprocessing.get_context("fork")
    procs = {
        m: fork.Process(target=_concurrent_run, args=(sync, [*common, f"--method={m}"])) for m in ("regda", "control")
    }
    for p in procs.values():
        p.start()
    try:
        deadline = time.monotonic() + 60
        while len(list(sync.glob("ready-*"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        (sync / "go").touch()  # both ready: start them together
        for p in procs.values():
            p.join(timeout=180)
    finally:
        for p in procs.values():
            p.kill()
    outputs = {m: ((sync / f"{m}.out").read_text(), (sync / f"{m}.err").read_text()) for m in procs}
    assert {m: p.exitcode for m, p in procs.items()} == {"regda": 0, "control": 0}, outputs
    assert sum("pre-training here" in stdout for stdout, _ in outputs.values()) == 1
    waited = [stderr for _, stderr in outputs.values() if "waiting for another run (process " in stderr]
    assert len(waited) == 1 and "to finish the pre-training in" in waited[0]
    (cache,) = (out / "pretrain").iterdir()
    assert (cache / "model.pt").is_file()
    records = [(r["iteration"], "eval" in r) for r in map(json.loads, (cache / "metrics.jsonl").open())]
    assert records == [(2, False), (2, True), (3, False), (3, True)]  # each line once, none lost
    for method in procs:
        assert (out / f"hands-{method}-tiny64-seed0" / "final.json").is_file()
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]


def test_oracle_trains_on_labelled_target_batches(tmp_path, monkeypatch):
    from regdakit.methods import erm

    real_step, domains = erm.step, set()

    def step(model, batch_s, batch_t, optimizers, cfg, it):
        domains.add(batch_s["meta"]["domain"])
        return real_step(model, batch_s, batch_t, optimizers, cfg, it)

    monkeypatch.setattr(erm, "step", step)
    T.train(_cfg(tmp_path, method="oracle", pretrain_iterations=2), progress=False)
    assert domains == {T.TASK_DOMAINS["hands"][1]}


def test_control_adapts_the_cached_source_only_model_without_target_labels(tmp_path, monkeypatch):
    from regdakit.methods import control

    real_step, seen_target_keys = control.step, set()

    def step(model, batch_s, batch_t, optimizers, cfg, it):
        seen_target_keys.update(batch_t)
        return real_step(model, batch_s, batch_t, optimizers, cfg, it)

    monkeypatch.setattr(control, "step", step)
    T.train(_cfg(tmp_path, method="regda"), progress=False)
    cached = list((tmp_path / "pretrain").iterdir())
    result = T.train(_cfg(tmp_path, method="control"), progress=False)
    assert list((tmp_path / "pretrain").iterdir()) == cached  # the same pre-training, reused
    assert result["iteration"] == 6 and seen_target_keys == {"image", "meta"}
    state = torch.load(tmp_path / "hands-control-tiny64-seed0" / "last.pt", weights_only=True)
    assert state["parts"] == []  # no f': the control has no game


def test_regda_can_start_from_a_source_only_checkpoint(tmp_path):
    erm_run = T.train(_cfg(tmp_path, method="erm"), progress=False)
    start = T.load_checkpoint(f"{erm_run['run_dir']}/last.pt", device="cpu")[0].state_dict()
    cfg = _cfg(tmp_path, method="regda", init_checkpoint=f"{erm_run['run_dir']}/last.pt", adapt_iterations=1)
    result = T.train(cfg, progress=False)
    assert not (tmp_path / "pretrain").exists()  # nothing was pre-trained
    adapted = T.load_checkpoint(f"{result['run_dir']}/last.pt", device="cpu")[0].state_dict()
    # One iteration from the checkpoint: close to it, not equal (it trained), f' is new.
    assert any(k.startswith("head_adv.") for k in adapted)
    delta = max((adapted[k] - v).abs().max().item() for k, v in start.items() if v.is_floating_point())
    assert 0 < delta < 1


def test_an_erm_run_computes_exactly_regdas_cached_pretraining(tmp_path):
    # The shipped source-only models come from the pre-training cache; their retrain command is an ERM run.
    T.train(_cfg(tmp_path, method="regda", adapt_iterations=1), progress=False)
    (cache,) = (tmp_path / "pretrain").iterdir()
    cached = torch.load(cache / "model.pt", weights_only=True)
    erm_run = T.train(_cfg(tmp_path, method="erm"), progress=False)
    trained = torch.load(f"{erm_run['run_dir']}/last.pt", weights_only=True)["model"]
    assert cached.keys() == trained.keys()
    assert all(torch.equal(cached[k], trained[k]) for k in cached)


def test_regda_warm_start_horizon_is_regdas_not_the_models(tmp_path):
    cfg = _cfg(tmp_path, regda=regda.Config(warmup_iterations=7))
    assert regda.warm_start(T.method_config(cfg), 7) == pytest.approx(0.1 * math.tanh(0.5))
    # The model holds no schedule of the run: the same model whatever the method's settings.
    model = T.build_model(cfg, adversarial=True, seed=0)
    default = T.build_model(_cfg(tmp_path), adversarial=True, seed=0)
    assert repr(model) == repr(default)
    with pytest.raises(ValueError, match="warmup_iterations must be >= 1"):
        regda.Config(warmup_iterations=0)


def test_load_checkpoint_builds_the_recorded_parts_and_guesses_only_for_old_checkpoints(tmp_path):
    cfg = _cfg(tmp_path, method="dann", adapt_iterations=3)
    T.train(cfg, progress=False)
    state = torch.load(cfg.run_dir / "last.pt", weights_only=True)
    assert state["parts"] == ["domain_discriminator"] and "adversarial" not in state
    model, _, _ = T.load_checkpoint(cfg.run_dir / "last.pt", "cpu")
    assert model.head_adv is None and model.domain_discriminator is not None
    # A checkpoint of an earlier version has no "parts": they are read off its weights' names.
    old = dict(state)
    del old["parts"]
    torch.save(old, tmp_path / "old.pt")
    guessed, _, _ = T.load_checkpoint(tmp_path / "old.pt", "cpu")
    assert guessed.state_dict().keys() == model.state_dict().keys()
    # Recorded parts the run's method does not attach are an error, not a silent other model.
    torch.save(dict(state, parts=["domain_discriminator", "something_else"]), tmp_path / "odd.pt")
    with pytest.raises(T.CheckpointError, match=r"parts \['something_else'\]"):
        T.load_checkpoint(tmp_path / "odd.pt", "cpu")


def test_init_checkpoint_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        T.train(_cfg(tmp_path, init_checkpoint=str(tmp_path / "missing.pt")), progress=False)
    erm_run = T.train(_cfg(tmp_path, method="erm"), progress=False)
    other = _cfg(tmp_path, task="bodies", init_checkpoint=f"{erm_run['run_dir']}/last.pt", run_name="x")
    with pytest.raises(ValueError, match="task='hands'"):
        T.train(other, progress=False)


# ---------------------------------------------------------------------- CLI


def test_cli_train_and_eval(tmp_path, capsys):
    args = ["train", "--task", "hands", "--method", "erm", "--preset", "ci", "--no-progress"]
    args += [f"--out={tmp_path}", "--pretrain_iterations=2", "--batch_size=2", "--eval_size=8", "--device=cpu"]
    assert cli.main(args) == 0
    result = json.loads(capsys.readouterr().out)
    checkpoint = tmp_path / "hands-erm-tiny64-seed0" / "last.pt"
    assert cli.main(["eval", "--checkpoint", str(checkpoint), "--device", "cpu"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["metrics"] == result["metrics"]  # the same last-iteration model and fixed sets


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--batch_size=abc"], "--batch_size expects int"),
        (["train", "--nope=1"], "unrecognized arguments"),
        (["train", "--preset", "huge"], "invalid choice"),
        (["eval"], "--checkpoint"),
    ],
)
def test_cli_argument_errors_exit_2(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--preset", "ci", "--heatmap_size=8"], "heatmap_size must be"),
        (["train", "--method=cyclegan"], "method must be one of"),
        (["eval", "--checkpoint", "/nonexistent.pt"], "checkpoint /nonexistent.pt does not exist"),
    ],
)
def test_cli_invalid_values_return_2(argv, message, capsys):
    assert cli.main(argv) == 2
    assert message in capsys.readouterr().err


def test_one_process_ignores_the_distributed_settings(tmp_path, monkeypatch):
    # Outside torchrun: no process group, the model itself reaches the step (no DDP view), a checkpoint without
    # per-rank states, and sync_batchnorm / dist_timeout change nothing.
    from regdakit.methods import erm

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    real_step, seen = erm.step, set()

    def step(model, batch_s, batch_t, optimizers, cfg, it):
        seen.add(type(model.backbone).__name__)  # a DistributedDataParallel under torchrun
        return real_step(model, batch_s, batch_t, optimizers, cfg, it)

    monkeypatch.setattr(erm, "step", step)
    plain = _cfg(tmp_path, method="erm", pretrain_iterations=2, run_name="plain")
    T.train(plain, progress=False)
    T.train(dataclasses.replace(plain, run_name="sync", sync_batchnorm=True, dist_timeout=1.0), progress=False)
    assert seen == {"ResNet"} and not torch.distributed.is_initialized()
    a, b = (torch.load(tmp_path / name / "last.pt", weights_only=True) for name in ("plain", "sync"))
    assert not {"world_size", "ranks"} & set(a)
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    with pytest.raises(ValueError, match="dist_timeout must be > 0"):
        dataclasses.replace(plain, dist_timeout=0.0)


def test_the_facade_reexports_the_trainer_api():
    from regdakit import training
    from regdakit.methods import METHODS

    assert T.__all__ == training.__all__
    assert all(getattr(T, name) is getattr(training, name) for name in training.__all__)
    # The methods of a run come from METHODS: each adaptation method, ERM, and ERM on target labels.
    assert T.RUN_METHODS == ("erm", "oracle", *T.ADAPT_METHODS)
    assert set(T.ADAPT_METHODS) == set(METHODS) - {"erm"}


# ------------------------------------------------------------------ one heatmap sigma

#: Pre-training cache keys of the presets before the sigma setting existed (committed caches and results
#: are found by them): the default sigma must not change a digest.
KEYS_BEFORE_SIGMA = {
    "ci": "ee110e396d58",
    "cpu-small": "25b308c91e62",
    "cpu-bench": "f35316c84a58",
    "paper": "c8e24089a25a",
}


def _as_before_sigma(preset: str) -> T.TrainConfig:
    """``preset`` with the settings it had before the one sigma setting (cpu-bench: the v1 shipped recipe)."""
    if preset == "cpu-bench":
        from regdakit import pretrained

        return dataclasses.replace(pretrained.retrain_config("hands", seed=0), out="runs", run_name=None)
    return dataclasses.replace(T.make_config(preset), sigma=T.LEGACY_SIGMA)


def test_the_legacy_width_keeps_every_pretraining_key_and_another_one_changes_it():
    for preset, digest in KEYS_BEFORE_SIGMA.items():
        cfg = _as_before_sigma(preset)
        assert T.pretrain_key(cfg) == f"hands-rendered-seed0-{digest}", preset
        assert T.pretrain_key(dataclasses.replace(cfg, sigma=2)) == T.pretrain_key(cfg)  # 2 cells, however spelled
        assert T.pretrain_key(dataclasses.replace(cfg, sigma=1.0)) != T.pretrain_key(cfg)  # other targets
    bodies = dataclasses.replace(_as_before_sigma("cpu-bench"), task="bodies", seed=4)
    assert T.pretrain_key(bodies) != "bodies-synthetic-seed4-f35316c84a58"  # the bodies generator is v2 now


def test_every_preset_has_the_papers_relative_heatmap_width():
    # sigma 2 cells on the paper's 64 x 64 maps: the same share of the map on every preset's map
    for name, cfg in T.PRESETS.items():
        assert cfg.sigma == 2.0 * cfg.heatmap_size / 64 == T.paper_sigma(cfg.heatmap_size), name
    assert T.PRESETS["paper"].sigma == T.LEGACY_SIGMA == 2.0 and T.PRESETS["cpu-bench"].sigma == 1.0
    assert T.pretrain_key(T.PRESETS["paper"]) == f"hands-rendered-seed0-{KEYS_BEFORE_SIGMA['paper']}"


def test_one_sigma_sets_the_training_targets_and_the_pseudo_labels(tmp_path, monkeypatch):
    from regdakit.heatmaps import encode
    from regdakit.methods import dd

    cfg = _cfg(tmp_path, sigma=1.25)
    batch = next(T.make_stream(cfg, cfg.source_domain, 0, labels=True))
    heatmap, _ = encode(batch["keypoints"], batch["visible"], cfg.heatmap_size, 4, sigma=1.25)
    assert torch.equal(batch["heatmap"], heatmap)  # the targets: the datasets' Gaussians of width sigma
    widths = {}
    for module in (regda, dd):
        real_step = module.step

        def step(*args, _real=real_step, _name=module.__name__, **settings):
            widths.setdefault(_name, set()).add(settings["sigma"])
            return _real(*args, **settings)

        monkeypatch.setattr(module, "step", step)
    for method in ("regda", "dd"):
        T.train(dataclasses.replace(cfg, method=method, adapt_iterations=2), progress=False)
    assert widths == {"regdakit.methods.regda": {1.25}, "regdakit.methods.dd": {1.25}}  # the pseudo-labels
    # The pre-training learnt targets of width 1.25: its cache is not the one of the default width.
    assert [p.name for p in (tmp_path / "pretrain").iterdir()] == [T.pretrain_key(cfg)]
    assert T.pretrain_key(cfg) != T.pretrain_key(dataclasses.replace(cfg, sigma=2.0))
    with pytest.raises(ValueError, match="sigma must be a finite number of heatmap cells > 0"):
        dataclasses.replace(cfg, sigma=0.0)


def test_a_saved_regda_sigma_loads_when_it_is_the_run_sigma_and_is_refused_otherwise(tmp_path):
    saved = json.loads(json.dumps(dataclasses.asdict(T.make_config("ci"))))
    old = dict(saved, regda=dict(saved["regda"], sigma=2.0))
    del old["sigma"]  # a config.json written before the setting: pseudo-labels and targets both 2.0
    path = tmp_path / "config.json"
    path.write_text(json.dumps(old))
    before = dataclasses.replace(T.make_config("ci"), sigma=T.LEGACY_SIGMA)  # a file without sigma: 2.0, then
    assert T.config_from_file(path) == before and T.make_config("ci").sigma == 0.5
    assert T.config_from_dict(old) == before
    path.write_text(json.dumps(dict(old, regda=dict(old["regda"], sigma=1.5))))
    with pytest.raises(ValueError, match=r"regda\.sigma=1\.5 .* differs from the run's heatmap sigma=2\.0"):
        T.config_from_file(path)
    with pytest.raises(ValueError, match="regda.sigma is no longer a setting: sigma"):
        T.apply_overrides(T.PRESETS["ci"], {"regda.sigma": "1.5"})
    assert "regda.sigma" not in T.override_types() and T.override_types()["sigma"] is float
    # The first version's shipped models were saved with regda.sigma = 2.0 and load as they are.
    from regdakit import pretrained

    _, shipped_cfg = pretrained.load_source_only("hands", seed=pretrained.LEGACY_SEED, device="cpu")
    assert shipped_cfg.sigma == 2.0


# ------------------------------------------------------------------ adding a method


def _trivial_method():
    """A method in a module of its own: source-only SGD of psi and f, the target batch unused."""
    import types
    from dataclasses import dataclass

    from regdakit.methods import common, recipe

    module = types.ModuleType("trivial_method")

    @dataclass(frozen=True)
    class Config(recipe.SGDRecipe):
        """The trivial method's settings: the shared SGD recipe only."""

    def make_optimizers(model, cfg):
        return recipe.make_optimizers(model, cfg, ("psi", "head"))

    def step(model, batch_s, batch_t, optimizers, cfg, it):
        common.check_unlabelled(batch_t)
        loss = common.source_loss(model.heatmaps(batch_s["image"]), batch_s["heatmap"], batch_s["weight"])
        common.minimise(loss, optimizers.values())
        return {"A/source": loss.item()}

    module.Config, module.STEPS, module.PARTS = Config, {"A": "psi and f on the source"}, ()
    module.make_optimizers, module.step = make_optimizers, step
    return module


def test_adding_a_method_is_one_module_and_one_entry_in_methods(tmp_path, monkeypatch):
    from regdakit.methods import contract

    trivial = _trivial_method()
    assert isinstance(trivial, contract.Method)
    monkeypatch.setitem(METHODS, "trivial", trivial)  # the one entry
    cfg = _cfg(tmp_path, method="trivial", adapt_iterations=2)
    assert "trivial" in T.setting_choices()["method"] and T.method_config(cfg) == trivial.Config()
    result = T.train(cfg, progress=False)
    assert result["iteration"] == 2 and math.isfinite(result["metrics"]["target_test"]["pck@0.05/all"])
    log = [json.loads(line) for line in (cfg.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [list(r["train"]) for r in log if "train" in r] == [["A/source"]]
    assert (tmp_path / "pretrain").is_dir()  # it adapted the shared source-only pre-training
    model, loaded, _ = T.load_checkpoint(cfg.run_dir / "last.pt", "cpu")
    assert loaded.method == "trivial" and model.head_adv is None
