"""Lab 297's written flight-recorder dumps: a hand-made one and, per seed, one of each kind.

    >>> from tests.labs.truth import collective_timeout_dumps as dumps
    >>> sorted(dumps.HAND_MADE), dumps.HAND_MADE[0][-1]["profiling_name"]
    ([0, 1], 'gloo:all_gather')
    >>> len(dumps.cases(0))
    6

Entries carry the fields a dump holds (`labsupport.distributed.flight.FIELDS`), with gloo's
states ("scheduled", retired when finished) or NCCL's ("started", "completed"). The cases are
built so that the usual wrong readings (the collective the rank ran instead, counting from 0,
the shortest buffer, the first or last rank waiting) give other answers than the right one.
"""

from __future__ import annotations

import random


def entry(seq: int, op: str, sizes, done: bool, *, backend: str = "gloo", t_ns: int = 0) -> dict:
    """A flight-recorder entry as a dump holds it (the fields `flight.FIELDS` keeps)."""
    if backend == "nccl":  # NCCL's watchdog discovers starts and completions
        state = "completed" if done else "started"
    else:  # gloo's entries stay "scheduled"; a finished one is retired
        state = "scheduled"
    return {
        "record_id": seq - 1,
        "pg_id": 0,
        "collective_seq_id": seq,
        "p2p_seq_id": 0,
        "op_id": seq,
        "profiling_name": f"{backend}:{op}",
        "time_created_ns": t_ns or 1_795_000_000_000_000_000 + seq * 3_000_000,
        "input_sizes": [list(s) for s in sizes],
        "input_dtypes": ["Float"] * len(sizes),
        "output_sizes": [list(s) for s in sizes],
        "output_dtypes": ["Float"] * len(sizes),
        "state": state,
        "retired": bool(done) and backend == "gloo",
        "timeout_ms": 600_000 if backend == "nccl" else 2000,
        "is_p2p": False,
    }


# A tiny dump written by hand, answer known: each step is broadcast, all_reduce, all_gather; in
# step 1 rank 0 left out the all_reduce (seq 5) and went on to the all_gather. Every check asks
# it first, so a stub fails at once.
_STEP = (("broadcast", ((8,),)), ("all_reduce", ((8, 16),)), ("all_gather", ((4,),)))
HAND_MADE = {
    0: [entry(s, *_STEP[(s - 1) % 3], True) for s in range(1, 5)] + [entry(5, *_STEP[2], False)],
    1: [entry(s, *_STEP[(s - 1) % 3], True) for s in range(1, 5)] + [entry(5, *_STEP[1], False)],
}


def _program(rng: random.Random, n_ops: int) -> list[tuple]:
    ops = rng.sample(["broadcast", "all_reduce", "all_gather", "reduce_scatter"], n_ops)
    return [(op, ((rng.choice((4, 8, 16)), rng.choice((16, 32, 64))),)) for op in ops]


def _written(rng: random.Random, *, world: int, kind: str, culprit: int | None, backend: str,
             truncate: bool) -> dict:  # fmt: skip
    """Traces of `world` ranks running one program step after step until something breaks at
    seq `stop`: `culprit` left one collective out (kind "left_out"), never reached it
    ("never_reached"), or every rank entered it ("all_entered")."""
    program = _program(rng, rng.choice((3, 4)))
    n = len(program)
    stop = rng.randint(3 * n, 5 * n) + 1  # the first collective that does not finish
    ahead = rng.randint(0, 2) if backend == "nccl" else 0  # NCCL: the CPU runs ahead, async
    traces = {}
    for r in range(world):
        seqs = []
        for s in range(1, stop):
            seqs.append((s, program[(s - 1) % n], True))
        if kind == "never_reached" and r == culprit:
            pass
        elif kind == "left_out" and r == culprit:
            for k in range(ahead + 1):
                seqs.append((stop + k, program[(stop + k) % n], False))
        else:
            for k in range(ahead + 1):
                seqs.append((stop + k, program[(stop - 1 + k) % n], False))
        if truncate:  # the ring buffer dropped each rank's oldest entries, not all equally
            seqs = seqs[rng.randint(1, n) :]
        traces[r] = [entry(s, op, sizes, done, backend=backend) for s, (op, sizes), done in seqs]
    return traces


def cases(seed: int) -> dict[str, dict]:
    """Written traces for `seed`: label -> {rank: entries}, each built so that a wrong reading
    (the collective the rank ran instead, counting from 0, the shortest buffer, the first or
    last rank waiting) gives another answer."""
    rng = random.Random(f"297-{seed}")
    out = {}
    culprit0 = rng.randint(0, 1)
    out[f"two ranks, rank {culprit0} left one collective out"] = _written(
        rng, world=2, kind="left_out", culprit=culprit0, backend="gloo", truncate=False
    )
    out["two ranks, rank 0 left one collective out, buffers cut at different points"] = _written(
        rng, world=2, kind="left_out", culprit=0, backend="gloo", truncate=True
    )
    out["two ranks, rank 1 never reached a collective (its buffer ends earlier)"] = _written(
        rng, world=2, kind="never_reached", culprit=1, backend="gloo", truncate=False
    )
    out["four ranks on NCCL, one left a collective out and the CPU ran ahead"] = _written(
        rng, world=4, kind="left_out", culprit=rng.randint(1, 3), backend="nccl", truncate=True
    )
    out["three ranks, all entered the same collective (no rank broke the order)"] = _written(
        rng, world=3, kind="all_entered", culprit=None, backend="gloo", truncate=True
    )
    out["three ranks, rank 2 never reached a collective, buffers cut"] = _written(
        rng, world=3, kind="never_reached", culprit=2, backend="gloo", truncate=True
    )
    return out
