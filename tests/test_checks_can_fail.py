"""Every grading check fails on the generated learner notebook.

The other half - every check passes on the solution - is tests/labs/ itself: a plain
`pytest` grades solutions/. Together they prove no check is a rubber stamp.
"""

import pytest

from labsupport import labs
from labsupport.grading import runner


@pytest.mark.parametrize("lab", labs.done(), ids=lambda lab: lab.slug)
@pytest.mark.timeout(900)
def test_every_check_fails_on_the_learner_notebook(lab):
    result = runner.grade(lab.number, lab.notebook_path)
    checks = result["checks"]
    assert checks, "no checks ran"
    assert not result["passed"]
    graded = [c for c in checks if c["outcome"] != "skipped"]  # GPU-only checks skip on CPU
    assert graded, "every check was skipped"
    passing = [c["check"] for c in graded if c["outcome"] != "failed"]
    assert not passing, f"these checks pass on the unsolved notebook: {passing}"
    for c in graded:
        assert c["hint"], f"{c['check']} failed without a hint"
        assert "Traceback" not in c["hint"]
