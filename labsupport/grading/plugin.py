"""The pytest plugin that turns pytest into the labs' autograder.

    $ pytest tests/labs/test_290_p99_spikes.py                      # grades solutions/
    $ pytest tests/labs/test_290_p99_spikes.py --lab-notebook labs/290_p99_spikes.ipynb \
          --srelab-json report.json                                  # grades a learner notebook

It provides the `lab` fixture (proxies to the target's exercise definitions, which run in a
separate, contained submission process: nothing of the learner's runs here), skips `gpu` tests
where there is no GPU (saying so), fails any test that leaves a child process, a listening
port, a `srelab-*` temp entry or GPU memory behind, files the flags learner code raised under
the check that was running, and writes a per-check JSON report, signed when `srelab check`
hands this process a key (`--srelab-key-fd`). Registered for the whole suite by
`addopts = -p labsupport.grading.plugin` in pyproject.toml.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

from labsupport import device, labs
from labsupport.grading import flags, hygiene
from labsupport.grading import report as _report
from labsupport.grading.target import LearnerExercises, TargetError, build

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
    group.addoption("--srelab-key-fd", type=int, default=None, help=argparse_suppress())
    group.addoption(
        "--lab-seed", type=int, default=None, help="grade against this variant (default: the lab's)"
    )
    group.addoption(
        "--srelab-progress",
        action="store_true",
        help="print a progress marker line as each check ends (srelab check draws a bar)",
    )


def argparse_suppress():
    import argparse

    return argparse.SUPPRESS


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: needs a real NVIDIA GPU")
    config.addinivalue_line("markers", "diagnosis: a check of the graded diagnosis")
    config.addinivalue_line("markers", "fix: a check of the graded fix")
    config._srelab_results = []  # filled by pytest_runtest_logreport
    config._srelab_started = time.time()
    config._srelab_key = None
    fd = config.getoption("--srelab-key-fd", None)
    if fd is not None:  # read before any learner code runs anywhere, then close
        with os.fdopen(fd, "rb") as f:
            config._srelab_key = f.read()
    if config.getoption("--srelab-json", None):
        _protect_this_process()


def _protect_this_process() -> None:
    """A grading process: not dumpable, so no other process of this user can read its memory,
    its environment or its file descriptors through /proc, nor attach a debugger."""
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE, 0
    except (OSError, AttributeError):
        pass


def pytest_collection_modifyitems(config, items):
    for item in items:  # every collected check appears in the report, even if never run
        doc = (
            (getattr(item, "obj", None).__doc__ or "").strip().split("\n")[0]
            if getattr(item, "obj", None)
            else ""
        )
        entry = _report.new_entry(item.nodeid, doc)
        for kind in ("diagnosis", "fix"):
            if item.get_closest_marker(kind) is not None:
                entry["kind"] = kind
        config._srelab_results.append(entry)
    if device.cuda_available():
        return
    skip = pytest.mark.skip(reason="needs an NVIDIA GPU (torch.cuda.is_available() is False)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


_BUILT: dict = {}


@pytest.fixture
def lab(request):
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
            _BUILT[key] = build(the_lab, target)
        except TargetError as exc:
            _BUILT[key] = exc
    built = _BUILT[key]
    if isinstance(built, TargetError):
        pytest.fail(f"cannot grade {target}: {built}", pytrace=False)
    return built  # a call stopped earlier (time, memory) left it dead: the next call restarts it


def _notebook_seed(path: Path) -> int | None:
    """The variant a notebook was written for (`srelab start/interview --seed`), if it says."""
    if path.suffix != ".ipynb":
        return None
    import json

    try:
        meta = json.loads(path.read_text(encoding="utf-8", errors="replace")).get("metadata", {})
        seed = (meta.get("srelab") or {}).get("seed")
    except (OSError, ValueError, AttributeError):
        return None
    return seed if isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0 else None


@pytest.fixture
def seed(request) -> int:
    """The variant to grade: --lab-seed, else the notebook's own, else the lab's default."""
    chosen = request.config.getoption("--lab-seed")
    if chosen is not None:
        return int(chosen)
    option = request.config.getoption("--lab-notebook")
    if option:
        found = _notebook_seed(Path(option))
        if found is not None:
            return found
    match = _LAB_TEST.search(Path(str(request.node.fspath)).name)
    return labs.get(match.group(1)).default_seed if match else 0


def _timeout_of(item) -> float | None:
    marker = item.get_closest_marker("timeout")
    if marker is not None and marker.args:
        return float(marker.args[0])
    try:
        return float(item.config.getini("timeout"))
    except (ValueError, TypeError):
        return None


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    flags.drain()  # what was raised outside a check is not this check's
    limit = _timeout_of(item)
    LearnerExercises.deadline = time.monotonic() + limit - 2.0 if limit else None


def pytest_runtest_teardown(item):
    LearnerExercises.deadline = None


def _file_flags(config, nodeid: str) -> None:
    raised = flags.drain()
    if not raised:
        return
    match = _LAB_TEST.search(nodeid)
    allowed = set()
    if match:
        with _suppress_unknown_lab():
            allowed = set(labs.get(match.group(1)).allowed_flags)
    entry = next((r for r in config._srelab_results if r["nodeid"] == nodeid), None)
    if entry is not None:
        known = entry.setdefault("flags", [])
        known += [f for f in raised if f["kind"] not in allowed and f not in known]


class _suppress_unknown_lab:
    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        return exc_type is not None and issubclass(exc_type, labs.UnknownLab)


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
    if report.when == "teardown":
        _file_flags(config, report.nodeid)


def pytest_runtest_logfinish(nodeid, location):
    config = _SESSION.get("config")
    if config is None or not config.getoption("--srelab-progress"):
        return
    from labsupport import progress

    done = sum(r["outcome"] != "not run" for r in config._srelab_results)
    os.write(1, f"\n{progress.MARKER}{done}/{len(config._srelab_results)}\n".encode())


def pytest_sessionfinish(session, exitstatus):
    for built in list(_BUILT.values()):
        if isinstance(built, LearnerExercises):
            built.close()
    _BUILT.clear()
    path = session.config.getoption("--srelab-json")
    if path:
        from labsupport import contain

        _report.write_pytest_report(
            Path(path),
            session.config._srelab_results,
            target=session.config.getoption("--lab-notebook"),
            started=session.config._srelab_started,
            key=session.config._srelab_key,
            sandbox=contain.sandbox().describe(),
        )
