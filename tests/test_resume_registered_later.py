"""Resume's rules follow ``METHODS`` as it is when a run resumes, not as it was when ``regdakit.training`` loaded."""

import pytest

from regdakit import train as T
from regdakit.methods import METHODS
from regdakit.training import config, resume

pytestmark = pytest.mark.usefixtures("one_thread")


def test_a_method_registered_after_import_cannot_change_pretrain_iterations_on_resume(monkeypatch):
    # An adaptation method starts from the cached pre-training that pretrain_iterations selects, so a resumed
    # run may not change it; ERM and the oracle may (it is the length of their only phase).
    monkeypatch.setitem(METHODS, "late", METHODS["control"])  # registered now, long after the import
    assert "late" not in T.ADAPT_METHODS and "late" in config.adapt_methods()
    cfg = T.make_config("ci", method="late")
    with pytest.raises(ValueError, match=r"resume_allow: pretrain_iterations cannot change in a run .*late run"):
        resume.check_resume_allow(cfg, ("pretrain_iterations",))
    resume.check_resume_allow(cfg, ("adapt_iterations", "eval_every"))
    resume.check_resume_allow(T.make_config("ci", method="erm"), ("pretrain_iterations",))
