"""Lab 297's reference answers: which rank broke the collective order, the fixed job, the rubric.

    >>> from tests.labs.truth import collective_timeout as truth
    >>> truth.first_unfinished(truth.HAND_MADE)
    {'rank': 0, 'op': 'all_reduce', 'seq': 5}
    >>> truth.variant_answer(0)
    {'rank': 1, 'op': 'all_reduce', 'seq': 17}

Never part of the package: a candidate with `labsupport` installed cannot import the rule that
grades them. The checks of tests/labs/test_297_collective_timeout.py compare the learner's
`first_unfinished` with the one here on written traces (`cases(seed)`, built so that the
usual wrong readings give other answers) and on the flight-recorder dumps of a real run; they
judge a step function by `expected_results` and `expected_collectives`, settings by the bounds
here.
"""

from __future__ import annotations

import random

from labsupport.distributed import flight
from labsupport.scenarios import collective_timeout as scenario
from labsupport.scenarios.collective_timeout import job
from tests.labs.truth.collective_timeout_dumps import HAND_MADE, cases, entry  # noqa: F401

MIN_MARGIN = 1.5  # the timeout over the slowest legitimate wait
MAX_FACTOR = 5.0  # past this many times the slowest wait, a desync sits unreported too long
MIN_BUFFER = 16  # flight-recorder entries: a few steps of collectives, at least
MAX_BUFFER = 1_000_000
REPORT_SLACK_S = 4.0  # from the timeout to every rank gone with its dump (dumps, a busy machine)
ALLOWED_PREFIXES = ("TORCH_", "NCCL_")
INTERFACE_VARS = ("GLOO_SOCKET_IFNAME", "NCCL_SOCKET_IFNAME", "TP_SOCKET_IFNAME")


# ---- the diagnosis ----------------------------------------------------------------------------
def _fp(c: flight.Collective) -> tuple:
    return (c.op, c.sizes)


def first_unfinished(traces: dict) -> dict:
    """The first collective not finished on every rank, the op the program runs there, and the
    rank that broke the order (None when every rank entered that same collective)."""
    by = {int(r): {c.seq: c for c in flight.collectives(t)} for r, t in traces.items()}
    ranks = sorted(by)
    held = [min(cs) for cs in by.values() if cs]
    seq = max(held) if held else 1  # the first sequence number every rank's buffer still holds
    while all(seq in cs and cs[seq].completed for cs in by.values()):
        seq += 1
    present = {r: by[r][seq] for r in ranks if seq in by[r]}
    expected = _expected(by, ranks, seq, present)
    missing = [r for r in ranks if r not in present]
    if missing:
        return {"rank": missing[0], "op": expected[0], "seq": seq}
    odd = [r for r in ranks if _fp(present[r]) != expected]
    return {"rank": odd[0] if odd else None, "op": expected[0], "seq": seq}


def _expected(by: dict, ranks: list, seq: int, present: dict) -> tuple:
    """What the program runs at `seq`: what followed the collective before it, every time the
    ranks agreed on it; without that history, what most ranks run there."""
    agreed = {}
    for s in sorted({s for cs in by.values() for s in cs}):
        if s >= seq:
            break
        fps = {_fp(by[r][s]) for r in ranks if s in by[r]}
        if len(fps) == 1 and all(s in by[r] for r in ranks):
            agreed[s] = fps.pop()
    follows: dict = {}
    for s, fp in agreed.items():
        if s + 1 in agreed:
            follows.setdefault(fp, set()).add(agreed[s + 1])
    before = agreed.get(seq - 1)
    if before in follows and len(follows[before]) == 1:
        return next(iter(follows[before]))
    counts: dict = {}
    for c in present.values():
        counts[_fp(c)] = counts.get(_fp(c), 0) + 1
    return max(
        counts, key=lambda fp: (counts[fp], -min(r for r, c in present.items() if _fp(c) == fp))
    )


def near_misses(traces: dict) -> dict[str, dict]:
    """What the usual wrong readings of the same traces answer, named for the hint."""
    want = first_unfinished(traces)
    by = {int(r): flight.collectives(t) for r, t in traces.items()}
    out = {}
    if want["rank"] is not None and want["seq"] in {c.seq for c in by[want["rank"]]}:
        own = next(c for c in by[want["rank"]] if c.seq == want["seq"])
        if own.op != want["op"]:
            out["the collective that rank ran instead, not the one the program runs there"] = {
                **want,
                "op": own.op,
            }
    out["the sequence number counted from 0, as TORCH_DISTRIBUTED_DEBUG prints it"] = {
        **want,
        "seq": want["seq"] - 1,
    }
    shortest = min(by, key=lambda r: (len(by[r]), r))
    out["the rank with the fewest entries in its buffer"] = {**want, "rank": shortest}
    waiting = [r for r, cs in by.items() if cs and not cs[-1].completed]
    if waiting:
        out["the first rank still waiting"] = {**want, "rank": min(waiting)}
        out["the last rank still waiting"] = {**want, "rank": max(waiting)}
    return {k: v for k, v in out.items() if v != want}


def variant_answer(seed: int) -> dict:
    """What the production job of variant `seed` must be found to do."""
    q = scenario.variant(seed).quiet
    return {"rank": q.rank, "op": q.op, "seq": scenario.variant(seed).plan.seq(q.step, q.op)}


def answer_of(got) -> dict | None:
    """The learner's answer normalised (op names without a backend prefix); None if malformed."""
    if not isinstance(got, dict) or not {"rank", "op", "seq"} <= set(got):
        return None
    rank, op, seq = got["rank"], got["op"], got["seq"]
    if rank is not None and (isinstance(rank, bool) or not isinstance(rank, int)):
        return None
    if isinstance(seq, bool) or not isinstance(seq, int) or not isinstance(op, str):
        return None
    return {"rank": rank, "op": flight.op_name(op.strip().lower()), "seq": seq}


# ---- the fix: what a right step function gives, and what each rank must call ------------------
def expected_results(plan: job.Plan) -> list[dict]:
    """Per step, what every rank must end up with: the batch, the summed hidden state (as its
    integer sum) and the batch's next tokens, FINISHED for ranks whose requests all finished."""
    out = []
    for step in range(plan.steps):
        tokens = job.tokens_for(plan, step)
        parts = [
            job.partial_for(plan, r, tokens)
            for r in range(plan.world_size)
            if not plan.is_quiet(r, step, "all_reduce")
        ]
        hidden = sum(parts) if parts else job.partial_for(plan, 0, tokens) * 0
        gathered = []
        for r in range(plan.world_size):
            if plan.is_quiet(r, step, "all_gather"):
                gathered += [job.FINISHED] * plan.per_rank
            else:
                gathered += [int(t) for t in job.sample_for(plan, r, hidden)]
        out.append(
            {
                "step": step,
                "tokens": [int(t) for t in tokens],
                "hidden": int(hidden.double().sum()),
                "out": gathered,
            }
        )
    return out


def expected_collectives(plan: job.Plan) -> list[tuple]:
    """(seq, op, sizes) every rank must have run, in order: the three of every step."""
    sizes = {
        "broadcast": ((plan.batch,),),
        "all_reduce": ((plan.batch, plan.hidden),),
        "all_gather": ((plan.per_rank,),),
    }
    return [(plan.seq(step, op), op, sizes[op]) for step in range(plan.steps) for op in job.OPS]


# ---- the fix: the settings ---------------------------------------------------------------------
def timeout_bounds(slowest_wait_s: float) -> tuple[float, float]:
    """(least, most) collective timeout for a job whose slowest legitimate wait is given."""
    return MIN_MARGIN * slowest_wait_s, MAX_FACTOR * slowest_wait_s


def settings_problems(settings, slowest_wait_s: float) -> list[str]:
    """What is wrong with `job_settings(slowest_wait_s)`'s answer ([] when nothing)."""
    if not isinstance(settings, dict):
        return [
            f"return a dict {{'timeout_s': ..., 'env': {{...}}}}, got {type(settings).__name__}"
        ]
    timeout, env = settings.get("timeout_s"), settings.get("env")
    problems = []
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout != timeout:
        return [f"timeout_s must be a number of seconds, got {timeout!r}"]
    if not isinstance(env, dict) or not all(isinstance(k, str) for k in env):
        return [f"env must be a dict of environment variables, got {env!r}"]
    least, most = timeout_bounds(slowest_wait_s)
    if timeout < least:
        problems.append(
            f"timeout_s={timeout:g} for a job whose healthy ranks wait up to {slowest_wait_s:g} s "
            f"(rank 0 saving a checkpoint): a healthy job would time out. Leave a margin (at "
            f"least {MIN_MARGIN:g}x the slowest wait)"
        )
    if timeout > most:
        problems.append(
            f"timeout_s={timeout:g} for a job whose slowest healthy wait is {slowest_wait_s:g} s: "
            f"a job that stopped sits that long before anyone knows (more than "
            f"{MAX_FACTOR:g}x the slowest wait). Size it from the wait, not from a habit"
        )
    odd = sorted(k for k in env if not k.startswith(ALLOWED_PREFIXES))
    if odd:
        problems.append(
            f"env sets {odd}: only TORCH_* and NCCL_* settings belong here (the job's own "
            "environment is not yours to change)"
        )
    iface = sorted(k for k in env if k in INTERFACE_VARS)
    if iface:
        problems.append(
            f"env sets {iface}: this job ran for many steps before it stopped, so its ranks "
            "reach each other; the interface is not what failed. Leave it alone"
        )
    if str(env.get("TORCH_DISTRIBUTED_DEBUG", "")).upper() == "DETAIL":
        problems.append(
            "TORCH_DISTRIBUTED_DEBUG=DETAIL checks every collective's fingerprint with an extra "
            "collective first: a debugging setting, not production's (the PyTorch docs warn of "
            "its cost)"
        )
    size, dump = flight.settings(env)
    if size < MIN_BUFFER:
        problems.append(
            "the flight recorder is off (TORCH_FR_BUFFER_SIZE, formerly "
            "TORCH_NCCL_TRACE_BUFFER_SIZE, is its number of entries): a timeout would leave no "
            f"record of what each rank was doing (keep at least {MIN_BUFFER} entries)"
        )
    elif size > MAX_BUFFER:
        problems.append(f"a flight recorder of {size} entries: keep it below {MAX_BUFFER}")
    if not dump:
        problems.append(
            "nothing dumps the flight recorder when a collective times out "
            "(TORCH_NCCL_DUMP_ON_TIMEOUT=1): the record dies with the process"
        )
    return problems


def static_waits(seed: int) -> list[float]:
    """Slowest waits (s) `job_settings` is asked about without running anything."""
    rng = random.Random(f"297-waits-{seed}")
    return [round(rng.uniform(0.5, 1.5), 2), 45.0, 600.0, round(rng.uniform(1500, 2500), 1)]


def check_wait_s(plan: job.Plan) -> float:
    """The slowest wait the grader tells job_settings about for `plan`: rank 0's checkpoint
    plus one step, as the notebook measures it from a run that finished."""
    return round(plan.checkpoint_s + plan.step_s + 0.05, 2)


# ---- interviewer material ----------------------------------------------------------------------
def answer_key(seed: int) -> dict:
    """The variant's graded ground truth."""
    v = scenario.variant(seed)
    return {
        "desync": variant_answer(seed),
        "step": v.quiet.step,
        "written_traces": {k: first_unfinished(t) for k, t in cases(seed).items()},
        "checkpoint": {"every_steps": v.plan.checkpoint_every, "seconds": v.plan.checkpoint_s},
        "timeout": f"between {MIN_MARGIN}x and {MAX_FACTOR}x the slowest healthy wait",
    }


_WHY = {
    "broadcast": "it believed the batch had not changed and reused the last one",
    "all_reduce": "no token of the batch was routed to its experts",
    "all_gather": "every request it samples for had finished",
}


def expected(seed: int) -> dict:
    """What the interviewer should see in variant `seed` (2-core CPU; a GPU changes little)."""
    v = scenario.variant(seed)
    a = variant_answer(seed)
    other = 1 - a["rank"]
    after = {"broadcast": "all_reduce", "all_reduce": "all_gather", "all_gather": "broadcast"}
    return {
        "incident run": (
            f"both ranks report steps 0-{v.quiet.step - 1}, then nothing; no error, no exit "
            "(gloo's default timeout is 30 min, NCCL's 10 min); the lab stops it as hung"
        ),
        "wrong interface": (
            "init_process_group fails on both ranks within a second: 'Unable to find address "
            "for: <name>' - a network/interface problem shows at start, not after N steps"
        ),
        "DETAIL": (
            f"both ranks raise 'Detected mismatch between collectives on ranks' at sequence "
            f"{a['seq'] - 1} (DETAIL counts from 0): rank {a['rank']} runs "
            f"{after[a['op']].upper()}, rank {other} runs {a['op'].upper()}"
        ),
        "flight recorder": (
            f"seqs up to {a['seq'] - 1} done on both; at {a['seq']} rank {other} waits in "
            f"{a['op']}, rank {a['rank']} in {after[a['op']]}; first_unfinished -> {a}"
        ),
        "why": f"rank {a['rank']}: {_WHY[a['op']]}, a rank-local condition around a collective",
        "a passing fix": (
            "decode_step calls broadcast, all_reduce and all_gather on every rank every step, "
            "with zeros (all_reduce) or FINISHED (-1) tokens (all_gather) when the rank has "
            "nothing of its own; job_settings: timeout about 3x the slowest wait, "
            "TORCH_FR_BUFFER_SIZE > 0, TORCH_NCCL_DUMP_ON_TIMEOUT=1"
        ),
        "headline": "the production job is still silent when the lab stops it; with the fix's "
        "settings it exits with both dumps about timeout + 0.5 s after its last step",
    }


RUBRIC = {
    "diagnosis": {
        "strong": (
            "Rules out the network from the evidence (init succeeded, N steps ran, a wrong "
            "interface fails at init), turns on the flight recorder, and reads the dumps: the "
            "first sequence number not finished everywhere, what the program runs there (what "
            "followed the previous collective every step), and the rank whose entry differs or "
            "is missing; then finds the rank-local condition in the code."
        ),
        "adequate": (
            "Finds that the ranks disagree from DETAIL's fingerprint message or the dumps, but "
            "names the wrong rank (the one that waits) or the collective the rank ran instead."
        ),
        "weak": (
            "Blames the network, the firewall or NCCL_SOCKET_IFNAME, or raises the timeout, "
            "without looking at what each rank was running."
        ),
    },
    "fix": {
        "strong": (
            "Every rank calls every collective every step, contributing a neutral value when it "
            "has nothing (zeros to a sum, a marker to a gather); the timeout is sized from the "
            "slowest legitimate wait with a margin, the flight recorder is on and dumped on "
            "timeout, so the next desync reports itself in seconds with its evidence."
        ),
        "adequate": (
            "Fixes the code but keeps the default timeout and no recorder (the next one hangs "
            "silently for 10-30 min), or sizes the timeout by habit."
        ),
        "weak": (
            "Raises the timeout, pins the socket interface, adds a barrier or wraps collectives "
            "in try/except: the ranks still disagree, the job still stops."
        ),
    },
    "reasoning": {
        "strong": (
            "Explains that collectives match by order, not by name, so any rank-dependent "
            "branch around one desynchronises the job; that most runtime timeouts are this, not "
            "the network; NCCL's 10 min default and what TORCH_NCCL_ASYNC_ERROR_HANDLING does; "
            "the flight recorder and fr_trace; why DETAIL is for debugging only."
        ),
        "adequate": "Knows the tools but not why the timeout's size matters both ways.",
        "weak": "Treats the timeout as a network setting.",
    },
}
