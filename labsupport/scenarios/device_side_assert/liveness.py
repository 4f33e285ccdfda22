"""Lab 285's liveness trials: a `device_alive` function asked in one fresh process, state by state.

    >>> from labsupport.scenarios.device_side_assert import liveness
    >>> trials = liveness.ask(fn)                            # doctest: +SKIP
    >>> [(t.state, t.verdict) for t in trials]               # doctest: +SKIP
    [('healthy', True), ('host_error', True), ('pending', False), ('reported', False)]

The process runs on the engine's device (the GPU when there is one, else the
`labsupport.cuda_standin` CPU stand-in) and goes through these states in order, calling
`fn(device)` in each:

- "healthy": the model ran a forward pass;
- "host_error": an index out of range was refused on the host (`logits[600]`), and caught;
- "pending": a kernel hit a device-side assertion that nothing has reported yet;
- "reported": the error was reported to the host (and caught).

`ask` returns, per state, what the function answered, what it raised, how long it took.
"""

from __future__ import annotations

from dataclasses import dataclass

from labsupport import isolate, wire

STATES = ("healthy", "host_error", "pending", "reported")


@wire.record
@dataclass
class Trial:
    state: str
    verdict: object  # what fn returned (None if it raised)
    error: str | None  # what fn raised, if it did
    seconds: float  # how long fn took
    ok: bool = True  # the trial process itself ran (False: it died or timed out)
    why: str | None = None


def ask(fn, *, timeout_s: float = 90.0) -> list[Trial]:
    """Call `fn(device)` in each state, in one fresh process (fn: a reference or a function)."""
    from labsupport import device
    from labsupport.portable import sendable

    where = "cuda" if device.cuda_available() else "cpu"
    sent = sendable(fn) if callable(fn) and not hasattr(fn, "load") else fn
    result = isolate.run_function(
        "labsupport.scenarios.device_side_assert.liveness:trials",
        sent,
        where,
        timeout_s=timeout_s,
    )
    if result.ok and isinstance(result.value, list):
        return result.value
    why = result.error or "the process died"
    return [Trial(state, None, None, 0.0, ok=False, why=why) for state in STATES]


def _poison(where: str, report: bool) -> None:
    """A kernel reads row 99 of a 16-row table; with `report`, a sync then reports it."""
    import torch

    try:
        table = torch.nn.Embedding(16, 4).to(where)
        out = table(torch.tensor([3, 99], device=where))  # BUG (on purpose): row 99 of 16
        if report:
            out.sum().item()
    except RuntimeError:  # reported now, or the context was already dead
        pass


def _ask(fn, state: str, device: str) -> Trial:
    import time

    t0 = time.perf_counter()
    try:
        verdict, error = fn(device), None
    except Exception as exc:
        verdict, error = None, f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
    seconds = time.perf_counter() - t0
    if not isinstance(verdict, (bool, type(None))):
        verdict = repr(verdict)[:80]
    return Trial(state, verdict, error, seconds)


def trials(fn, where: str) -> list[Trial]:
    """In the fresh process: each state in turn, and fn(device) asked in it."""
    import torch

    from labsupport import cuda_standin

    torch.set_num_threads(1)
    fn = fn.load() if hasattr(fn, "load") else isolate._resolve(fn) if isinstance(fn, str) else fn
    device = "cuda:0" if where == "cuda" else "cpu"
    out = []
    with cuda_standin.device_thread(where):
        model = torch.nn.Sequential(torch.nn.Embedding(64, 16), torch.nn.Linear(16, 64)).to(where)
        model(torch.arange(8, device=where)).sum().item()
        out.append(_ask(fn, "healthy", device))
        try:
            torch.zeros(8, device=where)[9]
        except IndexError:
            pass
        out.append(_ask(fn, "host_error", device))
        _poison(where, report=False)
        out.append(_ask(fn, "pending", device))
        _poison(where, report=True)
        out.append(_ask(fn, "reported", device))
    return out
