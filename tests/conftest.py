"""Test-suite settings: no test writes to the real user's state or workspace, no bars."""

import os
import tempfile

_STATE = tempfile.mkdtemp(prefix="srelabsuite-state-")
os.environ.setdefault("SRELAB_STATE_DIR", _STATE)
os.environ.setdefault("SRELAB_WORKSPACE", os.path.join(_STATE, "workspace"))
os.environ.setdefault("SRELAB_PROGRESS", "0")


def pytest_unconfigure(config):
    import shutil

    shutil.rmtree(_STATE, ignore_errors=True)


def _lab_of(nodeid: str):
    """The lab a test belongs to (by number or symptom in its path or id), or None."""
    import re

    from labsupport import labs

    m = re.search(r"(?:test_|\[|-)(2[7-9]\d|300)(?:_|-|\])", nodeid)
    if m:
        return int(m.group(1))
    for lab in labs.LABS:
        if f"/{lab.symptom}/" in nodeid or f"[{lab.slug}" in nodeid:
            return lab.number
    return None


def pytest_collection_modifyitems(config, items):
    """With `pytest -n 2`, all tests of one lab run in one worker (`--dist loadgroup`): the
    workloads a lab's checks cache per session are then measured once for its solution,
    cheats and variants, and two labs run side by side."""
    import pytest

    for item in items:
        lab = _lab_of(item.nodeid)
        if lab is not None:
            item.add_marker(pytest.mark.xdist_group(f"lab{lab}"))
