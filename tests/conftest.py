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
