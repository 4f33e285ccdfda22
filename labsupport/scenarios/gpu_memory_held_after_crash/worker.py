"""An engine worker of the model server: holds device memory and a port, works until told.

    $ python -m labsupport.scenarios.gpu_memory_held_after_crash.worker --rank 0 \
          --bytes 67108864 --card /run/card --mode busy --parent 41 --port 29500 \
          --ready-fd 5 --control-fd 6

Started by the server (`server.py`), one per rank, as vLLM starts its engine and GPU workers.
It names itself (`engine-w0`, or `detokenizer` for the helper that holds no device memory),
runs a start hook if it was given one (a pickled function, called with the server's PID),
allocates its share of the card, listens on its port, says "ready" on its ready pipe, and
works. How it works decides what happens when the server dies: a `busy` worker computes and
never looks at its parent; an `eof` worker blocks on the control pipe from the server and
exits when that pipe closes; a `helper` sleeps. `--gate PATH` makes it wait for one byte on
a FIFO before anything else (the lab uses it to start the hook after the parent has died).
"""

from __future__ import annotations

import argparse
import os
import pickle
import socket
import sys
import time

from labsupport.linux import procs
from labsupport.scenarios.gpu_memory_held_after_crash.card import Card

MODES = ("busy", "eof", "helper")


def _args(argv):
    p = argparse.ArgumentParser(prog="worker")
    p.add_argument("--rank", type=int, required=True)
    p.add_argument("--bytes", type=int, required=True)
    p.add_argument("--card", required=True)
    p.add_argument("--mode", choices=MODES, required=True)
    p.add_argument("--parent", type=int, required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--ready-fd", type=int, required=True)
    p.add_argument("--control-fd", type=int, required=True)
    p.add_argument("--hook", default=None)
    p.add_argument("--gate", default=None)
    return p.parse_args(argv)


def load_hook(hook):
    """A function from what `portable.sendable` made of it: a ref, "module:name" or itself."""
    if hasattr(hook, "load"):
        return hook.load()
    if isinstance(hook, str):
        from labsupport.isolate import _resolve

        return _resolve(hook)
    return hook


def _run_hook(path: str, parent: int) -> None:
    with open(path, "rb") as f:
        hook = pickle.load(f)  # written by the lab's trial, never by the learner
    load_hook(hook)(parent)


def main(argv=None) -> None:
    a = _args(argv)
    procs.set_name("detokenizer" if a.mode == "helper" else f"engine-w{a.rank}")
    if a.gate:  # one byte each: the trial writes one per worker when it opens the gate
        gate = os.open(a.gate, os.O_RDONLY)
        os.read(gate, 1)
        os.close(gate)
    if a.hook:
        _run_hook(a.hook, a.parent)
    card = Card(a.card)
    listener = None
    if a.mode != "helper":
        card.allocate(a.bytes)
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", a.port))
        listener.listen()
    try:
        os.write(a.ready_fd, f"ready {a.rank} {os.getpid()}\n".encode())
    except BrokenPipeError:
        pass  # nobody reads: the server is gone. A worker does not check why; it works on
    os.close(a.ready_fd)
    if a.mode == "eof":
        while os.read(a.control_fd, 4096):
            pass
        sys.exit(0)  # the server is gone: its end of the pipe closed
    step = 0
    while True:  # busy: a compute loop that never asks whether its parent is alive
        if card.real and a.mode == "busy" and step % 20 == 0:
            import torch

            x = torch.ones(256, 256, device="cuda")
            (x @ x).sum().item()
        time.sleep(0.05)
        step += 1
    del listener


if __name__ == "__main__":
    main(sys.argv[1:])
