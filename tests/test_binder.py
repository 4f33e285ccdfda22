import os

from labsupport import labs

BINDER = labs.REPO_ROOT / "binder"


def test_post_build_is_executable_and_stops_on_error():
    post = BINDER / "postBuild"
    text = post.read_text()
    assert text.startswith("#!/usr/bin/env bash")
    assert "set -e" in text or "set -euo pipefail" in text
    assert os.access(post, os.X_OK)
    assert "download.pytorch.org/whl/cpu" in text  # a CPU-only image


def test_runtime_pins_a_python():
    assert (BINDER / "runtime.txt").read_text().strip().startswith("python-3.")
