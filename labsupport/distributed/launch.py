"""Start N ranks as real processes on loopback, watch them, collect what each one reported.

    >>> from labsupport.distributed import launch
    >>> run = launch.run_job("labsupport.distributed.examples:sum_of_ranks", window_s=60)
    >>> [r.value for r in run.ranks], run.hung
    ([1.0, 1.0], False)

Like `torchrun`, without its TCP store: each rank is `python -m labsupport.distributed.rank`
in its own process group, gloo pairs bound to loopback (`GLOO_SOCKET_IFNAME=lo` unless `env`
says otherwise), the group's store a `FileStore` on a file this process hands over by
descriptor. Ranks that carry learner code (an exercise ref, a notebook function) run contained
(`labsupport.contain`), each in its own sandbox. The launcher stamps every progress line as it
arrives; when a rank fails it gives the others `grace_s` to finish (their flight-recorder
dumps) and then stops them, as torchrun's agent tears a group down; at `window_s` it stops
whatever still runs - a job hung in a collective - and says so. Nothing outlives the call.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import sys
import time
from pathlib import Path

from labsupport import wire
from labsupport.distributed.group import Group
from labsupport.distributed.results import JobRun, RankRun

_PACKAGE_PARENT = str(Path(__file__).resolve().parent.parent.parent)
GRACE_S = 3.0


def _rank_env(env: dict | None) -> tuple[dict, dict]:
    added = {"GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"}
    added.update({str(k): str(v) for k, v in (env or {}).items()})
    full = dict(os.environ)
    for name in ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE", "LOCAL_RANK"):
        full.pop(name, None)
    full.update(added)
    paths = [p for p in full.get("PYTHONPATH", "").split(os.pathsep) if p]
    if _PACKAGE_PARENT not in paths:
        full["PYTHONPATH"] = os.pathsep.join([_PACKAGE_PARENT, *paths])
    full["PYTHONUNBUFFERED"] = "1"
    return full, added


def run_job(
    entry: str,
    /,
    *args,
    world_size: int = 2,
    timeout_s: float | None = None,
    window_s: float = 30.0,
    env: dict | None = None,
    device: str = "auto",
    contained: bool | None = None,
    grace_s: float = GRACE_S,
    idle_s: float | None = None,
    **kwargs,
) -> JobRun:
    """Run `entry` ("package.module:function", or a function - a notebook's is sent as its
    code - called as entry(ctx, *args, **kwargs)) on `world_size` ranks; what happened.

    timeout_s: the process group's collective timeout (None: torch's default, 30 min for
    gloo). env: added to the ranks' environment (TORCH_* settings, GLOO_SOCKET_IFNAME).
    idle_s: also stop the job (as hung) once ranks have reported progress and then none for
    this long. device: "auto" (CUDA when present), "cpu" or "cuda". contained: None contains
    the ranks when their arguments carry learner code.
    """
    from labsupport import isolate, portable

    if not isinstance(entry, str):
        args = (portable.sendable(entry), *args)
        entry = "labsupport.distributed.rank:call_entry"
    if contained is None:
        contained = isolate.carries_learner_code((args, kwargs))
    full_env, added = _rank_env(env)
    started = time.monotonic()
    wall_started = time.time()
    group = None
    with isolate.temp_dir() as tmp, contextlib.ExitStack() as stack:

        def opened(fd: int) -> int:
            stack.callback(_close, fd)
            return fd

        store = opened(os.open(tmp / "store", os.O_RDWR | os.O_CREAT, 0o600))
        results, pipes, specs, fds = [], {}, [], [store]
        for rank in range(world_size):
            result = opened(os.open(tmp / f"result-{rank}", os.O_RDWR | os.O_CREAT, 0o600))
            out_r, out_w = (opened(fd) for fd in os.pipe())
            err_r, err_w = (opened(fd) for fd in os.pipe())
            results.append(result)
            pipes[rank] = (out_r, err_r)
            fds += [result, out_w, err_w]
            specs.append(
                {"rank": rank, "world_size": world_size, "entry": entry, "args": args,
                 "kwargs": kwargs, "store_fd": store, "result_fd": result, "out_fd": out_w,
                 "err_fd": err_w, "timeout_s": timeout_s, "device": device}
            )  # fmt: skip
        status_r, status_w = (opened(fd) for fd in os.pipe())
        (tmp / "group").write_bytes(pickle.dumps({"ranks": specs, "status_fd": status_w}))
        spec = opened(os.open(tmp / "group", os.O_RDONLY))
        argv = [sys.executable, "-m", "labsupport.distributed.rank", str(spec)]
        if contained:
            from labsupport import contain

            argv = contain.wrap(argv, contain.Limits(network=True))
        try:
            # the readers are the pumps' from here on: they close them at EOF
            readers = {r: (os.dup(a), os.dup(b)) for r, (a, b) in pipes.items()}
            group = Group(argv, full_env, (*fds, status_w, spec), readers, os.dup(status_r),
                           started)  # fmt: skip
            for fd in (*(f for f in fds if f not in results and f != store), status_w):
                _close(fd)  # only the group holds the write ends now: EOF when it is gone
            hung = _watch(group, window_s, grace_s, contained, idle_s)
        finally:
            if group is not None:
                group.kill(contained)
                group.close()
        duration = time.monotonic() - started
        out = [_collect(group, r, results[r], wall_started) for r in range(world_size)]
    return JobRun(
        world_size=world_size,
        window_s=window_s,
        timeout_s=timeout_s,
        duration_s=round(duration, 4),
        hung=hung,
        contained=bool(contained),
        env=added,
        ranks=out,
    )


def _close(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)


def _watch(group: Group, window_s: float, grace_s: float, contained: bool,
           idle_s: float | None) -> bool:  # fmt: skip
    """Wait until every rank is gone; stop the rest `grace_s` after one failed, at the
    window's end, or after `idle_s` without progress. True when it stopped ranks that were
    still running and none had failed (a hung job)."""
    failed_at = None
    while True:
        now = time.monotonic() - group.started
        if not group.running():
            return False
        if failed_at is None and any(code != 0 for code in group.codes.values()):
            failed_at = now
        if failed_at is not None and now - failed_at > grace_s:
            group.kill(contained)
            return False
        stamps = [out[-1][0] for out in group.out.values() if out]
        idle = idle_s is not None and stamps and now - max(stamps) > idle_s
        if now > window_s or (idle and failed_at is None):
            group.kill(contained)
            return True
        time.sleep(0.02)


def _collect(group: Group, rank: int, result_fd: int, wall_started: float) -> RankRun:
    state: dict = {}
    with contextlib.suppress(OSError):
        os.lseek(result_fd, 0, os.SEEK_SET)
        blob = b""
        while chunk := os.read(result_fd, 1 << 20):
            blob += chunk
        if blob:
            try:
                state = wire.loads(blob)
            except wire.WireError as exc:
                state = {"error": f"its report could not be read: {exc}"}
    if not isinstance(state, dict):
        state = {}
    if state.get("flags"):
        from labsupport.grading import flags

        flags.collect(list(state["flags"]))
    killed = rank in group.killed
    code = None if killed else group.codes.get(rank)
    err = group.err[rank] or group.own_err
    trace_wall = state.get("trace_wall")
    return RankRun(
        rank=rank,
        exit_code=code,
        killed=killed,
        ended_s=group.ended.get(rank),
        phase=str(state.get("phase", "start")),
        ok=None if killed else state.get("ok"),
        error=str(state.get("error") or (err[-1] if err and code else "")),
        value=state.get("value"),
        trace=list(state.get("trace") or []),
        trace_s=None if trace_wall is None else round(float(trace_wall) - wall_started, 4),
        progress=list(group.out[rank]),
        stderr="\n".join(err[-12:]),
        device=str(state.get("device", "cpu")),
    )
