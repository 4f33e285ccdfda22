"""Catch lab 292's server while it is stuck and dump its Python stacks, as on-call would.

    >>> from labsupport.scenarios.cpu_pegged_gpu_idle import capture
    >>> "ptrace" in capture.ptrace_status()
    True

    cap = capture.capture_stuck_server(variant)   # py-spy, or faulthandler without ptrace
    print(cap.tool, cap.cpu_percent, cap.silent_s)
    print(cap.text)

`capture_stuck_server(variant)` starts the server as shipped in its own process (its own
session, killed at the end), waits until it looks like the page (its heartbeat silent for a
a second while the process burns CPU), then runs `py-spy dump --pid PID --locals` on it. Where
ptrace is not allowed (a container without `SYS_PTRACE`, Yama's `ptrace_scope` >= 2 for a
non-root user) it falls back to the dump the server's own `faulthandler.register(SIGUSR1)`
writes when sent that signal: every thread's stack, without locals.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time

from labsupport.scenarios.cpu_pegged_gpu_idle.records import Capture

TOOLS = ("auto", "py-spy", "faulthandler")
CAP_SYS_PTRACE = 19


def _cap_sys_ptrace() -> bool:
    try:
        for line in open("/proc/self/status"):
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) >> CAP_SYS_PTRACE & 1)
    except OSError:
        pass
    return False


def ptrace_status() -> str:
    """What ptrace (py-spy's way in) permits here, in words."""
    scope_file = "/proc/sys/kernel/yama/ptrace_scope"
    scope = open(scope_file).read().strip() if os.path.exists(scope_file) else None
    cap = _cap_sys_ptrace()
    parts = [
        f"uid {os.getuid()}",
        f"CAP_SYS_PTRACE {'held' if cap else 'not held'}",
        "Yama ptrace_scope " + (scope if scope is not None else "absent (no Yama module)"),
    ]
    if scope == "3":
        verdict = "ptrace is disabled for everyone: use faulthandler"
    elif cap:
        verdict = "ptrace allowed: py-spy can attach to any process of this namespace"
    elif scope in (None, "0"):
        verdict = "ptrace allowed on processes of the same user"
    elif scope == "1":
        verdict = "ptrace only on descendants: run py-spy as the server's parent, or sudo"
    else:
        verdict = "ptrace needs CAP_SYS_PTRACE: use faulthandler"
    return "; ".join(parts) + f" -> {verdict}"


def _cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _py_spy(pid: int) -> str | None:
    exe = shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable), "py-spy")
    if not os.path.exists(exe):
        return None
    r = subprocess.run(
        [exe, "dump", "--pid", str(pid), "--locals"], capture_output=True, text=True, timeout=30
    )
    return r.stdout if r.returncode == 0 and "Thread" in r.stdout else None


def capture_stuck_server(variant, *, tool: str = "auto", timeout_s: float = 60.0) -> Capture:
    """Start the server, catch it stuck, dump its stacks; the server is killed afterwards."""
    from labsupport import bpe, isolate

    if tool not in TOOLS:
        raise ValueError(f"tool must be one of {TOOLS}")
    with isolate.temp_dir() as tmp:
        dump_path = str(tmp / "faulthandler.txt")
        code = (
            "import pickle, sys; from labsupport.scenarios.cpu_pegged_gpu_idle import incident; "
            "incident.incident(*pickle.load(sys.stdin.buffer))"
        )
        import pickle

        proc = subprocess.Popen(
            [sys.executable, "-c", code],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"},
        )
        try:
            proc.stdin.write(pickle.dumps((variant, bpe.load().ranks, dump_path)))
            proc.stdin.close()
            return _catch(proc, tool, dump_path, timeout_s)
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
            proc.stdout.close()


def _catch(proc, tool: str, dump_path: str, timeout_s: float) -> Capture:
    last = {"tick": None, "ready": False}

    def read() -> None:
        for line in proc.stdout:
            if line.startswith(b"ready"):
                last["ready"] = True
            elif line.startswith(b"tick"):
                last["tick"] = time.monotonic()

    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + timeout_s
    cpu_prev, t_prev = None, None
    while time.monotonic() < deadline:
        time.sleep(0.25)
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode} before it got stuck")
        cpu, now = _cpu_s(proc.pid), time.monotonic()
        busy = (cpu - cpu_prev) / (now - t_prev) if cpu_prev is not None else 0.0
        cpu_prev, t_prev = cpu, now
        silent = now - last["tick"] if last["tick"] is not None else 0.0
        if last["ready"] and silent >= 1.0 and busy >= 0.2:  # a shared machine gives less
            text = _py_spy(proc.pid) if tool in ("auto", "py-spy") else None
            used = "py-spy"
            if text is None:
                if tool == "py-spy":
                    raise RuntimeError("py-spy could not attach: " + ptrace_status())
                used = "faulthandler"
                os.kill(proc.pid, signal.SIGUSR1)
                time.sleep(0.5)
                with open(dump_path) as f:
                    text = f.read()
            return Capture(used, text, proc.pid, round(100 * busy, 1),
                           round(silent, 2), ptrace_status())  # fmt: skip
    raise RuntimeError(f"the server did not get stuck within {timeout_s:.0f} s")
