"""An nbgrader course directory for the exercise notebooks, and sample submissions to try it on.

The instructor sources are the exercise notebooks of the repository
(``notebooks/exercises/*.ipynb``, built from ``notebooks/src/exercises/``):
they hold the solutions between ``### BEGIN SOLUTION`` / ``### END SOLUTION``,
autograded cells with points and hidden tests between ``### BEGIN HIDDEN
TESTS`` / ``### END HIDDEN TESTS`` (nbgrader's cell metadata and markers).
``setup`` copies them into a course directory, one nbgrader assignment each,
next to an ``nbgrader_config.py`` whose exchange (where released assignments
and submissions travel) is the course directory's own ``exchange/``;
nbgrader's commands do the rest (``notebooks/exercises/README.md`` has the
whole path, release to feedback)::

    python -m regdakit.exercises.course setup ~/regda-course
    cd ~/regda-course
    python -m regdakit.exercises.course nbgrader generate_assignment ground_false   # -> release/ground_false/
    python -m regdakit.exercises.course nbgrader release_assignment ground_false    # -> exchange/
    ...                                                                             # students fetch and submit
    python -m regdakit.exercises.course nbgrader collect ground_false               # -> submitted/<student>/
    python -m regdakit.exercises.course nbgrader autograde ground_false             # -> autograded/, gradebook.db
    python -m regdakit.exercises.course nbgrader generate_feedback ground_false     # -> feedback/<student>/*.html

``nbgrader ARGS`` runs nbgrader with this interpreter, with its scripts
folder first on ``PATH``: nbgrader runs the ``alembic`` command when it
creates the gradebook, which a plain ``.venv/bin/nbgrader`` does not find
unless the virtual environment is activated.

``sample`` writes a submission as a student would hand it in: the released
notebook with its blanks filled, either with the instructor's solutions or
(``--mistakes``) with the typical mistakes of :data:`MISTAKES`.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import nbformat

__all__ = [
    "ASSIGNMENTS",
    "MISTAKES",
    "notebooks_folder",
    "setup",
    "solutions_of",
    "write_sample",
    "nbgrader",
    "tools_path",
    "main",
]

#: nbgrader assignment name -> the instructor notebook in ``notebooks/exercises/``.
ASSIGNMENTS: dict[str, str] = {
    "sparse_density": "01_sparse_density_exercise.ipynb",
    "ground_false": "02_ground_false_exercise.ipynb",
    "mean_vs_variance": "03_mean_vs_variance_exercise.ipynb",
    "regda_steps": "04_regda_steps_exercise.ipynb",
}

#: What ``setup`` writes as the course's ``nbgrader_config.py``.
CONFIG = '''"""nbgrader configuration of the regdakit exercises: python -m regdakit.exercises.course setup."""

from pathlib import Path

c = get_config()  # noqa: F821 - nbgrader provides it
c.CourseDirectory.course_id = "regdakit"
# Released assignments and submissions travel through this folder (one machine, no shared server). On a
# JupyterHub with a shared exchange (nbgrader's default, /usr/local/share/nbgrader/exchange), delete this line.
c.Exchange.root = str(Path(__file__).resolve().parent / "exchange")
# Notebooks 01 and 02 load the shipped model and predict; 03 trains small heads; 04 a tiny detector: minutes at most.
c.Execute.timeout = 900
# A kernel that dies (out of memory) is graded, not retried forever.
c.Execute.interrupt_on_timeout = True
'''

#: Assignment -> solution cell (grade_id) -> the body of a typical mistake, as a student would write it.
#: A function body missing here keeps the instructor's solution; ``None`` leaves the blank as released.
MISTAKES: dict[str, dict[str, str | None]] = {
    "sparse_density": {
        # a prediction exactly at the radius counted as correct (rotated_chance keeps the solution)
        "error_landing": (
            "    codes = torch.full(visible.shape, -2, dtype=torch.long)\n"
            "    for b in range(visible.shape[0]):\n"
            "        for k in range(visible.shape[1]):\n"
            "            if not visible[b, k]:\n"
            "                continue\n"
            "            if (pred[b, k] - gt[b, k]).norm() <= radius:\n"
            "                codes[b, k] = -1\n"
            "                continue\n"
            "            codes[b, k], best = visible.shape[1], radius\n"
            "            for j in range(visible.shape[1]):\n"
            "                d = (pred[b, k] - gt[b, j]).norm()\n"
            "                if j != k and visible[b, j] and d < best:\n"
            "                    codes[b, k], best = j, d\n"
            "    return codes"
        ),
    },
    "ground_false": {
        # calls the library's own implementation: no credit, and the feedback says so
        "encode": "    return rk.heatmaps.encode(keypoints, visible, heatmap_size, stride, sigma)[0]",
        # keypoint k left in its own ground false
        "ground_false": "    return ground_truth.sum(dim=1, keepdim=True).clamp(0, 1).expand_as(ground_truth)",
        # still blank
        "ground_false_distribution": None,
        # right, but built on the wrong ground_false above: traced upstream
        "ground_false_loss": (
            "    truth, _ = rk.disparity.pseudo_labels(main_logits.detach())\n"
            "    return rk.losses.kl_heatmap_loss(adv_logits, ground_false(truth))"
        ),
    },
    "mean_vs_variance": {
        # softmax missing
        "kl_loss": (
            "    q = target.flatten(2) / target.flatten(2).sum(-1, keepdim=True)\n"
            "    return (torch.special.xlogy(q, q) - q * logits.flatten(2)).sum(-1).mean()"
        ),
    },
    "regda_steps": {
        # f' straight on psi: the gradient into psi is not scaled by λ (step_b keeps the solution)
        "step_c": (
            "    psi = model.features(x_t)\n"
            "    with torch.no_grad():\n"
            "        logits = model.head(psi)\n"
            "    truth, _ = rk.disparity.pseudo_labels(logits, sigma)\n"
            "    loss = rk.losses.kl_heatmap_loss(model.head_adv(psi), truth)\n"
            "    optimizers['psi'].zero_grad()\n"
            "    (trade_off * loss).backward()\n"
            "    optimizers['psi'].step()\n"
            "    return loss.detach()"
        ),
    },
}

_SOLUTION = re.compile(r"^([ \t]*)### BEGIN SOLUTION\n(.*?)^[ \t]*### END SOLUTION\n?", re.S | re.M)
_STUB = re.compile(r"^([ \t]*)# YOUR CODE HERE\n[ \t]*raise NotImplementedError\(\)\n?", re.M)


def notebooks_folder() -> Path:
    """``notebooks/exercises/`` of the repository this package is installed from (an editable install)."""
    folder = Path(__file__).resolve().parents[2] / "notebooks" / "exercises"
    if not all((folder / nb).is_file() for nb in ASSIGNMENTS.values()):
        raise FileNotFoundError(
            f"the instructor notebooks are not in {folder}: run this from a clone of the repository "
            "(pip install -e '.[course]'), or pass --notebooks"
        )
    return folder


def setup(course: Path, notebooks: Path | None = None) -> list[Path]:
    """Write ``course/nbgrader_config.py`` and ``course/source/<assignment>/<notebook>`` (outputs cleared).

    Re-running it updates the sources; nothing else in the course directory
    (gradebook, submissions) is touched.

    Returns:
        The notebooks written.
    """
    notebooks = notebooks or notebooks_folder()
    course.mkdir(parents=True, exist_ok=True)
    config = course / "nbgrader_config.py"
    if not config.exists():
        config.write_text(CONFIG, encoding="utf-8")
    written = []
    for assignment, name in ASSIGNMENTS.items():
        nb = nbformat.read(notebooks / name, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                cell.outputs = []
                cell.execution_count = None
        target = course / "source" / assignment / name
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, target)
        written.append(target)
    return written


def solutions_of(notebook: nbformat.NotebookNode) -> dict[str, str]:
    """grade_id -> the solution's code (the lines between the solution markers) of an instructor notebook."""
    out = {}
    for cell in notebook.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution") and cell.cell_type == "code":
            found = _SOLUTION.search(cell.source)
            if found:
                out[meta["grade_id"]] = found.group(2).rstrip("\n")
    return out


def write_sample(
    course: Path, assignment: str, student: str = "demo", mistakes: bool = False, into: Path | None = None
) -> Path:
    """Write a submission: the released notebook with its blanks filled, as a student would hand it in.

    Args:
        course: The course directory (``nbgrader generate_assignment`` already run).
        assignment: One of :data:`ASSIGNMENTS`.
        student: The student id: the submission goes to ``course/submitted/<student>/<assignment>/``,
            where ``nbgrader collect`` puts what students submit.
        mistakes: Fill with :data:`MISTAKES` instead of the solutions.
        into: Write ``into/<assignment>/<notebook>`` instead: the copy a student fetched with
            ``nbgrader fetch_assignment`` (then ``nbgrader submit`` hands it in through the exchange).

    Returns:
        The notebook written.
    """
    if assignment not in ASSIGNMENTS:
        raise ValueError(f"unknown assignment {assignment!r}; the assignments are {sorted(ASSIGNMENTS)}")
    name = ASSIGNMENTS[assignment]
    release = course / "release" / assignment / name
    if not release.is_file():
        raise FileNotFoundError(f"{release} is missing: run `nbgrader generate_assignment {assignment}` first")
    answers = solutions_of(nbformat.read(course / "source" / assignment / name, as_version=4))
    if mistakes:
        answers.update(MISTAKES.get(assignment, {}))
    nb = nbformat.read(release, as_version=4)
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "code" and meta.get("solution"):
            body = answers.get(meta.get("grade_id"))
            if body is not None:
                cell.source = _STUB.sub(lambda m, body=body: body + "\n", cell.source, count=1)
    folder = into if into is not None else course / "submitted" / student
    target = folder / assignment / name
    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, target)
    return target


def nbgrader(args: list[str], cwd: Path | None = None) -> int:
    """Run ``python -m nbgrader ARGS`` with this interpreter, its scripts folder first on ``PATH``.

    nbgrader starts the ``alembic`` command when it creates a gradebook, and
    kernels named ``python``: with ``.venv/bin`` first on ``PATH`` both are
    this environment's, whether or not the environment is activated.

    Args:
        args: nbgrader's command line, e.g. ``["autograde", "ground_false"]``.
        cwd: Where to run it (the course directory); default the current folder.

    Returns:
        nbgrader's exit status.
    """
    env = {**os.environ, "PATH": tools_path()}
    return subprocess.call([sys.executable, "-m", "nbgrader", *args], cwd=cwd, env=env)


def tools_path() -> str:
    """``PATH`` with this interpreter's scripts folder (``.venv/bin``: alembic, jupyter) first."""
    scripts = [sysconfig.get_path("scripts"), str(Path(sys.executable).parent)]
    return os.pathsep.join([*dict.fromkeys(scripts), os.environ.get("PATH", "")])


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["nbgrader"]:  # everything after it is nbgrader's, options included
        return nbgrader(argv[1:])
    parser = argparse.ArgumentParser(
        prog="python -m regdakit.exercises.course", description=__doc__.splitlines()[0], allow_abbrev=False
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_setup = sub.add_parser("setup", help="write nbgrader_config.py and source/", allow_abbrev=False)
    p_setup.add_argument("course", type=Path)
    p_setup.add_argument("--notebooks", type=Path, help="the instructor notebooks (default: the repository's)")
    p_sample = sub.add_parser("sample", help="write a sample submission", allow_abbrev=False)
    p_sample.add_argument("course", type=Path)
    p_sample.add_argument("assignment", choices=sorted(ASSIGNMENTS))
    p_sample.add_argument("--student", default="demo", help="into submitted/STUDENT/ (default demo)")
    p_sample.add_argument("--into", type=Path, help="into INTO/ASSIGNMENT/ instead: a fetched copy")
    p_sample.add_argument("--mistakes", action="store_true", help="typical mistakes instead of the solutions")
    sub.add_parser(
        "nbgrader",
        help="nbgrader ARGS, run with this Python and its tools (alembic) on PATH",
        allow_abbrev=False,
        add_help=False,
    )
    args = parser.parse_args(argv)
    if args.command == "setup":
        for path in setup(args.course, args.notebooks):
            print(f"wrote {path}")
        print(f"next: cd {args.course} && {parser.prog} nbgrader generate_assignment {next(iter(ASSIGNMENTS))}")
    else:
        print(f"wrote {write_sample(args.course, args.assignment, args.student, args.mistakes, args.into)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
