"""The package works outside the repository.

* ``rk.<submodule>`` works after ``import regdakit as rk`` for every public
  submodule, imported on first use (fast, in a fresh interpreter).
* ``test_the_wheel_works_outside_the_repository`` (marker ``packaging``, about
  30 s on 2 cores): builds the wheel from the working tree, checks that it
  carries the shipped models, the results the notebooks show, every
  sub-package and the licence, installs it into a fresh virtual environment
  (the heavy dependencies are borrowed from this one through a ``.pth`` file,
  nothing is downloaded), and there, from a folder outside the repository,
  loads a shipped model through the public API and runs notebook 01 copied
  out of the repository, in fast mode.
"""

from __future__ import annotations

import json
import os
import pkgutil
import shutil
import site
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from pathlib import Path

import pytest
from _repo import repository_files

import regdakit

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "01_sparse_density.ipynb"  # loads a shipped model (regdakit.pretrained)
DATA_PACKAGES = {"samples", "results"}  # regdakit.resources.KINDS: files, not modules


def _clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without anything that points Python at the repository."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "PIP_"))}
    env["PYTHONNOUSERSITE"] = "1"
    env["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"
    return env | extra


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: int = 300) -> str:
    result = subprocess.run(cmd, cwd=cwd, env=env or _clean_env(), capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, (
        f"{' '.join(map(str, cmd))} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    )
    return result.stdout


def public_submodules() -> set[str]:
    """Every module or package of regdakit that is not private and not a data package."""
    return {m.name for m in pkgutil.iter_modules(regdakit.__path__) if not m.name.startswith("_")} - DATA_PACKAGES


def test_every_public_submodule_is_an_attribute_and_loads_on_first_use(tmp_path):
    expected = sorted(public_submodules())
    assert {"models", "pretrained", "widgets", "exercises", "train", "resources"} <= set(expected)
    script = textwrap.dedent(
        f"""
        import json, sys
        import regdakit as rk
        names = {expected!r}
        eager = sorted(n for n in names if f"regdakit.{{n}}" in sys.modules)
        heavy_first = [m for m in ("matplotlib", "regdakit.train", "regdakit.training", "ipywidgets") if m in sys.modules]
        listed = [n for n in names if n in dir(rk)]
        same = [n for n in names if getattr(rk, n) is sys.modules[f"regdakit.{{n}}"]]
        try:
            rk.no_such_module
            missing = "no error"
        except AttributeError as err:
            missing = str(err)
        print(json.dumps({{"eager": eager, "heavy_first": heavy_first, "listed": listed, "same": same,
                           "missing": missing}}))
        """
    )
    out = json.loads(_run([sys.executable, "-c", script], cwd=tmp_path, env=_clean_env()).strip().splitlines()[-1])
    assert out["same"] == expected, f"not reachable as rk.<name>: {sorted(set(expected) - set(out['same']))}"
    assert out["listed"] == expected, f"missing from dir(rk): {sorted(set(expected) - set(out['listed']))}"
    assert out["heavy_first"] == [], f"`import regdakit` imported {out['heavy_first']} up front"
    assert out["eager"] == sorted(["density", "disparity", "heatmaps", "keypoints", "losses", "metrics", "runtime"])
    assert out["missing"] == "module 'regdakit' has no attribute 'no_such_module'"


def test_resources_name_shipped_files_and_refuse_anything_else():
    from regdakit import resources

    checkpoint = resources.path("samples/checkpoints/hands_source_only.pt")
    assert checkpoint.is_file() and checkpoint == regdakit.pretrained.checkpoint_path("hands", seed=0)
    assert resources.read_json("results/table1_synthetic.json")["rows"][0] == "source_only"
    assert {"checkpoints/hands_source_only.pt", "checkpoints/bodies_source_only.pt"} <= set(resources.names("samples"))
    assert not [n for n in resources.names("results") if n.endswith(".py")]
    for bad in ("table1_synthetic.json", "../pyproject.toml", "results/../../pyproject.toml", "/results/x", "runs/x"):
        with pytest.raises(ValueError, match="name must"):
            resources.path(bad)
    with pytest.raises(FileNotFoundError, match="no resource 'results/nope.json'.*table1_synthetic.json"):
        resources.read_text("results/nope.json")
    with pytest.raises(ValueError, match="kind must be one of"):
        resources.files("notebooks")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel built from a copy of the working tree (the build writes nothing into the repository)."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"
    for name in repository_files():
        if name.startswith(("tests/", "notebooks/", "docs/")):
            continue  # not part of the package; less to copy
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, source / name)
    dist = tmp / "dist"
    _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
         "-w", str(dist), str(source)],
        cwd=tmp,
    )  # fmt: skip
    (found,) = dist.glob("regdakit-*.whl")
    return found


@pytest.mark.packaging
def test_the_wheel_carries_the_shipped_files_every_subpackage_and_the_licence(wheel):
    archive = zipfile.ZipFile(wheel)
    names = set(archive.namelist())
    repository = repository_files()
    samples = {
        "regdakit/samples/" + p.removeprefix("data_samples/") for p in repository if p.startswith("data_samples/")
    }
    results = {
        "regdakit/results/" + p.removeprefix("benchmarks/results/")
        for p in repository
        if p.startswith("benchmarks/results/")
    }
    assert {f"regdakit/samples/checkpoints/{t}_source_only.pt" for t in ("hands", "bodies")} <= samples
    assert "regdakit/results/table1_synthetic.json" in results
    assert samples - names == set(), f"data_samples/ files missing from the wheel: {sorted(samples - names)}"
    assert results - names == set(), f"benchmarks/results/ files missing from the wheel: {sorted(results - names)}"
    packages = {
        (Path("regdakit") / p.relative_to(ROOT / "regdakit")).as_posix()
        for p in (ROOT / "regdakit").rglob("__init__.py")
    }
    assert packages - names == set(), (
        f"sub-packages missing from the wheel (add them to [tool.setuptools] packages): {sorted(packages - names)}"
    )
    metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "License-Expression: MIT" in metadata.splitlines()
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")} == {"regdakit"}


@pytest.fixture(scope="module")
def venv(tmp_path_factory, wheel) -> Path:
    """A fresh virtual environment with the wheel installed; the dependencies are this environment's."""
    tmp = tmp_path_factory.mktemp("venv")
    env = tmp / "env"
    _run([sys.executable, "-m", "venv", "--without-pip", str(env)], cwd=tmp)
    python = env / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    purelib = Path(
        _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp).strip()
    )
    # torch, jupyter, ... from this environment: a .pth line appends a folder to sys.path (after the new
    # environment's own site-packages, so the wheel's regdakit wins; .pth files in that folder are not run,
    # so this environment's editable regdakit stays out).
    borrowed = [
        p for p in dict.fromkeys([sysconfig.get_paths()["purelib"], *site.getsitepackages()]) if Path(p).is_dir()
    ]
    (purelib / "_borrowed_dependencies.pth").write_text("\n".join(borrowed) + "\n")
    _run(
        [str(python), "-m", "pip", "install", "--no-deps", "--no-index", "--ignore-installed", "-q", str(wheel)],
        cwd=tmp,
    )
    return python


@pytest.mark.packaging
def test_the_wheel_works_outside_the_repository(venv, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    check = textwrap.dedent(
        """
        import json
        from pathlib import Path
        import torch
        import regdakit as rk

        model, cfg = rk.pretrained.load_source_only("hands")
        with torch.no_grad():
            logits = model.heatmaps(torch.rand(2, 3, cfg.image_size, cfg.image_size))
        table = rk.resources.read_json("results/table1_synthetic.json")
        print(json.dumps({
            "package": str(Path(rk.__file__).resolve().parent),
            "checkpoint": str(rk.pretrained.checkpoint_path("hands").resolve()),
            "log_lines": len(rk.pretrained.source_only_files("hands")[1].read_text().splitlines()),
            "logits": list(logits.shape),
            "task": cfg.task,
            "sizes": [cfg.image_size, cfg.heatmap_size],
            "table_tasks": sorted(table["tasks"]),
            "submodules": [n for n in rk._LAZY if getattr(rk, n).__name__ == f"regdakit.{n}"],
        }))
        """
    )
    out = json.loads(_run([str(venv), "-c", check], cwd=outside).strip().splitlines()[-1])
    package = Path(out["package"])
    assert package.is_relative_to(venv.parent.parent.resolve()), f"imported {package}, not the installed wheel"
    assert not package.is_relative_to(ROOT)
    assert Path(out["checkpoint"]).is_relative_to(package / "samples" / "checkpoints")
    image, heatmap = out["sizes"]
    assert out["task"] == "hands" and heatmap == image // 4 and out["logits"] == [2, 21, heatmap, heatmap]
    assert out["log_lines"] > 0 and out["table_tasks"] == ["bodies", "hands"]
    assert out["submodules"] == list(regdakit._LAZY)

    # Notebook 01, copied out of the repository, run by the project's runner in this environment's kernel.
    notebook = outside / NOTEBOOK.name
    nb = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    nb["cells"].append(
        {"cell_type": "code", "execution_count": None, "id": "which-regdakit", "metadata": {}, "outputs": [],
         "source": "import regdakit\nprint('regdakit from', regdakit.__file__)"}
    )  # fmt: skip
    notebook.write_text(json.dumps(nb), encoding="utf-8")
    runner = ROOT / "tools" / "run_notebooks.py"  # not part of the package: run as a script, from its folder
    _run([str(venv), str(runner), "--fast", "--timeout", "300", str(notebook)], cwd=outside)
    ran = json.loads(notebook.read_text(encoding="utf-8"))
    printed = "".join(o.get("text", "") for o in ran["cells"][-1]["outputs"])
    assert printed.startswith("regdakit from "), printed
    assert Path(printed.split("from ", 1)[1].strip()).resolve().is_relative_to(package), printed
    assert all(c["execution_count"] for c in ran["cells"] if c["cell_type"] == "code" and c["source"])
