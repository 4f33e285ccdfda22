"""Grading: targets, the pytest plugin, reports, release of learner notebooks.

    >>> from labsupport.grading import release, report, runner, target  # doctest: +SKIP

`labsupport.check("NNN")` in a notebook and `srelab check NNN` on a shell both end in
`runner.grade`, which runs `tests/labs/test_NNN_*.py` against the chosen target.
"""
