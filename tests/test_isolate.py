import os
import time

import psutil

from labsupport import isolate


def test_function_value_crosses_the_process_boundary():
    r = isolate.run_function("math:factorial", 6, timeout_s=60)
    assert r.ok and r.value == 720 and r.returncode == 0


def test_exception_is_reported_with_its_type():
    r = isolate.run_function("math:sqrt", -1, timeout_s=60)
    assert not r.ok
    assert r.exception_type == "ValueError"
    assert "math domain error" in r.error
    assert "Traceback" in r.traceback


def test_timeout_kills_the_whole_process_group():
    code = (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    start = time.monotonic()
    r = isolate.run_python(code, timeout_s=2)
    assert r.timed_out and not r.ok
    assert "timed out" in r.error
    assert time.monotonic() - start < 20
    grandchild = int(r.stdout.split()[0])
    deadline = time.monotonic() + 5
    while psutil.pid_exists(grandchild) and time.monotonic() < deadline:
        try:
            if psutil.Process(grandchild).status() == psutil.STATUS_ZOMBIE:
                break
        except psutil.NoSuchProcess:
            break
        time.sleep(0.05)
    alive = psutil.pid_exists(grandchild) and psutil.Process(grandchild).status() != "zombie"
    assert not alive, "the grandchild survived the timeout"


def test_death_by_signal_is_named():
    r = isolate.run_python("import os, signal; os.kill(os.getpid(), signal.SIGKILL)", timeout_s=30)
    assert not r.ok and r.error == "killed by SIGKILL"


def test_env_is_passed_and_package_importable():
    r = isolate.run_python(
        "import os, labsupport; print(os.environ['SRELAB_PROBE'])",
        timeout_s=60,
        extra_env={"SRELAB_PROBE": "42"},
    )
    assert r.ok, r.error
    assert r.stdout.strip() == "42"


def test_echo_streams_stdout_lines():
    seen = []
    r = isolate.run_python("print('a'); print('b')", timeout_s=30, echo=seen.append)
    assert r.ok and seen == ["a", "b"]


def test_temp_dir_is_removed_even_on_error():
    try:
        with isolate.temp_dir() as path:
            (path / "f").write_text("x")
            assert path.name.startswith(f"srelab-{os.getpid()}-")
            raise RuntimeError
    except RuntimeError:
        pass
    assert not path.exists()


def test_a_return_value_that_is_not_data_is_a_clear_error():
    r = isolate.run_function("threading:Lock", timeout_s=60)
    assert not r.ok and "cannot be sent back" in r.error


def test_learner_code_runs_contained_and_what_it_leaves_is_named():
    from labsupport.portable import portable

    def leave_sleepers():
        import os

        for _ in range(3):
            if os.fork() == 0:
                os.setsid()
                if os.fork() == 0:
                    os.execvp("sleep", ["sleep", "600"])
                os._exit(0)
        return 7

    r = isolate.run_function(
        "labsupport.isolate:call_learner", portable(leave_sleepers), timeout_s=60
    )
    assert r.ok and r.value == 7 and r.contained
    assert len(r.left_running) == 3 and all("sleep" in c for c in r.left_running)


def test_memory_cap_on_contained_runs():
    from labsupport import contain

    r = isolate.run_python(
        "b = bytearray(20 * 2**30)", timeout_s=60, limits=contain.Limits(memory_bytes=2**30)
    )
    assert not r.ok and "MemoryError" in r.error
