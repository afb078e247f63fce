"""Run the exercise notebooks with their blanks filled by the library's solutions.

pytest imports this file while it collects ``notebooks/exercises/`` (so
before any notebook runs), and the kernels nbval starts inherit the pytest
process's environment. With ``REGDAKIT_SOLUTIONS=1`` every blank exercise is
answered by the reference implementation (:func:`regdakit.exercises.exercise`)
and every ``verify(...)`` cell must report "correct": CI tests the notebooks
and the checkers together. Students never run this file; see README.md here.
"""

import os

os.environ["REGDAKIT_SOLUTIONS"] = "1"
