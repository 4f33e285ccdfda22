"""Progress bars for workloads that take more than a few seconds, in a notebook and a terminal.

    >>> from labsupport import progress
    >>> with progress.bar(3, "arms", disable=True) as bar:
    ...     for _ in range(3):
    ...         bar.update()
    >>> with progress.timed(0.2, "one arm", disable=True):
    ...     pass

`tqdm.auto` draws an ipywidgets bar in JupyterLab and a text bar in a terminal. A workload in a
child process reports with `progress.report(done, total)` (a marker line on its stdout);
`progress.echo(desc)` is an `isolate` echo callback that turns those lines into a bar here and
prints the child's other lines. `timed(expected_s, desc)` shows a bar that fills with elapsed
time, for one long step whose length is known. `SRELAB_PROGRESS=0` switches bars off (tests).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time

MARKER = "srelab-progress "


def enabled() -> bool:
    return os.environ.get("SRELAB_PROGRESS", "1") not in ("0", "off", "no")


def bar(total: float | None, desc: str, *, unit: str = "it", disable: bool | None = None):
    """A tqdm bar (ipywidgets in a notebook, text in a terminal)."""
    from tqdm.auto import tqdm

    off = (not enabled()) if disable is None else disable
    return tqdm(total=total, desc=desc, unit=unit, disable=off, leave=True, file=sys.stderr)


@contextlib.contextmanager
def timed(expected_s: float, desc: str, *, disable: bool | None = None):
    """A bar that fills over `expected_s` seconds (capped at 99 % until the step ends)."""
    steps = 100
    with bar(steps, desc, unit="%", disable=disable) as b:
        done = threading.Event()

        def tick() -> None:
            start = time.monotonic()
            while not done.wait(0.25):
                target = min(steps - 1, int(steps * (time.monotonic() - start) / expected_s))
                if target > b.n:
                    b.update(target - b.n)

        thread = threading.Thread(target=tick, daemon=True)
        thread.start()
        try:
            yield b
        finally:
            done.set()
            thread.join(1.0)
            b.update(steps - b.n)


def report(done: int, total: int) -> None:
    """In a child process: tell the parent's `echo` bar how far it is."""
    print(f"{MARKER}{done}/{total}", flush=True)


def echo(desc: str, *, show_other_lines: bool = True):
    """An isolate `echo` callback: marker lines drive a bar, other lines are printed."""
    state: dict = {"bar": None}

    def handle(line: str) -> None:
        if line.startswith(MARKER):
            done, _, total = line[len(MARKER) :].partition("/")
            try:
                d, t = int(done), int(total)
            except ValueError:
                return
            if state["bar"] is None:
                state["bar"] = bar(t, desc)
            b = state["bar"]
            b.update(max(0, d - b.n))
            if d >= t:
                b.close()
        elif show_other_lines:
            print(line, flush=True)

    return handle
