"""One rank of a job: a real process that joins the process group and runs its entry.

    >>> from labsupport.distributed import rank
    >>> ctx = rank.RankContext(rank=1, world_size=2, device="cpu", backend="gloo")
    >>> ctx.rank, ctx.is_first
    (1, False)

The launcher (`labsupport.distributed.launch`) starts `python -m labsupport.distributed.rank
SPEC_FD` once per job: that process imports torch once and forks one process per rank (as
torch.multiprocessing's fork start method would; nothing has touched CUDA yet), so a job's
start costs one import, not one per rank. Each rank reads its spec from the launcher, joins
the group through a `FileStore` on a file the launcher shares by descriptor (no TCP store
listening on every interface), runs `entry(ctx, *args)` and writes what happened, as data, to
its result descriptor: the phase it reached, its error, the entry's value and - when the flight
recorder is on - its collectives.

On a failed collective, with `TORCH_NCCL_DUMP_ON_TIMEOUT=1` and a flight-recorder buffer, the
rank dumps its recorder as NCCL's watchdog would (`labsupport.distributed.watchdog`).
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import sys
import threading
from dataclasses import dataclass

from labsupport.distributed.watchdog import Recorder

PROGRESS = "srelab-rank "  # a stdout line the launcher stamps and keeps


@dataclass
class RankContext:
    """What an entry gets: who it is, where its tensors go, a way to report progress."""

    rank: int
    world_size: int
    device: str  # "cpu" or "cuda:N"
    backend: str

    @property
    def is_first(self) -> bool:
        return self.rank == 0

    def progress(self, **data) -> None:
        """Report progress (the launcher stamps each line with its arrival time)."""
        print(PROGRESS + json.dumps(data, default=str), flush=True)


class _Result:
    """The rank's result descriptor: the latest state, rewritten whole on each update."""

    def __init__(self, fd: int):
        self.fd, self.lock, self.state = fd, threading.Lock(), {"phase": "start", "ok": None}

    def update(self, **fields) -> None:
        from labsupport import wire

        with self.lock:
            self.state.update(fields)
            data = dict(self.state)
            data["flags"] = _learner_flags()
            try:
                blob = wire.dumps(data)
            except wire.WireError as exc:
                data["value"] = None
                data["error"] = f"the entry's value cannot be sent back as data: {exc}"
                data["ok"] = False
                blob = wire.dumps(data)
            os.lseek(self.fd, 0, os.SEEK_SET)
            os.ftruncate(self.fd, 0)
            os.write(self.fd, blob)


def _learner_flags() -> list:
    module = sys.modules.get("labsupport.grading.flags")
    return module.recorded() if module is not None else []


def call_entry(ctx, fn, *args, **kwargs):
    """The entry for a function handed over as such (`launch.run_job(fn, ...)`)."""
    return (_resolve(fn) if isinstance(fn, str) else fn)(ctx, *args, **kwargs)


def _resolve(entry: str):
    import importlib

    module_name, _, attr = entry.partition(":")
    obj = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}"[:600]


def _device(choice: str, rank: int) -> str:
    import torch

    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    if choice == "cuda":  # two ranks may share one GPU: gloo moves CUDA tensors through the host
        return f"cuda:{rank % torch.cuda.device_count()}"
    return choice


def run_rank(spec: dict) -> None:
    """Everything one rank does, in its own process (never returns)."""
    result = _Result(spec["result_fd"])
    rank, world = spec["rank"], spec["world_size"]
    import datetime

    import torch.distributed as dist

    device = _device(spec["device"], rank)
    ctx = RankContext(rank=rank, world_size=world, device=device, backend="gloo")
    result.update(phase="init", device=device, backend="gloo")
    store = dist.FileStore(f"/proc/self/fd/{spec['store_fd']}", world)
    timeout = spec["timeout_s"]
    kwargs = {} if timeout is None else {"timeout": datetime.timedelta(seconds=timeout)}
    try:
        dist.init_process_group("gloo", store=store, rank=rank, world_size=world, **kwargs)
    except Exception as exc:  # noqa: BLE001 - an init failure is the rank's result
        print(f"[rank {rank}] init_process_group failed: {_one_line(exc)}", file=sys.stderr)
        result.update(ok=False, error=_one_line(exc))
        sys.stderr.flush()
        os._exit(2)
    default_s = dist.default_pg_timeout.total_seconds()
    recorder = Recorder(store, rank, world, result, default_s if timeout is None else timeout)
    recorder.start_monitor()
    result.update(phase="run")
    try:
        fn = _resolve(spec["entry"])
        args = [a.load() if hasattr(a, "load") else a for a in spec["args"]]
        value = fn(ctx, *args, **spec["kwargs"])
    except BaseException as exc:  # noqa: BLE001 - a failed collective is the rank's result
        print(f"[rank {rank}] {_one_line(exc)}", file=sys.stderr, flush=True)
        recorder.on_failure()
        result.update(ok=False, error=_one_line(exc))
        sys.stdout.flush()
        os._exit(1)
    recorder.settle()
    recorder.dump()  # a job that finished keeps its trace too, when the recorder is on
    result.update(phase="done", ok=True, value=value)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # no teardown: a peer that already left cannot hold this rank up


def main(argv: list[str]) -> None:
    """The group process: import torch once, fork one process per rank, report their exits.

    Each rank gets its own stdout and stderr (descriptors from the launcher) and dies with
    this process. One line per rank goes to the status descriptor when it exits: "RANK CODE".
    """
    with os.fdopen(int(argv[0]), "rb") as f:
        group = pickle.load(f)  # written by the launcher, not by learner code
    import torch  # noqa: F401 - once, before the fork: the ranks share the import
    import torch.distributed  # noqa: F401 - reads TORCH_DISTRIBUTED_DEBUG

    own = [fd for spec in group["ranks"] for fd in (spec["out_fd"], spec["err_fd"])]
    children = {}
    sys.stdout.flush()
    sys.stderr.flush()
    for spec in group["ranks"]:
        pid = os.fork()
        if pid == 0:
            try:
                _die_with_parent()
                os.dup2(spec["out_fd"], 1)
                os.dup2(spec["err_fd"], 2)
                for fd in [*own, group["status_fd"]]:
                    with contextlib.suppress(OSError):
                        os.close(fd)
                run_rank(spec)
            finally:
                os._exit(70)
        children[pid] = spec["rank"]
    for fd in own:
        os.close(fd)
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        if pid in children:
            code = os.waitstatus_to_exitcode(status)
            os.write(group["status_fd"], f"{children.pop(pid)} {code}\n".encode())
    os._exit(0)


def _die_with_parent() -> None:
    import ctypes
    import signal

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG


if __name__ == "__main__":
    main(sys.argv[1:])
