"""Set-up files agree with each other.

pyproject.toml is the single source of the dependency list; environment.yml
(conda) must list the same packages with the same version bounds, ``.ci/run``
must run exactly what a person runs, and the README's quick start must show it.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# pip name -> conda-forge name, where they differ.
PIP_TO_CONDA = {"torch": "pytorch"}
CONDA_TO_PIP = {conda: pip for pip, conda in PIP_TO_CONDA.items()}
# Conda-only entries that are tooling, not dependencies of the package.
CONDA_TOOLING = {"python", "pip"}
# The extras make test installs (the Makefile's `pip install -e '.[notebooks,dev,course]'`).
EXTRAS = ("notebooks", "dev", "course")

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(.*)$")


def normalise(name: str) -> str:
    """PEP 503 name normalisation, then the conda->pip mapping."""
    name = re.sub(r"[-_.]+", "-", name).lower()
    return CONDA_TO_PIP.get(name, name)


def split_spec(spec: str) -> tuple[str, str]:
    """``"numpy >= 1.24"`` -> ``("numpy", ">=1.24")`` for pip or conda match specs."""
    spec = spec.split(";")[0].split("#")[0]  # drop environment markers / comments
    match = _NAME.match(spec)
    assert match, f"cannot parse requirement {spec!r}"
    name, rest = match.groups()
    name = name.split("[")[0]
    rest = re.sub(r"^\[[^\]]*\]", "", rest.strip())  # extras: "pkg[x]>=1"
    return normalise(name), re.sub(r"\s+", "", rest)


def load_pyproject() -> dict:
    # No skip on Python 3.10: the dev extra declares tomli there, so a missing one is a broken set-up.
    if sys.version_info >= (3, 11):
        import tomllib
    else:
        import tomli as tomllib
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)


def load_environment() -> dict:
    yaml = pytest.importorskip("yaml")
    with open(ROOT / "environment.yml", encoding="utf-8") as f:
        return yaml.safe_load(f)


def pyproject_requirements() -> dict[str, str]:
    project = load_pyproject()["project"]
    specs = list(project["dependencies"])
    for extra in EXTRAS:
        specs += project["optional-dependencies"][extra]
    return dict(split_spec(s) for s in specs)


def environment_requirements() -> tuple[dict[str, str], list[str], list[str]]:
    """(conda packages without python/pip, pip-section entries, python specs)."""
    conda, pip_section, python = {}, [], []
    for entry in load_environment()["dependencies"]:
        if isinstance(entry, dict):
            pip_section += entry.get("pip", [])
            continue
        name, bound = split_spec(str(entry))
        if name == "python":
            python.append(bound)
        if name not in CONDA_TOOLING:
            conda[name] = bound
    return conda, pip_section, python


def environment_packages() -> dict[str, str]:
    conda, pip_section, _ = environment_requirements()
    packages = dict(conda)
    for entry in pip_section:
        if entry.strip().startswith("-"):  # "-e .", "--index-url ...": options, not packages
            continue
        name, bound = split_spec(entry)
        packages[name] = bound
    return packages


def _difference(pyproject: set[str], environment: set[str]) -> str:
    lines = []
    if pyproject - environment:
        missing = sorted(PIP_TO_CONDA.get(n, n) for n in pyproject - environment)
        lines.append(f"in pyproject.toml but not in environment.yml: {missing}")
    if environment - pyproject:
        lines.append(f"in environment.yml but not in pyproject.toml: {sorted(environment - pyproject)}")
    return "\n".join(lines)


def test_environment_yml_lists_the_pyproject_packages():
    pyproject = set(pyproject_requirements())
    environment = set(environment_packages())
    assert pyproject == environment, (
        "environment.yml has drifted from pyproject.toml (dependencies + "
        f"{' + '.join(EXTRAS)} extras; torch <-> pytorch):\n" + _difference(pyproject, environment)
    )


def test_environment_yml_has_the_pyproject_version_bounds():
    pyproject = pyproject_requirements()
    environment = environment_packages()
    differing = {
        name: (pyproject[name], environment[name])
        for name in sorted(set(pyproject) & set(environment))
        if pyproject[name] != environment[name]
    }
    assert not differing, f"version bounds differ, as {{name: (pyproject.toml, environment.yml)}}: {differing}"


def test_environment_yml_installs_the_package_and_a_supported_python():
    env = load_environment()
    assert env["name"] == "regdakit"
    _, pip_section, python = environment_requirements()
    assert any(re.fullmatch(r"-e\s+\.", e.strip()) for e in pip_section), (
        "environment.yml's pip section should install the package: '- -e .'"
    )
    requires = re.sub(r"\s+", "", load_pyproject()["project"]["requires-python"])
    assert python, "environment.yml should pin python"
    assert all(requires in spec.split(",") for spec in python), (
        f"environment.yml's python {python} should include requires-python {requires!r}"
    )


def _commands(script: Path) -> list[list[str]]:
    commands = []
    for line in script.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            commands.append(shlex.split(line, comments=True))
    return commands


def test_ci_runs_exactly_make_test():
    script = ROOT / ".ci" / "run"
    commands = _commands(script)
    make = [c for c in commands if c and c[0] == "make"]
    assert make == [["make", "test"]], f".ci/run should call `make test` once, found {make}"
    assert commands[-1] == ["make", "test"], ".ci/run should end with `make test`"
    others = {c[0] for c in commands[:-1]}
    assert others <= {"set", "cd"}, f".ci/run should do nothing but `make test`, found {others}"


@pytest.mark.skipif(sys.platform == "win32", reason="no executable bit on Windows")
def test_ci_run_is_executable():
    assert os.access(ROOT / ".ci" / "run", os.X_OK), (
        ".ci/run is not executable: chmod +x .ci/run && git update-index --chmod=+x .ci/run"
    )


def test_readme_quick_start_is_make_lab_and_make_test():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```[^\n]*\n(.*?)^```", readme, flags=re.MULTILINE | re.DOTALL)
    assert blocks, "README.md has no code block"
    first = [line.split("#")[0].split() for line in blocks[0].splitlines()]
    first = [cmd for cmd in first if cmd]
    assert ["make", "lab"] in first and ["make", "test"] in first, (
        f"README.md's first code block should show `make lab` and `make test`, got {first}"
    )


def _dev_requirements() -> dict[str, str]:
    return dict(split_spec(s) for s in load_pyproject()["project"]["optional-dependencies"]["dev"])


def test_the_tools_that_gate_ci_are_pinned_exactly():
    # `make test` fails on any `ruff check` / `ruff format --check` finding: a new ruff release with new rules
    # or a changed formatter would turn CI red with no change to the code.
    dev = _dev_requirements()
    assert re.fullmatch(r"==\d+(\.\d+)*", dev.get("ruff", "")), (
        f"pin ruff exactly in the dev extra, got {dev.get('ruff')!r}"
    )


def test_tomli_is_declared_where_tomllib_is_missing():
    dev = load_pyproject()["project"]["optional-dependencies"]["dev"]
    tomli = [s for s in dev if split_spec(s)[0] == "tomli"]
    assert tomli, "the dev extra should declare tomli for Python 3.10 (no tomllib there)"
    marker = tomli[0].split(";", 1)[1] if ";" in tomli[0] else ""
    assert re.sub(r"\s+", "", marker).replace("'", '"') == 'python_version<"3.11"', tomli[0]


# Import name -> distribution name, where they differ.
IMPORT_TO_DIST = {"PIL": "pillow", "yaml": "pyyaml", "jupyter_client": "jupyter-client"}


def _third_party_imports(path: Path) -> set[str]:
    import ast

    local = {p.stem for p in path.parent.glob("*.py")} | {"regdakit"}
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n not in local and n != "__future__"}


@pytest.mark.parametrize("folder", ["tools", "regdakit"])
def test_every_third_party_import_is_declared(folder):
    declared = set(pyproject_requirements()) | {
        split_spec(s)[0] for s in load_pyproject()["project"]["optional-dependencies"]["real"]
    }
    undeclared = {}
    for path in sorted((ROOT / folder).rglob("*.py")):
        for name in _third_party_imports(path):
            dist = normalise(IMPORT_TO_DIST.get(name, name))
            if dist not in declared:
                undeclared.setdefault(dist, []).append(path.relative_to(ROOT).as_posix())
    assert not undeclared, f"imported but not declared in pyproject.toml (dependencies or an extra): {undeclared}"
