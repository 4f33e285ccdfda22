"""The learner's fixes tried for real: a start hook in every worker, a cleanup before a restart.

    >>> from labsupport.scenarios import gpu_memory_held_after_crash as scenario
    >>> from labsupport.scenarios.gpu_memory_held_after_crash import trials
    >>> def nothing(parent_pid):
    ...     pass
    >>> out = trials.run("worker_start", nothing, scenario.variant(1))  # doctest: +SKIP
    >>> out["parent_killed"]["gone_s"]                                   # doctest: +SKIP
    [None, None]

Both run in one fresh, contained process (the hooks are learner code) that plays the
container's init: it is a child subreaper, so the server's orphans are re-parented to it.

- `worker_start(parent_pid)` is called first thing in every worker, with the server's PID.
  Arm `parent_killed`: the server starts its workers (each runs the hook), they must still
  work a second later, then the server is SIGKILLed; how long until each worker is gone, and
  the card's memory before, meanwhile and after. Arm `parent_died_first`: each worker waits
  at a gate before its hook; the server is SIGKILLed while they wait, then the gate opens, so
  every hook runs in a worker whose parent is already dead.
- `before_restart(server_pgid)` is what the entrypoint calls after the server died and before
  it starts it again. A log shipper runs beside the server in its own session (it must
  survive); the server is SIGKILLed, the hook runs, then the server is started again under
  the card's memory check: did it come up, which workers are gone, is the shipper alive.

Each returns raw measurements as data; the checks judge them.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import subprocess
import sys
import threading
import time

from labsupport import isolate, portable
from labsupport.linux import mounts, procs
from labsupport.scenarios.gpu_memory_held_after_crash import card as cardlib
from labsupport.scenarios.gpu_memory_held_after_crash.incident import PKG, server_command
from labsupport.scenarios.gpu_memory_held_after_crash.worker import load_hook

ALIVE_S = 1.0  # workers must still work this long after starting, their parent alive
GONE_BOUND_S = 3.0  # how long the trial waits for workers to go
PR_SET_CHILD_SUBREAPER = 36


def run(kind: str, hook, v, *, timeout_s: float = 120.0) -> dict:
    """Try `hook` (a learner's function, ref or portable) as `kind`; its measurements."""
    from labsupport import contain

    target = {"worker_start": "_worker_start", "before_restart": "_before_restart"}[kind]
    # always contained, whoever wrote the hook: it is code that signals processes, and in
    # the sandbox's PID namespace even kill(-1) reaches only what the trial started
    r = isolate.run_function(f"{PKG}.trials:{target}", portable.sendable(hook), v,
                             timeout_s=timeout_s, limits=contain.Limits())  # fmt: skip
    if not r.ok:
        return {"error": r.error or "the trial failed", "left_running": r.left_running}
    return r.value


# ---- inside the contained process ----------------------------------------------------------
class _Card:
    """The trial's card: the GPU, or a tmpfs of the card's size in a mount namespace of its
    own (made before any thread starts; inside the sandbox, in a nested user namespace)."""

    def __init__(self, card_bytes: int):
        from labsupport import device

        self.real = device.cuda_available()
        self.dir = "cuda" if self.real else cardlib.STAND_IN_DIR
        if not self.real:
            mounts.enter()
            mounts.mount_tmpfs("/run", 16 * 2**20)
            os.makedirs(self.dir)
            mounts.mount_tmpfs(self.dir, card_bytes)

    def used(self) -> int:
        return cardlib.totals(None if self.real else self.dir)[0]

    def total(self) -> int:
        return cardlib.totals(None if self.real else self.dir)[1]


class _Server:
    """The model server started by the trial; its output read in a thread."""

    def __init__(self, argv: list[str], new_session: bool = False):
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, start_new_session=new_session)  # fmt: skip
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def ready(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if any(ln.startswith("ready:") for ln in self.lines):
                return True
            if self.proc.poll() is not None:
                time.sleep(0.1)  # let the reader catch the last lines
                return any(ln.startswith("ready:") for ln in self.lines)
            time.sleep(0.02)
        return False

    def children(self) -> list[int]:
        return [p for p in procs.pids() if (r := procs.read(p)) and r.ppid == self.proc.pid]

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _clean_up() -> None:
    """Kill and reap everything this trial left (orphans were re-parented to it)."""
    me = os.getpid()
    left = []
    for pid in procs.pids():
        p = procs.read(pid)
        if p is not None and pid != me and _descends_from(p, me):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
            left.append(pid)
    procs.wait_gone(left, 5.0)
    _reap()


def _descends_from(p, ancestor: int) -> bool:
    seen = 0
    while p is not None and seen < 64:
        if p.ppid == ancestor:
            return True
        p = procs.read(p.ppid) if p.ppid > 1 else None
        seen += 1
    return False


def _subreaper() -> None:
    import ctypes

    ctypes.CDLL(None).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def _argv(v, card: _Card, utilization: float, modes=None, hook: str | None = None,
          gate: str | None = None) -> list[str]:  # fmt: skip
    from dataclasses import replace

    vv = replace(v, modes=tuple(modes or v.modes))
    argv = server_command(vv, card.dir, utilization)
    return argv + (["--hook", hook] if hook else []) + (["--gate", gate] if gate else [])


def _own_pid_namespace() -> None:
    """Refuse to run hooks that signal processes outside a PID namespace of their own."""
    init = procs.read(1)  # in the sandbox's PID namespace, PID 1 is its warden's init
    if init is None or "labsupport.contain" not in init.cmdline:
        raise RuntimeError(
            "this trial runs only inside the grading sandbox's PID namespace, and this machine "
            "has none (see `srelab doctor`): a hook that signals processes could reach yours"
        )


def _worker_start(hook, v) -> dict:
    _own_pid_namespace()
    card = _Card(v.card_bytes)
    _subreaper()
    path = f"/tmp/hook-{os.getpid()}.pkl"
    with open(path, "wb") as f:
        pickle.dump(hook, f)
    ready_s = 90.0  # a busy machine may take long to start the server (it returns early on exit)
    out = {}
    try:
        out["parent_killed"] = _arm_parent_killed(v, card, path, ready_s)
        _clean_up()
        if out["parent_killed"]["ready"]:  # a hook that stops every worker fails here already
            out["parent_died_first"] = _arm_parent_died_first(v, card, path)
    finally:
        _clean_up()
    return out


def _arm_parent_killed(v, card: _Card, hook: str, ready_s: float) -> dict:
    base = card.used()
    server = _Server(_argv(v, card, 0, modes=("busy",) * v.workers, hook=hook))
    if not server.ready(ready_s):
        server.kill()
        return {"ready": False, "output": server.lines[-8:]}
    workers = server.children()
    used_with = card.used()
    time.sleep(ALIVE_S)
    alive = [(p := procs.read(pid)) is not None and not p.zombie for pid in workers]
    server.kill()
    gone = procs.wait_gone(workers, GONE_BOUND_S)
    _reap()
    time.sleep(0.05)
    return {"ready": True, "workers": len(workers), "alive_with_parent": alive,
            "gone_s": [gone[p] for p in workers], "used_before": base, "used_with": used_with,
            "used_after": card.used(), "total": card.total()}  # fmt: skip


def _at_gate(pid: int, gate: str) -> bool:
    """The worker has the gate open and sleeps (blocked reading it)."""
    p = procs.read(pid)
    if p is None or p.state != "S":
        return False
    with contextlib.suppress(OSError):
        return any(
            os.readlink(f"/proc/{pid}/fd/{fd}") == gate for fd in os.listdir(f"/proc/{pid}/fd")
        )
    return False


def _arm_parent_died_first(v, card: _Card, hook: str) -> dict:
    gate = f"/tmp/gate-{os.getpid()}"
    os.mkfifo(gate)
    held = os.open(gate, os.O_RDWR)  # workers can open it at once; their reads wait for bytes
    base = card.used()
    server = _Server(_argv(v, card, 0, modes=("busy",) * v.workers, hook=hook, gate=gate))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        workers = server.children()
        if len(workers) == v.workers + v.helper and all(_at_gate(w, gate) for w in workers):
            break
        time.sleep(0.02)
    workers = server.children()
    server.kill()  # every worker is now an orphan waiting at the gate
    os.write(held, b"x" * len(workers))
    gone = procs.wait_gone(workers, GONE_BOUND_S)
    os.close(held)
    _reap()
    time.sleep(0.05)
    return {"workers": len(workers), "gone_s": [gone[p] for p in workers],
            "used_before": base, "used_after": card.used(), "total": card.total()}  # fmt: skip


def _utilization(v, card: _Card) -> float:
    """What the server wants free at start: as in the incident (see `incident.command`)."""
    if not card.real:
        return v.need_fraction
    used, total = card.used(), card.total()
    return max(0.1, (total - used - 1.5 * 2**30) / total)


_SHIPPER = (
    "import time\nfrom labsupport.linux import procs\n"
    "procs.set_name('log-shipper')\ntime.sleep(600)\n"
)


def _before_restart(hook, v) -> dict:
    _own_pid_namespace()
    card = _Card(v.card_bytes)
    _subreaper()
    fn = load_hook(hook)
    ready_s = 90.0  # a busy machine may take long to start the server (it returns early on exit)
    shipper = subprocess.Popen([sys.executable, "-c", _SHIPPER], start_new_session=True)
    out: dict = {}
    try:
        base = card.used()
        util = _utilization(v, card)  # once: a restart must find what the first start found
        server = _Server(_argv(v, card, util), new_session=True)
        if not server.ready(ready_s):
            return {
                "error": "the server did not start (not your code): "
                + " | ".join(server.lines[-4:])
            }
        workers = server.children()
        pgid = server.proc.pid
        server.kill()
        time.sleep(0.2)  # the orphans are re-parented to this process (the container's init)
        try:
            fn(pgid)
            out["hook_error"] = None
        except BaseException as exc:  # noqa: BLE001 - the learner's code: report, do not die
            out["hook_error"] = f"{type(exc).__name__}: {exc}"[:300]
        gone = procs.wait_gone(workers, GONE_BOUND_S)
        _reap()
        time.sleep(0.05)
        out.update(workers=len(workers), gone_s=[gone[p] for p in workers],
                   shipper_alive=shipper.poll() is None, used_before=base,
                   used_after_cleanup=card.used(), total=card.total())  # fmt: skip
        again = _Server(_argv(v, card, util), new_session=True)
        out["restarted"] = again.ready(ready_s)
        out["restart_output"] = again.lines[-3:]
        again.kill()
    finally:
        with contextlib.suppress(OSError):
            shipper.kill()
        _clean_up()
    return out
