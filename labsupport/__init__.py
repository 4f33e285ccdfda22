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


__all__ = ["check", "__version__"]
