"""Lab 292's server on call: stuck on the long request until killed, for a stack dump.

    >>> from labsupport.scenarios.cpu_pegged_gpu_idle import incident, variant
    >>> [r.role for r in incident.incident_requests(variant(0)) if r.role != "chat"]
    ['big']

`capture.capture_stuck_server` runs `incident()` in a process of its own and dumps it.
"""

from __future__ import annotations

import asyncio

from labsupport.scenarios.cpu_pegged_gpu_idle import frontend, traffic
from labsupport.scenarios.cpu_pegged_gpu_idle.records import Scale, Variant
from labsupport.scenarios.cpu_pegged_gpu_idle.server import Engine, _window, pick_device


def incident(variant: Variant, ranks: dict, dump_path: str, big_factor: float = 1.5) -> None:
    """The stuck server on call: serve until killed, a heartbeat line on stdout every 100 ms,
    stacks to `dump_path` on SIGUSR1 (faulthandler). The long request comes after ~1 s."""
    import faulthandler
    import signal

    from labsupport import bpe

    dump = open(dump_path, "w")  # noqa: SIM115 - open for faulthandler until the process ends
    faulthandler.register(signal.SIGUSR1, file=dump, all_threads=True)
    tok = bpe.from_ranks(ranks)
    dev = pick_device(Scale(0.5, 1.0))
    front = frontend.Frontend(tok, max_model_len=variant.max_model_len, path=variant.path)
    engine = Engine(dev, variant.seed)
    requests = incident_requests(variant, big_factor)
    print("ready", flush=True)
    asyncio.run(_window(front, engine, requests, limit_s=600.0, ticks=True))


def incident_requests(variant: Variant, big_factor: float = 1.5) -> list:
    """The incident run's schedule: the long request (longer still) after ~1 s, no other."""
    import dataclasses

    loud = dataclasses.replace(variant, big_chars=int(variant.big_chars * big_factor), big_at_s=0.2)
    return [r for r in traffic.schedule(loud, 5.0) if r.role != "near"]
