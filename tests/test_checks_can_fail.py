"""Every grading check fails on the generated learner notebook, even with tampering added.

The other half - every check passes on the solution - is tests/labs/ itself: a plain
`pytest` grades solutions/. Together they prove no check is a rubber stamp. The learner copy
is graded with one more exercise cell that forges the verdicts from inside at import time
(tests/grading/test_tampering.py, mechanism A): every check must still fail, on its stub.
"""

import pytest

from labsupport import labs
from labsupport.grading import runner
from tests.grading.test_tampering import (
    assert_all_failed,
    check_files_lock,
    forge_in_place,
    snapshot_tests,
    tampered,
    undo_tampering,
)


@pytest.mark.parametrize("lab", labs.done(), ids=lambda lab: lab.slug)
@pytest.mark.timeout(900)
def test_every_check_fails_on_the_learner_notebook(lab, tmp_path):
    notebook = tampered(lab, forge_in_place(), tmp_path / "learner_and_forgery.ipynb")
    with check_files_lock():
        before = snapshot_tests()
        try:
            result = runner.grade(lab.number, notebook)
        finally:
            after = snapshot_tests()
            undo_tampering()
    checks = result["checks"]
    assert checks, "no checks ran"
    assert [c for c in checks if c["outcome"] != "skipped"], "every check was skipped"
    assert_all_failed(result, lab)
    assert after == before, "a check file changed during grading"
    assert any(f["kind"] == "patched" for f in result["flags"]), "the forgery raised no flag"
