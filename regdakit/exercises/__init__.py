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
  (:func:`check_ground_false_loss`);
* ``error_landing``: ``error_landing(pred, gt, visible, radius) -> (B, K)`` landing codes
  -> ``regdakit.metrics.error_landing(...).landing`` (:func:`check_error_landing`);
* ``rotated_chance``: ``rotated_chance(pred, gt, visible, radius, angles) -> float``, chance model (c)
  -> ``regdakit.metrics.landing_chance(...).rotated_errors`` (:func:`check_rotated_chance`);
* ``step_b``: ``step_b(model, x_t, optimizers, trade_off, sigma) -> L_F``, RegDA's step B
  -> :func:`regdakit.methods.regda.step_b` (:func:`check_step_b`);
* ``step_c``: ``step_c(model, x_t, optimizers, trade_off, sigma, lam) -> L_T``, RegDA's step C
  -> :func:`regdakit.methods.regda.step_c` (:func:`check_step_c`).

**Graded use.** In the course notebooks (``notebooks/exercises/``; an
instructor turns them into nbgrader assignments, see the README there) the
student's cell reads ::

    @ex.exercise("ground_false")
    def ground_false(ground_truth):
        # YOUR CODE HERE
        raise NotImplementedError()

:func:`exercise` never changes code a student has written: it records which
other exercise functions it calls (so that a checker can say "your
`ground_false` is wrong, and your `ground_false_loss` uses it"), and while the
body is blank, a call returns a :class:`Blank` that names the function to
write wherever the result is used. :func:`verify` prints a correct feedback
once and raises :class:`CheckFailed` (an ``AssertionError`` shown as its one
feedback line) otherwise, so an autograded cell earns its points only for a
correct answer; :func:`hidden_check` runs the function on inputs of other
sizes. While a checker runs the student's function, the library's own
implementation of that exercise is unavailable (:func:`reference_blocked`):
an answer that merely calls it is incorrect, and the feedback says so.

**Where things are.** Import everything from ``regdakit.exercises``; the
modules of this package are

* :mod:`~regdakit.exercises.solutions` — the catalogue :data:`EXERCISES`,
  the student's-function wrapper :func:`exercise` and the guard on the
  reference (:func:`solution`, :func:`reference_blocked`);
* :mod:`~regdakit.exercises.checking` — :class:`Feedback`, :func:`verify`
  and what every checker shares (running the student's function safely,
  comparing with the reference and with typical mistakes);
* one module per topic, with its checkers: :mod:`~regdakit.exercises.encoding`
  (``encode``), :mod:`~regdakit.exercises.evaluation` (``pck``),
  :mod:`~regdakit.exercises.ground_false` (Eq. 1 and 2),
  :mod:`~regdakit.exercises.kl_losses` (the KL loss and ``L_F``),
  :mod:`~regdakit.exercises.landing` (where wrong predictions land, chance model (c)) and
  :mod:`~regdakit.exercises.steps` (RegDA's steps B and C on a tiny model);
* :mod:`~regdakit.exercises.grading` — :func:`hidden_check`;
* :mod:`~regdakit.exercises.course` — the nbgrader course directory
  (``python -m regdakit.exercises.course setup DIR``).

>>> def my_pck(pred, gt, visible, threshold):
...     raise NotImplementedError
>>> print(check_pck(my_pck))
pck: not attempted yet (your function raises NotImplementedError)
"""

from regdakit.exercises.checking import CheckFailed, Feedback, verify
from regdakit.exercises.encoding import check_encode
from regdakit.exercises.evaluation import check_pck
from regdakit.exercises.grading import hidden_check
from regdakit.exercises.ground_false import check_ground_false, check_ground_false_distribution
from regdakit.exercises.kl_losses import check_ground_false_loss, check_kl_loss
from regdakit.exercises.landing import check_error_landing, check_rotated_chance
from regdakit.exercises.solutions import EXERCISES, Blank, exercise, reference_blocked, solution
from regdakit.exercises.steps import check_step_b, check_step_c

__all__ = [
    "EXERCISES",
    "Feedback",
    "CheckFailed",
    "Blank",
    "exercise",
    "solution",
    "reference_blocked",
    "verify",
    "hidden_check",
    "check_encode",
    "check_pck",
    "check_ground_false",
    "check_ground_false_distribution",
    "check_kl_loss",
    "check_ground_false_loss",
    "check_error_landing",
    "check_rotated_chance",
    "check_step_b",
    "check_step_c",
]
