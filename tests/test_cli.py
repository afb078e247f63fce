"""Command line: help generated from the config dataclasses, ``--config`` re-runs, ``data check`` of COCO exports."""

import json
import re

import pytest
from PIL import Image

from regdakit import __main__ as cli
from regdakit import train as T
from regdakit.data.real import DATASETS
from regdakit.models import BACKBONES

pytestmark = pytest.mark.usefixtures("one_thread")


def _help(capsys, *argv):
    with pytest.raises(SystemExit) as exc:
        cli.main([*argv, "--help"])
    assert exc.value.code == 0
    return capsys.readouterr().out


def _squeeze(text):
    return re.sub(r"\s+", "", text)  # argparse re-wraps the help text (and may break after a hyphen)


def test_train_help_lists_every_setting_with_type_default_choices_and_description(capsys):
    text = _help(capsys, "train")
    blocks = dict(re.findall(r"^  --(\S+) (.*?)(?=^  -|^\S|\Z)", text, flags=re.M | re.S))  # option -> its help
    docs, choices = T.setting_docs(), T.setting_choices()
    defaults = cli._flat_values(T.PRESETS[cli.DEFAULT_PRESET])
    for key, tp in T.override_types().items():
        block = _squeeze(blocks[key])
        assert _squeeze(docs[key]) in block, key  # the description from the dataclass docstring
        default = cli._value_text(defaults[key])
        assert f"default:{default}" in block, key
        kind = f"oneof{','.join(choices[key])}" if key in choices else cli._type_text(tp)[1].replace(" ", "")
        assert f"[{kind};default:" in block, key
    # Types, defaults (of the default preset, other presets where they differ) and choices.
    assert re.search(r"--erm\.gamma FLOAT\s+Decay factor at each milestone\.\s+\[float; default: 0\.1\]", text)
    assert "[int; default: 2000 (ci: 30, cpu-bench: 12000, gpu-student: 3000, paper: 35000)]" in " ".join(text.split())
    assert "--erm.milestones INT,..." in text and "--regda.fused true|false" in text and "--source STR|none" in text
    for key in ("task", "method", "backbone", "erm.optimizer", "erm.loss", "regda.objective", "dann.source_loss"):
        assert f"--{key} {{{','.join(choices[key])}}}" in text, key
    assert choices["method"] == T.RUN_METHODS and set(choices["backbone"]) == set(BACKBONES)
    # The nested sections are described by TrainConfig's docstring.
    assert re.search(r"regda settings \(--regda\.KEY\):\s+RegDA's hyper-parameters", text)


def test_both_option_syntaxes_and_choices_checked_by_the_config(tmp_path, capsys):
    args = ["train", "--preset", "ci", "--method", "erm", "--pretrain_iterations", "2", "--batch_size=2"]
    args += ["--eval_size", "4", "--device=cpu", f"--out={tmp_path}", "--no-progress", "--run_name", "spaced"]
    assert cli.main(args) == 0
    saved = json.loads((tmp_path / "spaced" / "config.json").read_text())
    assert (saved["pretrain_iterations"], saved["eval_size"], saved["batch_size"]) == (2, 4, 2)
    capsys.readouterr()
    assert cli.main(["train", "--preset=ci", "--erm.optimizer=lbfgs"]) == 2
    assert "erm.optimizer must be one of ('sgd', 'adam')" in capsys.readouterr().err


def test_an_unknown_setting_names_the_nearest_one(capsys):
    # A retired setting says where it went; a setting in the wrong section, the section that has it;
    # a misspelt one, the closest spelling. Nothing runs: argparse's exit 2 before any training.
    for argv, message in [
        (["--regda.sigma=1"], "--regda.sigma is not a setting; the heatmap width"),
        (["--regda.sigma", "1"], "the pseudo-labels alike) is --sigma."),
        (["--dann.margin=2"], "--dann.margin is not a setting; did you mean --regda.margin?"),
        (["--regda.batch_size=2"], "--regda.batch_size is not a setting; did you mean --batch_size?"),
        (["--regda.lrr=0.1"], "--regda.lrr is not a setting; did you mean --regda.lr?"),
        (["--no_progress"], "did you mean --no-progress?"),
        (["--warp.drive=9"], "--warp.drive is not a setting (python -m regdakit train --help lists them)."),
    ]:
        with pytest.raises(SystemExit) as exc:
            cli.main(["train", "--preset=ci", *argv])
        last = capsys.readouterr().err.splitlines()[-1]  # after the usage
        assert exc.value.code == 2 and last.startswith("python -m regdakit train: error: "), (argv, last)
        assert f"unrecognized arguments: {' '.join(argv)}. " in last and message in last, (argv, last)
    # The other commands keep argparse's message.
    with pytest.raises(SystemExit) as exc:
        cli.main(["eval", "--checkpoint", "x.pt", "--regda.sigma=1"])
    assert exc.value.code == 2 and "unrecognized arguments: --regda.sigma=1" in capsys.readouterr().err


def test_an_abbreviated_option_is_refused_and_names_the_option_it_abbreviates(capsys, monkeypatch):
    # argparse's allow_abbrev is off on every parser: a prefix of a setting is an unknown option, never that
    # setting (it would silently change meaning when a new setting shares the prefix). Nothing runs.
    for argv, message in [
        (["--regda.sou=kl"], "--regda.sou is not a setting; did you mean --regda.source_loss?"),
        (["--regda.sou", "kl"], "--regda.sou is not a setting; did you mean --regda.source_loss?"),
        (["--pretrain_it=5"], "--pretrain_it is not a setting; did you mean --pretrain_iterations?"),
        (["--no-prog"], "--no-prog is not a setting; did you mean --no-progress?"),
    ]:
        with pytest.raises(SystemExit) as exc:
            cli.main(["train", "--preset=ci", *argv])
        last = capsys.readouterr().err.splitlines()[-1]
        assert exc.value.code == 2, (argv, last)
        assert last == f"python -m regdakit train: error: unrecognized arguments: {' '.join(argv)}. {message}", argv
    # The full spelling still parses, in both syntaxes (parsed only: `train` is replaced by a recorder).
    seen = {}
    monkeypatch.setitem(cli.COMMANDS, "train", (cli.COMMANDS["train"][0], lambda args: seen.update(vars(args)) or 0))
    for argv in (["--regda.source_loss=kl"], ["--regda.source_loss", "kl"]):
        seen.clear()
        assert cli.main(["train", "--preset=ci", *argv]) == 0 and seen["set:regda.source_loss"] == "kl", argv
    # The other parsers refuse abbreviations too: eval, data check (argparse's own message) and the top level.
    for argv, refused in [
        (["eval", "--checkpoint", "x.pt", "--dev", "cpu"], "--dev cpu"),
        (["data", "check", "root", "--dataset", "coco", "--ann", "a.json"], "--ann a.json"),
    ]:
        with pytest.raises(SystemExit) as exc:
            cli.main(argv)
        err = capsys.readouterr().err
        assert exc.value.code == 2 and f"error: unrecognized arguments: {refused}" in err, (argv, err)
    with pytest.raises(SystemExit) as exc:
        cli.main(["--he"])  # not --help (which exits 0)
    assert exc.value.code == 2 and "usage:" in capsys.readouterr().err


def test_config_reruns_a_saved_run_and_flags_override_it(tmp_path, capsys):
    first = ["train", "--preset=ci", "--method=erm", "--pretrain_iterations=2", "--batch_size=2", "--eval_size=4"]
    first += ["--erm.lr=0.05", "--device=cpu", f"--out={tmp_path}", "--no-progress", "--run_name=first"]
    assert cli.main(first) == 0
    result = json.loads(capsys.readouterr().out)
    config = tmp_path / "first" / "config.json"
    # The same run again, elsewhere: the same numbers.
    assert cli.main(["train", "--config", str(config), "--run_name=again", "--no-progress"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["metrics"] == result["metrics"]
    saved, rerun = (json.loads((tmp_path / n / "config.json").read_text()) for n in ("first", "again"))
    assert {k: v for k, v in rerun.items() if k != "run_name"} == {k: v for k, v in saved.items() if k != "run_name"}
    # Without another run_name the folder holds a run already.
    assert cli.main(["train", "--config", str(config), "--no-progress"]) == 2
    assert "already holds a run" in capsys.readouterr().err
    # Flags override the file (nested ones too); a preset cannot be given as well.
    assert T.config_from_file(config) == T.config_from_dict(saved)
    assert T.config_from_file(config).erm.lr == 0.05
    with pytest.raises(SystemExit) as exc:
        cli.main(["train", "--config", str(config), "--preset=ci"])
    assert exc.value.code == 2 and "not allowed with argument" in capsys.readouterr().err
    # Files that are not a saved config: one line, exit 2.
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "unknown.json").write_text(json.dumps({**saved, "erm": {**saved["erm"], "warp": 9}}))
    for name, message in [
        ("missing.json", "does not exist"),
        ("list.json", "holds a JSON list, not the object of a config.json"),
        ("unknown.json", "has settings this version does not know: erm.warp"),
    ]:
        assert cli.main(["train", "--config", str(tmp_path / name)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err


def test_data_check_help_lists_the_datasets(capsys):
    text = _help(capsys, "data", "check")
    assert "--dataset {" + ",".join(sorted(DATASETS)) + "}" in text
    assert "--ann_file" in text and "--image_dir" in text


def test_data_check_of_a_coco_export_with_its_own_layout(tmp_path, capsys):
    # An annotation tool's export: annotations.json beside images/, not the default annotations/<split>.json.
    (tmp_path / "images").mkdir()
    for i, colour in enumerate([(200, 0, 0), (0, 200, 0), (0, 0, 200)]):
        Image.new("RGB", (40, 40), colour).save(tmp_path / "images" / f"{i}.png")
    content = {
        "images": [{"id": i, "file_name": f"{i}.png", "width": 40, "height": 40} for i in range(3)],
        "annotations": [
            {"id": 10 + i, "image_id": i, "category_id": 1, "bbox": [5, 5, 20, 20], "iscrowd": 0,
             "keypoints": [10, 10, 2, 20, 12, 2, 15, 20, 1]}
            for i in range(3)
        ],
        "categories": [{"id": 1, "name": "paw", "keypoints": ["left_toe", "right_toe", "heel"],
                        "skeleton": [[1, 3], [2, 3]]}],
    }  # fmt: skip
    (tmp_path / "annotations.json").write_text(json.dumps(content))
    gallery = tmp_path / "gallery.png"
    argv = ["data", "check", str(tmp_path), "--dataset", "coco", "--out", str(gallery), "--num", "2"]
    assert cli.main([*argv, "--ann_file", "annotations.json", "--image_dir", "images"]) == 0
    out = capsys.readouterr().out
    assert "coco train: 3 items" in out and gallery.is_file()
    # Absolute paths work too; without them the default layout is looked for and not found.
    abs_args = ["--ann_file", str(tmp_path / "annotations.json"), "--image_dir", str(tmp_path / "images")]
    assert cli.main([*argv, *abs_args]) == 0
    capsys.readouterr()
    assert cli.main(argv) == 1
    assert "annotations/train.json" in capsys.readouterr().err
    # The layout options belong to COCO only.
    assert cli.main(["data", "check", str(tmp_path), "--dataset", "h3d", "--ann_file", "a.json"]) == 2
    assert "--ann_file apply to --dataset coco only" in capsys.readouterr().err
