"""The model server's container, crashed on purpose and observed from the node.

    >>> from labsupport.scenarios import gpu_memory_held_after_crash as scenario
    >>> from labsupport.scenarios.gpu_memory_held_after_crash import incident
    >>> run = incident.run(scenario.variant(1))                      # doctest: +SKIP
    >>> [row["name"] for row in run.evidence()["ps"]][:2]           # doctest: +SKIP
    ['entrypoint', 'engine-w0']

`run(variant)` starts the variant's container (`labsupport.linux.pidns`: its entrypoint as PID
1 of its own PID, mount and network namespaces; without a GPU, a tmpfs of the card's size on
/run/card stands in for the GPU's memory), waits until the server serves, SIGKILLs the server
(as the OOM killer or a `kill -9` does), lets the entrypoint try its restart, and takes what
on-call can see from the node: the container's process table, the card's per-process memory
(NVML's list, mapped to the container's PIDs; or the stand-in's), the ports its processes
listen on, the card's used memory over time and the container's log. `entrypoint=` runs
another container command around the same server (a fix: see `entrypoints`); `action="stop"`
sends SIGTERM to PID 1 instead of crashing the server, as `docker stop` and the kubelet do,
and times how long the container takes to go.
Everything runs in a fresh process (`isolate`), and the container dies with it.
"""

from __future__ import annotations

import os
import re
import signal
import sys
import threading
import time
from dataclasses import dataclass

from labsupport import isolate, wire
from labsupport.linux import pidns, procs
from labsupport.scenarios.gpu_memory_held_after_crash import card as cardlib
from labsupport.scenarios.gpu_memory_held_after_crash import entrypoints

MiB, GiB = 2**20, 2**30
PKG = "labsupport.scenarios.gpu_memory_held_after_crash"
STOP_BOUND_S = 3.0  # how long a SIGTERMed container is given before it is SIGKILLed


@wire.record
@dataclass(frozen=True)
class Snapshot:
    """The container at one moment, as the node sees it (container PIDs)."""

    t_s: float
    ps: tuple  # dicts: pid, ppid, stat, name, cmd, rss_kib
    gpu: tuple  # dicts: pid (None: not in this container), used_mib
    listening: tuple  # dicts: pid, port
    card_used_bytes: int
    card_total_bytes: int


@wire.record
@dataclass(frozen=True)
class IncidentRun:
    argv: tuple  # the container's command line
    real_gpu: bool
    need_bytes: int  # what the server needs free at start
    baseline_used_bytes: int  # the card before the container started
    serving: Snapshot | None  # while the server served (None: it never did)
    after: Snapshot | None  # after the kill (and, under the entrypoint, its restart attempt)
    log: tuple  # the container's log lines
    timeline: tuple  # (t_s, card used bytes), t from the container's start
    killed_at_s: float | None
    exited_at_s: float | None  # when PID 1 exited, if it did (the container ended)
    stop_s: float | None  # SIGTERM to PID 1 until the container was gone (action "stop")
    stop_ignored: bool  # the container outlived STOP_BOUND_S after SIGTERM

    def evidence(self) -> dict:
        """What on-call gathers after the crash, as plain values (see `Snapshot`)."""
        snap = self.after
        return {
            "ps": [dict(r) for r in snap.ps],
            "gpu": [dict(r) for r in snap.gpu],
            "listening": [dict(r) for r in snap.listening],
            "card": {
                "total_mib": round(snap.card_total_bytes / MiB, 1),
                "used_mib": round(snap.card_used_bytes / MiB, 1),
            },
            "log": list(self.log),
        }

    @property
    def held_after_bytes(self) -> int:
        """Card memory still used after the crash, over what was used before the container."""
        return (
            0
            if self.after is None
            else max(0, self.after.card_used_bytes - self.baseline_used_bytes)
        )


def server_command(v, card_dir: str, utilization: float) -> list[str]:
    worker_bytes = v.gpu_worker_bytes if card_dir == "cuda" else v.worker_bytes
    argv = [sys.executable, "-m", f"{PKG}.server", "--card", card_dir,
            "--modes", ",".join(v.modes), "--worker-bytes", str(worker_bytes),
            "--gpu-memory-utilization", f"{utilization:.3f}"]  # fmt: skip
    return argv + (["--helper"] if v.helper else [])


def supervisor_command(server: list[str], backoff_s: float = 1.0) -> list[str]:
    return [
        sys.executable,
        "-m",
        f"{PKG}.supervisor",
        "--backoff-s",
        f"{backoff_s:g}",
        "--",
        *server,
    ]


def command(v) -> list[str]:
    """The incident's container command: the entrypoint script around the server.

    Without a GPU the server wants 90% of the stand-in card free at start; on a GPU, all that
    is free now but 1.5 GiB, so that a restart with nothing left over passes and one with a
    worker's memory held does not."""
    from labsupport import device

    if device.cuda_available():
        used, total = cardlib.totals(None)
        util = max(0.1, (total - used - 1.5 * GiB) / total)
        return supervisor_command(server_command(v, "cuda", util))
    return supervisor_command(server_command(v, cardlib.STAND_IN_DIR, v.need_fraction))


def server_part(cmd: list[str]) -> list[str]:
    """The server's own command line inside the entrypoint's."""
    return list(cmd[cmd.index("--") + 1 :])


def run(v, *, command=None, entrypoint=None, action: str = "crash", timeout_s: float = 120.0,
        echo=None) -> IncidentRun:  # fmt: skip
    """Run variant `v`'s container with `command` (default: `command(v)`) as PID 1, or with
    `entrypoint` (an init around that command or its server part: `entrypoints.split`).
    action "crash": SIGKILL the server once it serves; "stop": SIGTERM PID 1 instead."""
    if action not in ("crash", "stop"):
        raise ValueError(f"action must be 'crash' or 'stop', not {action!r}")
    cmd = list(command or globals()["command"](v))
    argv = list(entrypoint) if entrypoint else cmd
    entrypoints.split(argv, [cmd, server_part(cmd)])  # ValueError: never run anything else
    r = isolate.run_function(f"{PKG}.incident:_workload", v, argv, action, timeout_s=timeout_s,
                             echo=echo)  # fmt: skip
    if not r.ok:
        raise RuntimeError(f"the incident run failed: {r.error}\n{r.stderr[-2000:]}")
    return r.value


# ---- inside the fresh process --------------------------------------------------------------
def _snapshot(c: pidns.Container, t0: float, stand_in: str | None) -> Snapshot:
    members = c.members()
    to_ns = {p.pid: procs.ns_pid(p) for p in members}
    rows, listening = [], []
    for p in members:
        cmd = p.cmdline.replace(sys.executable, "python").replace(f"{PKG}.", "")
        cmd = re.sub(r" --(mode|bytes|card|parent|ready-fd|control-fd|hook|gate) \S+", "", cmd)
        rows.append({"pid": to_ns[p.pid], "ppid": to_ns.get(p.ppid, 0), "stat": p.state,
                     "name": p.name, "cmd": cmd[:90], "rss_kib": p.rss_bytes // 1024})  # fmt: skip
        listening += [{"pid": to_ns[p.pid], "port": port} for port in procs.listening(p.pid)]
    if stand_in is None:
        held = cardlib.nvml_processes()
    else:
        held = cardlib.usage_by_pid(list(to_ns), stand_in)
    gpu = [
        {"pid": to_ns.get(pid), "used_mib": round(b / MiB, 1)} for pid, b in sorted(held.items())
    ]
    used, total = cardlib.totals(stand_in)
    return Snapshot(round(time.monotonic() - t0, 3), tuple(rows), tuple(gpu), tuple(listening),
                    used, total)  # fmt: skip


def _log_lines(path: str) -> list[str]:
    try:
        with open(path, errors="replace") as f:
            return [ln.rstrip("\n") for ln in f if ln.strip()]
    except OSError:
        return []


def _wait_for(pred, timeout_s: float, poll_s: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(poll_s)
    return bool(pred())


def _workload(v, argv: list[str], action: str) -> IncidentRun:
    from labsupport import device

    real = device.cuda_available()
    card_host_dir = None
    tmpfs = {} if real else {cardlib.STAND_IN_DIR: v.card_bytes}
    used0 = cardlib.totals(None)[0] if real else 0
    util = float(argv[argv.index("--gpu-memory-utilization") + 1])
    need = int(util * (cardlib.totals(None)[1] if real else v.card_bytes))
    samples: list[tuple[float, int]] = []
    with isolate.temp_dir() as tmp:
        log = str(tmp / "container.log")
        c = pidns.Container(argv, tmpfs=tmpfs, log_path=log)
        t0 = time.monotonic()
        with c:
            if not real:
                card_host_dir = c.root(cardlib.STAND_IN_DIR)
            done = threading.Event()

            def sample() -> None:
                while not done.is_set():
                    try:
                        samples.append((round(time.monotonic() - t0, 3),
                                        cardlib.totals(card_host_dir)[0]))  # fmt: skip
                    except OSError:
                        pass
                    done.wait(0.05)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            ready = _wait_for(lambda: any(ln.startswith("ready:") for ln in _log_lines(log)),
                              90.0 if real else 30.0)  # fmt: skip
            serving = _snapshot(c, t0, card_host_dir) if ready else None
            killed_at = exited_at = stop_s = None
            after = None
            if ready and action == "crash":
                server = next(p for p in c.members() if p.name == "llm-server")
                os.kill(server.pid, signal.SIGKILL)
                killed_at = round(time.monotonic() - t0, 3)
                restarted = lambda: sum("server exited" in ln for ln in _log_lines(log)) >= 2  # noqa: E731
                gone = lambda: c.wait(0) is not None  # noqa: E731
                _wait_for(lambda: restarted() or gone(), 15.0 if not real else 60.0)
                time.sleep(0.3)  # let the workers that notice the crash finish noticing it
                if c.wait(0) is None:
                    after = _snapshot(c, t0, card_host_dir)
                else:
                    exited_at = round(time.monotonic() - t0, 3)
                    after = _snapshot_gone(t0, card_host_dir, used0, v.card_bytes)
            elif ready and action == "stop":
                t_stop = time.monotonic()
                c.signal(signal.SIGTERM)
                status = c.wait(STOP_BOUND_S)
                stop_s = round(time.monotonic() - t_stop, 3) if status is not None else None
            done.set()
            sampler.join(1.0)
        lines = _log_lines(log)
    return IncidentRun(tuple(argv), real, need, used0, serving, after, tuple(lines[-60:]),
                       tuple(samples), killed_at, exited_at, stop_s,
                       bool(ready and action == "stop" and stop_s is None))  # fmt: skip


def _snapshot_gone(t0: float, stand_in: str | None, used0: int, card_bytes: int) -> Snapshot:
    """The container ended: nothing in it; the card as the node sees it now."""
    if stand_in is None:
        used, total = cardlib.totals(None)
    else:  # its tmpfs went with its mount namespace: all of it is free again
        used, total = used0, card_bytes
    return Snapshot(round(time.monotonic() - t0, 3), (), (), (), used, total)
