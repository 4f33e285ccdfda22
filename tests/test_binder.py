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


def test_learner_images_leave_the_answers_out():
    post = (BINDER / "postBuild").read_text()
    assert "rm -rf solutions" in post
    docker = (labs.REPO_ROOT / "Dockerfile").read_text()
    learner = docker.split("AS learner", 1)[1].split("FROM ", 1)[0]
    base = docker.split("AS base", 1)[1].split("FROM ", 1)[0]
    for stage in (base, learner):
        assert "COPY solutions" not in stage and "COPY tests" not in stage
    assert "/opt/srelab" in docker and "torch" in base  # the repository outside the home volume
