"""The instructor's path, as the exercises README writes it: release, submit, collect, autograde, feedback.

The module fixture runs the README's command block (``notebooks/exercises/README.md``) on the
``ground_false`` assignment: nbgrader generates the student release, two sample students fetch it,
fill it (``alice`` with the solutions, ``bob`` with :data:`regdakit.exercises.course.MISTAKES`) and
submit it; the instructor collects, autogrades, writes the feedback and exports the grades. All
offline, through a course-local exchange.

Why one subprocess: each ``nbgrader`` command line costs 3-7 s of imports on a 2-core CI machine,
and the block has a dozen. The driver below runs the README's lines in order in one Python process
(each ``nbgrader ...`` line through a fresh nbgrader application with that line's arguments, each
``course ...`` line through :func:`regdakit.exercises.course.main`), so the path costs one set of
imports plus the two graded notebook runs (fast mode: 16 images): about 20 s here. What the
``course nbgrader`` wrapper adds to a plain nbgrader run (this interpreter, its tools on ``PATH``)
is tested on its own below. Every assignment's solutions and typical mistakes are also scored
without nbgrader (its graded cells run in this process, hidden tests included), which pins the
points the README states for each in a few seconds, and every notebook is run once per exercise left blank
(the others solved), in this process, to check that each cell that needs the blank says so.
"""

from __future__ import annotations

import csv
import html
import json
import os
import re
import shlex
import subprocess
import sys
import sysconfig
from pathlib import Path

import nbformat
import pytest

from regdakit.exercises import course

pytest.importorskip("nbgrader", reason="the course extra: pip install -e '.[course]' (make test installs it)")

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "notebooks" / "exercises" / "README.md"
ASSIGNMENT, NOTEBOOK = "ground_false", course.ASSIGNMENTS["ground_false"]

#: grade_id -> points of the ground_false assignment (the README's table says the same).
POINTS = {
    "check_encode": 3,
    "check_pck": 2,
    "check_ground_false": 3,
    "check_ground_false_distribution": 2,
    "check_ground_false_loss": 3,
}
#: What bob's typical mistakes score, per graded cell, and the feedback line each must show.
BOB = {
    "check_encode": (0, "❌ encode: your function calls the library's own `regdakit.heatmaps.encode`"),
    "check_pck": (2, "✅ pck: correct"),
    "check_ground_false": (0, "❌ ground_false: your ground-false for keypoint 0 includes keypoint 0 itself"),
    "check_ground_false_distribution": (0, "✏️ ground_false_distribution: not attempted yet"),
    "check_ground_false_loss": (
        0,
        "❌ ground_false_loss: your `ground_false` is wrong, and your `ground_false_loss` uses it",
    ),
}

# Runs [["cd", dir] | ["course", *argv] | ["nbgrader", *argv], ...] (argv[1]) in order, in this process.
DRIVER = r"""
import json, os, sys, time
start = time.perf_counter()
from jupyter_core.application import NoStart
from nbgrader.apps.nbgraderapp import NbGraderApp
from regdakit.exercises import course

os.environ["PATH"] = course.tools_path()  # what `course nbgrader` does for its subprocess
for line in json.loads(sys.argv[1]):
    print(f"{time.perf_counter() - start:6.1f} s $", *line, flush=True)
    if line[0] == "cd":
        os.chdir(line[1])
    elif line[0] == "course":
        assert course.main(line[1:]) == 0, line
    else:
        app = NbGraderApp()  # a fresh application per line, as a new `nbgrader` process would be
        app.initialize(line[1:])
        try:
            app.start()
        except NoStart:  # how a Jupyter application says that its subcommand has run
            pass
        type(app.subapp).clear_instance()
        NbGraderApp.clear_instance()
"""


def readme_block() -> list[list[str]]:
    """The README's instructor command block, as argument lists (comments and the set-up lines dropped)."""
    text = README.read_text(encoding="utf-8")
    block = next(b for b in re.findall(r"^```bash\n(.*?)^```", text, re.M | re.S) if "course setup" in b)
    lines, preamble = [], []
    for raw in block.splitlines():
        words = shlex.split(raw, comments=True)
        if words and words[0] in ("course", "nbgrader", "cd"):
            lines.append(words)
        elif words:
            preamble.append(raw)
    # The lines not run here only set up the clone and the two shell functions the others call.
    assert [p.split()[0] for p in preamble] == ["git", "make", "REPO=$PWD", "course()", "nbgrader()"], preamble
    return lines


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> Path:
    """The course directory after the README's block ran: release, exchange, submissions, grades, feedback."""
    home = tmp_path_factory.mktemp("instructor")
    lines = [[str(home / w[2:]) if w.startswith("~/") else w for w in line] for line in readme_block()]
    # No .venv/bin on PATH: the driver must find nbgrader's alembic through course.tools_path().
    env = {**os.environ, "PATH": "/usr/bin:/bin", "REGDAKIT_FAST": "1", "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, json.dumps(lines)],
        cwd=home,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    (folder,) = {line[1] for line in lines if line[0] == "cd"}
    return Path(folder)


def test_the_readme_runs_the_whole_path():
    commands = [line[1] for line in readme_block() if line[0] == "nbgrader"]
    for step in ("generate_assignment", "release_assignment", "fetch_assignment", "submit", "collect"):
        assert step in commands, step
    assert commands[-3:] == ["autograde", "generate_feedback", "export"], commands


def test_the_release_has_blanks_and_no_solutions_outputs_or_hidden_tests(graded):
    release = graded / "release" / ASSIGNMENT / NOTEBOOK
    nb = nbformat.read(release, as_version=4)
    text = release.read_text(encoding="utf-8")
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "HIDDEN TESTS", "hidden_check"):
        assert marker not in text, marker
    solutions = course.solutions_of(nbformat.read(graded / "source" / ASSIGNMENT / NOTEBOOK, as_version=4))
    assert sorted(solutions) == ["encode", "ground_false", "ground_false_distribution", "ground_false_loss", "pck"]
    sources = "\n".join(c.source for c in nb.cells)
    for body in solutions.values():
        for line in body.splitlines():
            if len(line.strip()) > 12 and not line.strip().startswith(("#", '"""')):
                assert line.strip() not in sources, line
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.outputs == [] and c.execution_count is None for c in code)
    blanks = [c for c in code if c.metadata.get("nbgrader", {}).get("solution")]
    assert len(blanks) == 5 and all("# YOUR CODE HERE\n    raise NotImplementedError()" in c.source for c in blanks)
    graded_cells = {c.metadata.nbgrader.grade_id: c for c in code if c.metadata.get("nbgrader", {}).get("grade")}
    assert {k: c.metadata.nbgrader.points for k, c in graded_cells.items()} == POINTS
    assert all(c.source.startswith("ex.verify(ex.check_") for c in graded_cells.values())


def test_the_grades_are_full_for_the_solutions_and_partial_for_the_mistakes(graded):
    with open(graded / "grades.csv", encoding="utf-8") as f:
        rows = {row["student_id"]: row for row in csv.DictReader(f) if row["assignment"] == ASSIGNMENT}
    assert {s: (float(r["score"]), float(r["max_score"])) for s, r in rows.items()} == {
        "alice": (13.0, 13.0),
        "bob": (2.0, 13.0),
    }
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{graded / 'gradebook.db'}") as gb:
        notebook = Path(NOTEBOOK).stem
        for student, want in (("alice", POINTS), ("bob", {k: v[0] for k, v in BOB.items()})):
            scores = {k: gb.find_grade(k, notebook, ASSIGNMENT, student).score for k in POINTS}
            assert scores == want, student


def test_the_feedback_shows_each_mistake_in_one_line(graded):
    page = html.unescape((graded / "feedback" / "bob" / ASSIGNMENT / NOTEBOOK).with_suffix(".html").read_text())
    for _, line in BOB.values():
        assert page.count(line) == 1, line
    assert "Score: 2.0 / 13.0" in page
    # bob's blank P_F, used by the cells below its exercise: each says so in one line, no traceback into regdakit.
    assert page.count("✏️ `ground_false_distribution` is still blank") == 2
    assert "most recent call last" not in page and "regdakit/exercises" not in page
    good = html.unescape((graded / "feedback" / "alice" / ASSIGNMENT / NOTEBOOK).with_suffix(".html").read_text())
    assert "Score: 13.0 / 13.0" in good and "❌" not in good
    assert set(re.findall(r"✅ (\w+): correct", good)) == {k.removeprefix("check_") for k in POINTS}
    # The autograded notebook ran the hidden tests, which the student never saw.
    autograded = (graded / "autograded" / "bob" / ASSIGNMENT / NOTEBOOK).read_text(encoding="utf-8")
    assert autograded.count("ex.hidden_check(") == len(POINTS)


def test_the_nbgrader_wrapper_puts_this_environment_first(monkeypatch):
    seen = {}

    def call(argv, cwd=None, env=None):
        seen.update(argv=argv, path=env["PATH"])
        return 3

    monkeypatch.setattr(subprocess, "call", call)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert course.main(["nbgrader", "autograde", "ground_false", "--force"]) == 3
    assert seen["argv"] == [sys.executable, "-m", "nbgrader", "autograde", "ground_false", "--force"]
    assert seen["path"].split(os.pathsep)[0] == sysconfig.get_path("scripts")
    assert seen["path"].endswith(os.pathsep + "/usr/bin:/bin")
    assert (Path(sysconfig.get_path("scripts")) / "alembic").exists()  # what nbgrader starts


def test_setup_writes_sources_without_outputs_and_a_local_exchange(tmp_path):
    written = course.setup(tmp_path)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in written) == sorted(
        f"source/{a}/{nb}" for a, nb in course.ASSIGNMENTS.items()
    )
    for path in written:
        nb = nbformat.read(path, as_version=4)
        assert all(c.get("outputs", []) == [] for c in nb.cells)
    config = (tmp_path / "nbgrader_config.py").read_text(encoding="utf-8")
    assert 'c.Exchange.root = str(Path(__file__).resolve().parent / "exchange")' in config


@pytest.mark.parametrize("assignment", sorted(course.MISTAKES))
def test_every_typical_mistake_fills_a_blank_of_its_assignment(tmp_path, assignment):
    # generate_assignment's stand-in: the release is the source with stubs instead of solutions.
    course.setup(tmp_path)
    name = course.ASSIGNMENTS[assignment]
    nb = nbformat.read(tmp_path / "source" / assignment / name, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code" and cell.metadata.get("nbgrader", {}).get("solution"):
            cell.source = course._SOLUTION.sub(r"\1# YOUR CODE HERE\n\1raise NotImplementedError()\n", cell.source)
    (tmp_path / "release" / assignment).mkdir(parents=True)
    nbformat.write(nb, tmp_path / "release" / assignment / name)
    solutions = course.solutions_of(nbformat.read(tmp_path / "source" / assignment / name, as_version=4))
    assert set(course.MISTAKES[assignment]) <= set(solutions)
    sample = nbformat.read(course.write_sample(tmp_path, assignment, "x", mistakes=True), as_version=4)
    answers = "\n".join(c.source for c in sample.cells if c.metadata.get("nbgrader", {}).get("solution"))
    for grade_id, body in course.MISTAKES[assignment].items():
        assert (body or "raise NotImplementedError()") in answers, grade_id
    blanks = sum(body is None for body in course.MISTAKES[assignment].values())
    assert answers.count("raise NotImplementedError()") == blanks  # the others keep the solutions


#: Assignment -> (points of the solutions, points of the typical mistakes), as the README states them.
SCORES = {"sparse_density": (7, 3), "ground_false": (13, 2), "mean_vs_variance": (6, 0), "regda_steps": (8, 4)}


def graded_in_process(course_dir: Path, assignment: str, student: str) -> dict[str, float]:
    """grade_id -> points: the student's answer cells, then the instructor's graded cells (hidden tests included).

    What ``nbgrader autograde`` scores, without a kernel and without the notebook's other cells (the
    first code cell, the imports, runs first): a graded cell earns its points when it raises nothing.
    """
    name = course.ASSIGNMENTS[assignment]
    submitted = nbformat.read(course_dir / "submitted" / student / assignment / name, as_version=4)
    source = nbformat.read(course_dir / "source" / assignment / name, as_version=4)
    answers = [
        c.source for c in submitted.cells if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution")
    ]
    graded = [c for c in source.cells if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("grade")]
    imports = next(c.source for c in source.cells if c.cell_type == "code")
    namespace: dict[str, object] = {}
    exec(compile(imports, "imports", "exec"), namespace)  # noqa: S102 - the repository's own notebook
    for code in answers:
        exec(compile(code, "answer", "exec"), namespace)  # noqa: S102
    points = {}
    for cell in graded:
        meta = cell.metadata.nbgrader
        try:
            exec(compile(cell.source, meta.grade_id, "exec"), namespace)  # noqa: S102
        except AssertionError:
            points[meta.grade_id] = 0.0
        else:
            points[meta.grade_id] = float(meta.points)
    return points


@pytest.mark.parametrize("assignment", sorted(SCORES))
def test_every_assignment_scores_full_for_the_solutions_and_partial_for_the_mistakes(tmp_path, assignment):
    # generate_assignment's stand-in, as above; the release's blanks filled by `course sample`.
    course.setup(tmp_path)
    name = course.ASSIGNMENTS[assignment]
    nb = nbformat.read(tmp_path / "source" / assignment / name, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code" and cell.metadata.get("nbgrader", {}).get("solution"):
            cell.source = course._SOLUTION.sub(r"\1# YOUR CODE HERE\n\1raise NotImplementedError()\n", cell.source)
    (tmp_path / "release" / assignment).mkdir(parents=True)
    nbformat.write(nb, tmp_path / "release" / assignment / name)
    course.write_sample(tmp_path, assignment, "right")
    course.write_sample(tmp_path, assignment, "wrong", mistakes=True)
    full, partial = SCORES[assignment]
    right = graded_in_process(tmp_path, assignment, "right")
    assert sum(right.values()) == full and all(right.values()), right
    assert sum(graded_in_process(tmp_path, assignment, "wrong").values()) == partial


def blank_cases() -> list[tuple[str, str]]:
    """(assignment, grade_id) of every exercise function of every instructor notebook."""
    cases = []
    for assignment, name in course.ASSIGNMENTS.items():
        nb = nbformat.read(ROOT / "notebooks" / "exercises" / name, as_version=4)
        cases += [(assignment, gid) for gid in course.solutions_of(nb)]
    return cases


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # torch tensors in plt.imshow
@pytest.mark.parametrize(("assignment", "blank"), blank_cases(), ids=[f"{a}/{b}" for a, b in blank_cases()])
def test_a_blank_reports_itself_in_every_cell_that_needs_it(monkeypatch, assignment, blank):
    # One function left as released, the others solved: every cell of the notebook (fast mode, in this process)
    # either runs or fails naming that blank ("not attempted" in its check, "still blank" where its result is
    # used further down), never with a NameError or KeyError about a variable the blank left undefined.
    monkeypatch.setenv("REGDAKIT_FAST", "1")
    nb = nbformat.read(ROOT / "notebooks" / "exercises" / course.ASSIGNMENTS[assignment], as_version=4)
    stub = r"\1# YOUR CODE HERE\n\1raise NotImplementedError()\n"
    namespace: dict[str, object] = {}
    failed = {}
    for i, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):
        meta = cell.metadata.get("nbgrader", {})
        code = course._SOLUTION.sub(stub, cell.source) if meta.get("grade_id") == blank else cell.source
        try:
            exec(compile(code, f"cell {i}", "exec"), namespace)  # noqa: S102 - the repository's own notebook
        except (Exception, NotImplementedError) as err:  # noqa: BLE001 - every failure is inspected below
            failed[f"cell {i}"] = f"{type(err).__name__}: {err}"
    names = (f"`{blank}` is still blank", f"{blank}: not attempted")
    assert failed and all(any(n in why for n in names) for why in failed.values()), failed
    assert any(f"{blank}: not attempted" in why for why in failed.values()), failed  # its own check says so
