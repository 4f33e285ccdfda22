"""The warden: namespaces where possible, leftovers killed and named, nothing outlives it."""

import json
import os
import subprocess
import sys
import time

import psutil
import pytest

from labsupport import contain, labs

SLEEPERS = """
import os, time
for _ in range(10):
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            os.execvp("sleep", ["sleep", "600"])
        os._exit(0)
time.sleep(0.3)
"""


def _run(code: str, limits=None, report=None, env=None):
    argv = contain.wrap([sys.executable, "-c", code], limits or contain.Limits(), report=report)
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)


def _sleepers() -> list:
    return [p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == ["sleep", "600"]]


@pytest.mark.skipif(contain.sandbox().mode != "namespaces", reason="no namespaces here")
def test_namespaces_make_files_read_only_and_hide_the_answers():
    if labs.REPO_ROOT.resolve().is_relative_to("/tmp"):
        pytest.skip("a checkout under /tmp lies under the sandbox's private /tmp")
    code = (
        "import os, socket\n"
        f"print(sorted(os.listdir({str(labs.REPO_ROOT / 'tests')!r})))\n"
        "open('/tmp/mine', 'w').write('x')\n"
        "try:\n"
        f"    open({str(labs.REPO_ROOT / 'README.md')!r}, 'a')\n"
        "except OSError as e:\n"
        "    print('readonly', e.errno)\n"
        "print(os.getpid())\n"
    )
    r = _run(code)
    lines = r.stdout.split("\n")
    assert r.returncode == 0, r.stderr
    assert lines[0] == "[]" and lines[1] == "readonly 30" and lines[2] == "2"
    assert not os.path.exists("/tmp/mine")
    r = _run(
        "import socket; socket.create_connection(('127.0.0.1', 1), timeout=1)",
        contain.Limits(network=False),
    )
    assert r.returncode != 0 and "unreachable" in r.stderr


@pytest.mark.parametrize("mode", ["sandbox", "off"])
def test_detached_processes_are_killed_and_named(mode, tmp_path):
    env = dict(os.environ, SRELAB_SANDBOX="off") if mode == "off" else None
    report = tmp_path / "report.json"
    code = (
        "from labsupport import contain\n"
        "import subprocess, sys\n"
        f"r = subprocess.run(contain.wrap([sys.executable, '-c', {SLEEPERS!r}], "
        f"report={str(report)!r}))\n"
        "sys.exit(r.returncode)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], env=env, timeout=60, capture_output=True)
    assert r.returncode == 0, r.stderr
    data = json.loads(report.read_text())
    assert data["left_running"] == ["sleep 600"] * 10
    assert not _sleepers()


def test_the_warden_takes_everything_down_when_its_parent_is_killed():
    code = (
        "import subprocess, sys, time\n"
        "from labsupport import contain\n"
        "p = subprocess.Popen(contain.wrap([sys.executable, '-c', "
        "'import itertools; sum(itertools.count())']))\n"
        "print(p.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    warden = int(parent.stdout.readline())
    deadline = time.monotonic() + 20
    while len(contain.tree(warden)) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)  # the warden forks its command; slow on a busy machine
    tree = contain.tree(warden)
    assert len(tree) >= 2
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(
        p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in tree
    ):
        time.sleep(0.1)
    alive = [p for p in tree if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not alive, [contain.describe_process(p) for p in alive]


def test_exit_codes_and_signals_pass_through():
    assert _run("import sys; sys.exit(3)").returncode == 3
    assert _run("import os, signal; os.kill(os.getpid(), signal.SIGKILL)").returncode == -9
    r = _run("b = bytearray(8 * 2**30)", contain.Limits(memory_bytes=2**30))
    assert r.returncode == 1 and "MemoryError" in r.stderr


def test_a_process_reexecs_itself_contained():
    code = (
        "import os, sys\n"
        "from labsupport import contain\n"
        "if os.environ.get('SRELAB_CONTAINED') != '1':\n"
        "    print('outside', flush=True)\n"
        "    contain.reexec_contained(sys.argv_for_reexec)\n"
        "print('inside', os.environ['SRELAB_CONTAINED'], flush=True)\n"
    )
    probe = (
        "import os, sys; sys.argv_for_reexec = [sys.executable, '-c', os.environ['PROBE']]; "
        "exec(os.environ['PROBE_BODY'])"
    )
    env = dict(os.environ, PROBE=probe, PROBE_BODY=code)
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env)
    assert r.stdout.split("\n")[:2] == ["outside", "inside 1"], r.stdout + r.stderr


def test_a_signal_to_the_wardens_group_reaches_the_command_once():
    code = (
        "import signal, sys, time\n"
        "seen = []\n"
        "signal.signal(signal.SIGTERM, lambda *a: seen.append(1))\n"
        "print('ready', flush=True)\n"
        "time.sleep(1.5)\n"
        "print('sigterms', len(seen), flush=True)\n"
    )
    argv = contain.wrap([sys.executable, "-c", code])
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, start_new_session=True)
    assert proc.stdout.readline() == "ready\n"
    os.killpg(proc.pid, 15)
    assert proc.stdout.readline() == "sigterms 1\n"
    proc.wait(10)
