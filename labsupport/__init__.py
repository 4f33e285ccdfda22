"""Shared helpers for the LLM-serving SRE lab notebooks.

    >>> from labsupport import check, device
    >>> device.cuda_available() in (True, False)
    True

Importing this package changes nothing: no seeding, no global flags, no threads.
"""

__version__ = "0.1.0"


def check(lab: str | int, **kwargs):
    """Grade the live notebook's exercises of lab `lab` (see labsupport.grading.check)."""
    from labsupport.grading.live import check as _check

    return _check(lab, **kwargs)


def hint(lab: str | int, level: int = 1, exercise: str | None = None) -> str:
    """Show hint `level` (1-3) of an exercise of lab `lab` (see labsupport.hints)."""
    from labsupport.hints import hint as _hint

    return _hint(lab, level, exercise)


__all__ = ["check", "hint", "__version__"]
