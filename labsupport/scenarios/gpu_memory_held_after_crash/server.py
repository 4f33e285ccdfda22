"""The model server: checks the card's free memory like vLLM, starts its workers, serves.

    $ python -m labsupport.scenarios.gpu_memory_held_after_crash.server --card /run/card \
          --modes busy,eof,busy --helper --worker-bytes 100663296 --gpu-memory-utilization 0.9

At start it compares the card's free memory with what it needs and refuses to start as vLLM
does ("Free memory on device ... on startup is less than desired GPU memory utilization").
Then it starts one worker process per mode (`worker.py`; ranks 0.., ports 29500 + rank) and,
with `--helper`, a detokenizer that holds no device memory, waits until each says it is
ready, listens on its API port and prints "ready: ...". It installs no signal handler.
`--hook FILE` and `--gate PATH` are handed to every worker (see `worker.py`).
"""

from __future__ import annotations

import argparse
import os
import select
import socket
import subprocess
import sys
import time

from labsupport.linux import procs
from labsupport.scenarios.gpu_memory_held_after_crash.card import Card

GiB = 2**30
WORKER_PORT = 29500
API_PORT = 8000


def _args(argv):
    p = argparse.ArgumentParser(prog="server")
    p.add_argument("--card", required=True)
    p.add_argument("--modes", required=True, help="comma-separated: busy, eof")
    p.add_argument("--helper", action="store_true")
    p.add_argument("--worker-bytes", type=int, required=True)
    p.add_argument("--gpu-memory-utilization", type=float, required=True)
    p.add_argument("--hook", default=None)
    p.add_argument("--gate", default=None)
    p.add_argument("--ready-timeout-s", type=float, default=60.0)
    return p.parse_args(argv)


def _spawn(a, rank: int, mode: str):
    ready_r, ready_w = os.pipe()
    control_r, control_w = os.pipe()
    argv = [
        sys.executable, "-m", "labsupport.scenarios.gpu_memory_held_after_crash.worker",
        "--rank", str(rank), "--bytes", str(a.worker_bytes), "--card", a.card, "--mode", mode,
        "--parent", str(os.getpid()), "--port", str(WORKER_PORT + rank),
        "--ready-fd", str(ready_w), "--control-fd", str(control_r),
    ]  # fmt: skip
    if a.hook:
        argv += ["--hook", a.hook]
    if a.gate:
        argv += ["--gate", a.gate]
    proc = subprocess.Popen(argv, pass_fds=(ready_w, control_r))
    os.close(ready_w)
    os.close(control_r)
    return proc, ready_r, control_w  # the server keeps control_w open: its death closes it


def main(argv=None) -> None:
    a = _args(argv)
    procs.set_name("llm-server")
    card = Card(a.card)
    free, total = card.free_bytes(), card.total_bytes()
    util = a.gpu_memory_utilization
    if free < util * total:
        print(
            f"ValueError: Free memory on device ({free / GiB:.2f}/{total / GiB:.2f} GiB) on "
            f"startup is less than desired GPU memory utilization ({util:.2f}, "
            f"{util * total / GiB:.2f} GiB). Decrease GPU memory utilization or reduce GPU "
            "memory used by other processes.",
            flush=True,
        )
        sys.exit(1)
    modes = [m for m in a.modes.split(",") if m]
    started = [_spawn(a, rank, mode) for rank, mode in enumerate(modes)]
    if a.helper:
        started.append(_spawn(a, len(modes), "helper"))
    waiting = {r: proc for proc, r, _ in started}
    deadline = time.monotonic() + a.ready_timeout_s
    while waiting and time.monotonic() < deadline:
        ready, _, _ = select.select(list(waiting), [], [], 0.2)
        for fd in ready:
            if os.read(fd, 4096).startswith(b"ready"):
                waiting.pop(fd)
            else:  # the worker closed its pipe without a word: it died
                print(f"worker {waiting.pop(fd).pid} died while starting", flush=True)
                sys.exit(1)
    if waiting:
        print("workers did not get ready in time", flush=True)
        sys.exit(1)
    api = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    api.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    api.bind(("127.0.0.1", API_PORT))
    api.listen()
    pids = " ".join(str(proc.pid) for proc, _, _ in started)
    print(f"ready: serving on 127.0.0.1:{API_PORT}, workers {pids}", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main(sys.argv[1:])
