"""The trainer's refusals: each one line ``error: ...`` on stderr and exit status 2 from the command line.

The CLI runs in-process (``regdakit.__main__.main``); one small ERM run (module fixture) gives the
checkpoints that the damaged and foreign files are made from.
"""

import errno
import json
import os
import shutil
import sys

import pytest
import torch

from regdakit import __main__ as cli
from regdakit import train as T

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = ["--preset=ci", "--no-progress", "--device=cpu", "--batch_size=2", "--eval_size=4", "--log_every=1"]


def _cfg(out, **changes):
    small = dict(batch_size=2, pretrain_iterations=2, eval_every=2, checkpoint_every=2, log_every=1, eval_size=4)
    return T.make_config("ci", method="erm", out=str(out), device="cpu", **(small | changes))


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished ERM run (2 iterations): its config."""
    cfg = _cfg(tmp_path_factory.mktemp("finished"))
    T.train(cfg, progress=False)
    return cfg


def _main(argv):
    return cli.main([str(a) for a in argv])


def _fails(argv, capsys, *fragments):
    """Run the CLI: exit status 2 and exactly one stderr line, ``error: ...`` holding every fragment."""
    assert _main(argv) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def _bad_checkpoint(kind, path, good):
    """Write one kind of unusable checkpoint to ``path``; the fragment its error names."""
    data = good.read_bytes()
    if kind == "empty":
        path.write_bytes(b"")
        return "cannot be loaded: it is empty"
    if kind == "truncated":
        path.write_bytes(data[: len(data) // 2])
        return "cannot be loaded: truncated, corrupted, or not written by torch.save"
    if kind == "garbage":
        path.write_bytes(b"these are not the weights you are looking for\n" * 20)
        return "cannot be loaded: truncated, corrupted, or not written by torch.save"
    if kind == "foreign":  # a plain state dict of another tool
        torch.save({"weight": torch.zeros(3)}, path)
        return "is not a regdakit checkpoint (no 'config' / 'model'"
    if kind == "other_model":  # a regdakit config with weights of another model
        state = torch.load(good, weights_only=True)
        torch.save({"config": state["config"], "model": {"backbone.conv1.weight": torch.zeros(1)}}, path)
        return "does not fit this run's model: weights"
    raise AssertionError(kind)


KINDS = ["empty", "truncated", "garbage", "foreign", "other_model"]


# ------------------------------------------------------------------ checkpoints


@pytest.mark.parametrize("kind", KINDS)
def test_eval_of_an_unusable_checkpoint(kind, finished, tmp_path, capsys):
    path = tmp_path / f"{kind}.pt"
    fragment = _bad_checkpoint(kind, path, finished.run_dir / "last.pt")
    _fails(["eval", "--checkpoint", path, "--device", "cpu"], capsys, f"checkpoint {path}", fragment)


@pytest.mark.parametrize("kind", KINDS)
def test_init_checkpoint_that_is_unusable(kind, finished, tmp_path, capsys):
    path = tmp_path / f"{kind}.pt"
    fragment = _bad_checkpoint(kind, path, finished.run_dir / "last.pt")
    if kind == "other_model":  # its config says ERM on hands, tiny: the weights are checked when loaded
        fragment = "init_checkpoint"
    argv = ["train", *SMALL, "--method=regda", f"--out={tmp_path}", f"--init_checkpoint={path}"]
    _fails(argv, capsys, str(path), fragment)


@pytest.mark.parametrize("kind", ["empty", "truncated", "garbage", "foreign"])
def test_resume_from_an_unusable_checkpoint(kind, finished, tmp_path, capsys):
    run = tmp_path / finished.run_dir.name
    shutil.copytree(finished.run_dir, run)
    fragment = _bad_checkpoint(kind, run / "last.pt", finished.run_dir / "last.pt")
    argv = ["train", "--config", run / "config.json", f"--out={tmp_path}", "--resume", "--no-progress"]
    _fails(argv, capsys, f"the checkpoint {run / 'last.pt'}", fragment)


def test_a_directory_given_as_a_checkpoint(tmp_path, capsys):
    argv = ["train", *SMALL, "--method=regda", f"--out={tmp_path}", f"--init_checkpoint={tmp_path}"]
    _fails(argv, capsys, f"init_checkpoint {tmp_path} is a directory")
    _fails(["eval", "--checkpoint", tmp_path], capsys, f"checkpoint {tmp_path} is a directory")


def test_init_checkpoint_with_a_method_that_trains_from_scratch(tmp_path, capsys):
    for method in ("erm", "oracle"):
        argv = ["train", *SMALL, f"--method={method}", f"--out={tmp_path}", "--init_checkpoint=model.pt"]
        _fails(argv, capsys, "init_checkpoint starts an adaptation method", f"method '{method}' trains from scratch")
    assert not list(tmp_path.iterdir())


# ---------------------------------------------------------------------- devices


def test_a_device_that_is_not_one(tmp_path, capsys):
    _fails(["train", *SMALL, f"--out={tmp_path}", "--device=bogus"], capsys, "device 'bogus' is not a device")
    _fails(["eval", "--checkpoint", "x.pt", "--device", "bogus"], capsys, "device 'bogus' is not a device")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda(finished, tmp_path, capsys):
    _fails(["train", *SMALL, f"--out={tmp_path}", "--device=cuda"], capsys, "device 'cuda': CUDA is not available")
    checkpoint = finished.run_dir / "last.pt"
    _fails(["eval", "--checkpoint", checkpoint, "--device", "cuda:0"], capsys, "CUDA is not available here")
    assert not list(tmp_path.iterdir())  # refused before anything was written


# ------------------------------------------------------------- folders and files


def test_a_file_where_out_or_the_run_folder_should_be(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    argv = ["train", *SMALL, "--method=erm", "--pretrain_iterations=1"]
    _fails([*argv, f"--out={blocker}"], capsys, f"the run folder {blocker}/", f"{blocker} is a file, not a folder")
    _fails([*argv, f"--out={blocker / 'sub'}"], capsys, f"{blocker} is a file, not a folder")
    _fails([*argv, f"--out={tmp_path}", "--run_name=file"], capsys, f"the run folder {blocker} is a file, not a")
    assert blocker.read_text() == "not a folder"


def test_an_unwritable_out(tmp_path, capsys, monkeypatch):
    # Root writes into a read-only folder, so the refusal of the system is simulated by Path.mkdir.
    real_mkdir = type(tmp_path).mkdir

    def mkdir(self, *args, **kwargs):
        if self.is_relative_to(tmp_path / "locked"):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(type(tmp_path), "mkdir", mkdir)
    out = tmp_path / "locked"
    _fails(["train", *SMALL, f"--out={out}"], capsys, f"cannot create the run folder {out}/", "Permission denied")


@pytest.mark.skipif(sys.platform == "win32" or os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_out(tmp_path, capsys):
    out = tmp_path / "ro"
    out.mkdir(mode=0o500)
    _fails(["train", *SMALL, f"--out={out}"], capsys, f"cannot create the run folder {out}/", "Permission denied")


def test_a_full_disk_is_one_line_and_leaves_no_temporary_file(tmp_path, capsys, monkeypatch):
    def full(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 a first part")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(torch, "save", full)
    argv = ["train", *SMALL, "--method=erm", "--pretrain_iterations=2", "--checkpoint_every=2", f"--out={tmp_path}"]
    run = tmp_path / "hands-erm-tiny64-seed0"
    _fails(argv, capsys, f"cannot write {run / 'last.pt'}: No space left on device (the disk is full")
    assert sorted(p.name for p in run.iterdir()) == [".lock", "config.json", "metrics.jsonl"]


def test_run_name_stays_inside_out(tmp_path, capsys):
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"  # an absolute run_name outside out
    for name in ("../../x", str(elsewhere), "a/b", "..", "pretrain"):
        _fails(["train", *SMALL, f"--out={out}", f"--run_name={name}"], capsys, "run_name must be a plain folder name")
    assert not tmp_path.joinpath("x").exists() and not out.exists() and not elsewhere.exists()


def test_a_run_folder_in_use_by_another_process(tmp_path, capsys):
    import fcntl

    run = tmp_path / "hands-erm-tiny64-seed0"
    run.mkdir()
    with open(run / ".lock", "w") as fh:  # another open file: flock conflicts as with another process
        fh.write("4242\n")
        fh.flush()
        fcntl.flock(fh, fcntl.LOCK_EX)
        argv = ["train", *SMALL, "--method=erm", f"--out={tmp_path}"]
        _fails(argv, capsys, f"the run folder {run} is in use by another run (process 4242)")


# --------------------------------------------------------------------- settings


@pytest.mark.parametrize(
    "setting, message",
    [
        ("--erm.gamma=-1", "erm.gamma must be finite and > 0, got -1.0"),
        ("--erm.gamma=1.5", "erm.gamma must be in (0, 1]"),
        ("--erm.lr=nan", "erm.lr must be finite and > 0, got nan"),
        ("--regda.lr=inf", "regda.lr must be finite and > 0, got inf"),
        ("--regda.margin=nan", "regda.margin must be finite and >= 0"),
        ("--regda.momentum=1", "regda.momentum must be in [0, 1)"),
        ("--dann.trade_off=-inf", "dann.trade_off must be finite and >= 0"),
        ("--dan.kernel_scales=1,inf", "dan.kernel_scales must be finite positive numbers"),
        ("--mcd.weight_decay=-0.1", "mcd.weight_decay must be finite and >= 0"),
        ("--dist_timeout=inf", "dist_timeout must be > 0 seconds (and finite)"),
        ("--workers=-1", "workers must be >= 0"),
    ],
)
def test_numeric_settings_out_of_range(setting, message, tmp_path, capsys):
    _fails(["train", *SMALL, f"--out={tmp_path}", setting], capsys, message)


# ------------------------------------------------------------------ resume logs


def test_a_torn_last_log_line_is_dropped_and_a_damaged_one_named(tmp_path, capsys):
    cfg = _cfg(tmp_path, pretrain_iterations=4, checkpoint_every=10)
    T.train(cfg, stop_after=2, progress=False)
    log = cfg.run_dir / "metrics.jsonl"
    intact = log.read_text()
    # An interrupted write tore the last line (after the checkpoint at 2: it would be written again).
    log.write_text(intact + '{"phase": "erm", "iteration": 3, "tra')
    assert _main(["train", "--config", cfg.run_dir / "config.json", "--resume", "--no-progress"]) == 0
    capsys.readouterr()
    lines = log.read_text().splitlines()
    assert lines[: len(intact.splitlines())] == intact.splitlines() and all(json.loads(line) for line in lines)
    assert [json.loads(line)["iteration"] for line in lines] == [1, 2, 2, 3, 4, 4]  # every line once
    # A damaged line the resume would keep: named, with its file and number.
    cut = _cfg(tmp_path, pretrain_iterations=4, checkpoint_every=10, run_name="cut")
    T.train(cut, stop_after=2, progress=False)
    log = cut.run_dir / "metrics.jsonl"
    first, *rest = log.read_text().splitlines()
    log.write_text("\n".join([first[:-9], *rest]) + "\n")
    argv = ["train", "--config", cut.run_dir / "config.json", "--resume", "--no-progress"]
    _fails(argv, capsys, f"the metrics log {log} is damaged at line 1 (not a JSON record")


def test_resume_with_other_settings_from_the_command_line(finished, tmp_path, capsys):
    run = tmp_path / finished.run_dir.name
    shutil.copytree(finished.run_dir, run)
    saved = (run / "config.json").read_text()
    argv = ["train", "--config", run / "config.json", f"--out={tmp_path}", "--resume", "--no-progress"]
    _fails(
        [*argv, "--batch_size=4", "--eval_every=1"],
        capsys,
        f"cannot resume {run} with other settings than it ran with: batch_size: 2 -> 4; eval_every: 2 -> 1",
        "batch_size cannot change in a run",
        "pass --resume_allow=eval_every",
    )
    _fails([*argv, "--resume_allow=batch_size"], capsys, "resume_allow: batch_size cannot change in a run")
    _fails([*argv[:-2], "--resume_allow=eval_every"], capsys, "resume_allow applies to a resumed run only")
    assert (run / "config.json").read_text() == saved
    assert _main([*argv, "--eval_every=1", "--resume_allow=eval_every"]) == 0
    assert json.loads((run / "config.json").read_text())["eval_every"] == 1
