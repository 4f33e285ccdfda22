"""The pytest plugin that turns pytest into the labs' autograder.

    $ pytest tests/labs/test_290_p99_spikes.py                      # grades solutions/
    $ pytest tests/labs/test_290_p99_spikes.py --lab-notebook labs/290_p99_spikes.ipynb \
          --srelab-json report.json                                  # grades a learner notebook

It provides the `lab` fixture (the target's exercise definitions), skips `gpu` tests where
there is no GPU (saying so), fails any test that leaves a child process, a listening port, a
`srelab-*` temp entry or GPU memory behind, and writes a per-check JSON report.
Registered for the whole suite by `addopts = -p labsupport.grading.plugin` in pyproject.toml.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from labsupport import device, labs
from labsupport.grading import hygiene
from labsupport.grading import report as _report
from labsupport.grading.target import TargetError, build

_LAB_TEST = re.compile(r"test_(\d{3})_")


def pytest_addoption(parser):
    group = parser.getgroup("srelab", "LLM-serving SRE labs grading")
    group.addoption(
        "--lab-notebook",
        default=None,
        help="grade this notebook (.ipynb or jupytext .py) instead of solutions/",
    )
    group.addoption("--srelab-json", default=None, help="write the per-check report here")
    group.addoption(
        "--no-hygiene", action="store_true", help="do not check for leftover processes/ports"
    )


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: needs a real NVIDIA GPU")
    config._srelab_results = []  # filled by pytest_runtest_logreport
    config._srelab_started = time.time()


def pytest_collection_modifyitems(config, items):
    for item in items:  # every collected check appears in the report, even if never run
        doc = (
            (getattr(item, "obj", None).__doc__ or "").strip().split("\n")[0]
            if getattr(item, "obj", None)
            else ""
        )
        config._srelab_results.append(_report.new_entry(item.nodeid, doc))
    if device.cuda_available():
        return
    skip = pytest.mark.skip(reason="needs an NVIDIA GPU (torch.cuda.is_available() is False)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def _srelab_workdir():
    path = Path(tempfile.mkdtemp(prefix=f"srelab-{os.getpid()}-grading-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


_BUILT: dict = {}


@pytest.fixture
def lab(request, _srelab_workdir):
    """The graded target's exercise definitions (solutions/ unless --lab-notebook is given)."""
    match = _LAB_TEST.search(Path(str(request.node.fspath)).name)
    if not match:
        pytest.fail("the `lab` fixture is for tests/labs/test_NNN_*.py files", pytrace=False)
    the_lab = labs.get(match.group(1))
    option = request.config.getoption("--lab-notebook")
    target = Path(option) if option else the_lab.solution_path
    key = (the_lab.number, str(target))
    if key not in _BUILT:
        try:
            _BUILT[key] = build(the_lab, target, _srelab_workdir)
        except TargetError as exc:
            _BUILT[key] = exc
    built = _BUILT[key]
    if isinstance(built, TargetError):
        pytest.fail(f"cannot grade {target}: {built}", pytrace=False)
    return built


@pytest.fixture(autouse=True)
def _srelab_hygiene(request):
    """Fail the test if it leaves processes, ports, temp entries or GPU memory behind."""
    if request.config.getoption("--no-hygiene"):
        yield
        return
    before = hygiene.snapshot()
    yield
    problems = hygiene.leftovers(before)
    if problems:
        pytest.fail("left behind after the test: " + "; ".join(problems), pytrace=False)


_SESSION: dict = {}


def pytest_sessionstart(session):
    _SESSION["config"] = session.config


def pytest_runtest_logreport(report):  # noqa: F811 - `report` is pytest's hook argument name
    config = _SESSION.get("config")
    if config is None:
        return
    results = config._srelab_results
    entry = next((r for r in results if r["nodeid"] == report.nodeid), None)
    if entry is None:
        entry = _report.new_entry(report.nodeid)
        results.append(entry)
    _report.update_entry(entry, report)


def pytest_sessionfinish(session, exitstatus):
    path = session.config.getoption("--srelab-json")
    if path:
        _report.write_pytest_report(
            Path(path),
            session.config._srelab_results,
            target=session.config.getoption("--lab-notebook"),
            started=session.config._srelab_started,
        )
