"""One package per lab: what breaks, how it is measured, its plots (named for the symptom).

    >>> from labsupport import scenarios
    >>> scenarios.module_name(290)
    'labsupport.scenarios.p99_spikes'

`scenarios/<symptom>/` holds lab NNN_<symptom>'s workload code: a notebook imports its own
scenario and the platform, never a module whose name gives the cause away. Reusable systems
(`serving`, `k8s`, `memory`) keep nothing lab-specific. Each package may have `hints.py`
(`HINTS`, see `labsupport.hints`) and a `variant(seed)` function (what a seed varies).
"""

from __future__ import annotations

import importlib


def module_name(lab_key) -> str:
    from labsupport import labs

    return f"labsupport.scenarios.{labs.get(lab_key).symptom}"


def load(lab_key):
    """The lab's scenario package."""
    return importlib.import_module(module_name(lab_key))
