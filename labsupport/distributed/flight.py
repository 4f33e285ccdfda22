"""The flight recorder: each rank's last collectives, as PyTorch's own ring buffer keeps them.

    >>> from labsupport.distributed import flight
    >>> entry = {"collective_seq_id": 7, "profiling_name": "gloo:all_reduce",
    ...          "input_sizes": [[4, 16]], "state": "scheduled", "retired": False}
    >>> c = flight.Collective.of(entry)
    >>> c.seq, c.op, c.sizes, c.completed
    (7, 'all_reduce', ((4, 16),), False)
    >>> flight.settings({"TORCH_FR_BUFFER_SIZE": "64", "TORCH_NCCL_DUMP_ON_TIMEOUT": "1"})
    (64, True)

With `TORCH_FR_BUFFER_SIZE` (formerly `TORCH_NCCL_TRACE_BUFFER_SIZE`) above 0, every process
group records its collectives - sequence number, op, sizes, state - in a ring buffer of that
many entries; `torch._C._distributed_c10d._dump_fr_trace_json()` returns it (the JSON twin of
the pickle that NCCL's watchdog writes on a timeout with `TORCH_NCCL_DUMP_ON_TIMEOUT=1`, and
that `python -m torch.distributed.flight_recorder.fr_trace` analyses). `dump_entries()` takes
the dump inside a rank; `Collective` reads one entry; `table()` lines ranks up by sequence
number for reading.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from labsupport import wire

BUFFER_ENV = ("TORCH_FR_BUFFER_SIZE", "TORCH_NCCL_TRACE_BUFFER_SIZE")  # new name first
DUMP_ENV = "TORCH_NCCL_DUMP_ON_TIMEOUT"
# what a dumped entry keeps (the rest - thread ids, stack frames - stays on the rank)
FIELDS = (
    "record_id", "pg_id", "collective_seq_id", "p2p_seq_id", "op_id", "profiling_name",
    "time_created_ns", "input_sizes", "input_dtypes", "output_sizes", "output_dtypes", "state",
    "retired", "timeout_ms", "is_p2p",
)  # fmt: skip


def settings(env) -> tuple[int, bool]:
    """(ring-buffer entries, dump on timeout) that `env` asks the flight recorder for."""
    size = 0
    for name in BUFFER_ENV:
        text = str(env.get(name, "")).strip()
        if text:
            try:
                size = int(text)
            except ValueError:
                size = 0
            break
    return size, str(env.get(DUMP_ENV, "")).strip() == "1"


def dump_entries() -> list[dict]:
    """In a rank: its flight recorder's entries, oldest first ([] when it records nothing)."""
    from torch._C._distributed_c10d import _dump_fr_trace_json

    raw = json.loads(_dump_fr_trace_json(True, False))
    entries = raw.get("entries") or []
    return [{k: e[k] for k in FIELDS if k in e} for e in entries]


def op_name(profiling_name: str) -> str:
    """'gloo:all_reduce' and 'nccl:all_reduce' are both 'all_reduce'."""
    return str(profiling_name).rpartition(":")[2]


@wire.record
@dataclass(frozen=True)
class Collective:
    """One flight-recorder entry: the rank's `seq`-th collective on its process group."""

    seq: int
    op: str
    sizes: tuple  # one shape per input tensor
    state: str  # "scheduled", "started" or "completed" (NCCL discovers the last two)
    completed: bool  # finished on this rank (state completed, or retired from the buffer)

    @classmethod
    def of(cls, entry: dict) -> Collective:
        state = str(entry.get("state", ""))
        return cls(
            seq=int(entry["collective_seq_id"]),
            op=op_name(entry.get("profiling_name", "")),
            sizes=tuple(tuple(int(n) for n in s) for s in entry.get("input_sizes") or ()),
            state=state,
            completed=state == "completed" or bool(entry.get("retired")),
        )


def collectives(entries: list[dict]) -> list[Collective]:
    """A rank's entries as Collective records, by sequence number (point-to-point left out)."""
    out = [Collective.of(e) for e in entries if not e.get("is_p2p")]
    return sorted(out, key=lambda c: c.seq)


def table(traces: dict[int, list[dict]], last: int = 9) -> str:
    """The last `last` sequence numbers, one column per rank: op, sizes, done or waiting."""
    by_rank = {r: {c.seq: c for c in collectives(t)} for r, t in sorted(traces.items())}
    seqs = sorted({s for cs in by_rank.values() for s in cs})[-last:]
    width = 30
    lines = ["seq   " + "".join(f"rank {r}".ljust(width) for r in by_rank)]
    for s in seqs:
        cells = []
        for cs in by_rank.values():
            c = cs.get(s)
            if c is None:
                cells.append("-".ljust(width))
                continue
            shape = ",".join("x".join(map(str, size)) for size in c.sizes)
            cells.append(f"{c.op}[{shape}] {'done' if c.completed else 'WAITING'}".ljust(width))
        lines.append(f"{s:<6}" + "".join(cells))
    return "\n".join(line.rstrip() for line in lines)
