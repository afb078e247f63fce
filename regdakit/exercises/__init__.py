"""Course exercises: students write the function, a checker says what is wrong.

**Checkers.** Each ``check_*(student_fn)`` runs the student's function on a
fixed, hand-made case and on seeded random cases (inputs are cloned, so a
function that modifies its arguments cannot break the reference), compares
with the library, and returns a :class:`Feedback` with one of three outcomes:

* ``"correct"``;
* ``"incorrect"``, with a specific diagnosis of the usual mistake (for example
  "x and y are swapped" or "your ground-false for keypoint 0 includes
  keypoint 0 itself"), never a traceback: a function that raises, returns
  ``None`` or a tensor of the wrong shape gets a message too;
* ``"not attempted"``: the function raises ``NotImplementedError`` (a blank).

The feedback prints as one line and is truthy only when correct.

The exercises (name: the student's function -> the library's reference):

* ``encode``: ``encode(keypoints, visible, heatmap_size, stride, sigma) -> (B, K, H, W)``
  -> :func:`regdakit.heatmaps.encode` (:func:`check_encode`);
* ``pck``: ``pck(pred, gt, visible, threshold) -> float`` -> :func:`regdakit.metrics.pck` (:func:`check_pck`);
* ``ground_false``: ``ground_false(ground_truth) -> (B, K, H, W)``, Eq. 1 (:func:`check_ground_false`);
* ``ground_false_distribution``: ``ground_false_distribution(ground_false) -> (B, K, H, W)``, Eq. 2
  (:func:`check_ground_false_distribution`);
* ``kl_loss``: ``kl_loss(logits, target) -> scalar`` -> :func:`regdakit.losses.kl_heatmap_loss`
  (:func:`check_kl_loss`);
* ``ground_false_loss``: ``ground_false_loss(adv_logits, main_logits) -> scalar``, ``L_F``
  (:func:`check_ground_false_loss`).

**The solutions switch.** The exercise notebooks (``notebooks/exercises/``)
leave each function's body blank: the student's cell reads ::

    @ex.exercise("ground_false")
    def ground_false(ground_truth):
        # ✏️ your code here (replace the next line) ----
        raise NotImplementedError
        # ✏️ ----

:func:`exercise` never touches code a student has written. Only while the body
still raises ``NotImplementedError`` *itself*, and only when the environment
variable ``REGDAKIT_SOLUTIONS`` is ``1`` (CI and instructors), the call is
answered by the library's reference instead, and the checker's feedback says
so. Without the variable a blank stays a blank: the checker answers "not
attempted" and any later use raises a ``NotImplementedError`` that says what
to write. :func:`verify` prints a feedback and, with the switch on, fails when
it is not correct, so CI tests the notebooks and the checkers together.

**Where things are.** Import everything from ``regdakit.exercises``; the
modules of this package are

* :mod:`~regdakit.exercises.solutions` — the catalogue :data:`EXERCISES`
  and the solutions switch (:func:`exercise`, :func:`solution`,
  :func:`solutions_on`);
* :mod:`~regdakit.exercises.checking` — :class:`Feedback`, :func:`verify`
  and what every checker shares (running the student's function safely,
  comparing with the reference and with typical mistakes);
* one module per topic, with its checkers: :mod:`~regdakit.exercises.encoding`
  (``encode``), :mod:`~regdakit.exercises.evaluation` (``pck``),
  :mod:`~regdakit.exercises.ground_false` (Eq. 1 and 2) and
  :mod:`~regdakit.exercises.kl_losses` (the KL loss and ``L_F``).

>>> def my_pck(pred, gt, visible, threshold):
...     raise NotImplementedError
>>> print(check_pck(my_pck))
pck: not attempted yet (your function raises NotImplementedError)
"""

from regdakit.exercises.checking import Feedback, verify
from regdakit.exercises.encoding import check_encode
from regdakit.exercises.evaluation import check_pck
from regdakit.exercises.ground_false import check_ground_false, check_ground_false_distribution
from regdakit.exercises.kl_losses import check_ground_false_loss, check_kl_loss
from regdakit.exercises.solutions import EXERCISES, SOLUTIONS_VARIABLE, exercise, solution, solutions_on

__all__ = [
    "SOLUTIONS_VARIABLE",
    "EXERCISES",
    "Feedback",
    "solutions_on",
    "exercise",
    "solution",
    "verify",
    "check_encode",
    "check_pck",
    "check_ground_false",
    "check_ground_false_distribution",
    "check_kl_loss",
    "check_ground_false_loss",
]
