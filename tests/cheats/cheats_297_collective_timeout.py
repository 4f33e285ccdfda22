"""Lab 297's cheats: wrong submissions that must fail a check they target."""

from tests.cheats.corpus import Cheat

DIAGNOSIS = ("test_first_unfinished_names_the_rank_the_collective_and_its_sequence_number",)

HARD_CODED = """
def first_unfinished(traces):
    return {"rank": 1, "op": "all_reduce", "seq": 17}  # what the default variant's dumps say
"""

FROM_THE_VARIANT = """
def first_unfinished(traces):
    from labsupport.scenarios import collective_timeout as scenario

    v = scenario.variant(0)
    return {"rank": v.quiet.rank, "op": v.quiet.op, "seq": v.plan.seq(v.quiet.step, v.quiet.op)}
"""

WAITING_RANK = '''
def first_unfinished(traces):
    """The DETAIL reading: the first rank still waiting, in the collective it waits in."""
    for rank in sorted(traces):
        last = traces[rank][-1]
        if not last.get("retired") and last.get("state") != "completed":
            op = last["profiling_name"].rpartition(":")[2]
            return {"rank": rank, "op": op, "seq": last["collective_seq_id"]}
    return {"rank": None, "op": "", "seq": 0}
'''

SUM_WITHOUT_ALL_REDUCE = '''
def decode_step(work):
    """Recompute the other ranks' parts from the package instead of exchanging them."""
    import torch
    import torch.distributed as dist

    from labsupport.scenarios.collective_timeout import job

    plan = work._plan
    tokens = work.tokens if work.rank == 0 else torch.empty(work.batch_shape, dtype=torch.int64)
    dist.broadcast(tokens, src=0)
    parts = [job.partial_for(plan, r, tokens) for r in range(work.world_size)
             if not plan.is_quiet(r, work.step, "all_reduce")]
    hidden = sum(parts) if parts else torch.zeros(work.hidden_shape)
    mine = work.sample(hidden) if work.has_live_requests else torch.full(work.out_shape, -1)
    out = [torch.empty_like(mine) for _ in range(work.world_size)]
    dist.all_gather(out, mine)
    return {"tokens": tokens, "hidden": hidden, "out": torch.cat(out)}
'''

NO_GATHER_ANYWHERE = '''
def decode_step(work):
    """Nobody gathers, so nobody waits in a gather: no hang, and no batch either."""
    import torch
    import torch.distributed as dist

    tokens = work.tokens if work.rank == 0 else torch.empty(work.batch_shape, dtype=torch.int64)
    dist.broadcast(tokens, src=0)
    hidden = work.expert_output(tokens)
    hidden = torch.zeros(work.hidden_shape) if hidden is None else hidden
    dist.all_reduce(hidden)
    return {"tokens": tokens, "hidden": hidden, "out": None}
'''

BARRIER_FIRST = '''
def decode_step(work):
    """Synchronise the ranks with a barrier before each step, keep production's step."""
    import torch.distributed as dist

    from labsupport.scenarios.collective_timeout import job

    dist.barrier()
    return job.decode_step(work)
'''

BIGGER_TIMEOUT_AND_INTERFACE = '''
def job_settings(slowest_wait_s):
    """The classic answer: a long timeout, pin the interface, no InfiniBand."""
    return {"timeout_s": 7200.0, "env": {"NCCL_SOCKET_IFNAME": "eth0", "NCCL_IB_DISABLE": "1"}}
'''

DETAIL_IN_PRODUCTION = """
def job_settings(slowest_wait_s):
    return {
        "timeout_s": 3 * slowest_wait_s,
        "env": {"TORCH_DISTRIBUTED_DEBUG": "DETAIL", "TORCH_FR_BUFFER_SIZE": "2000",
                "TORCH_NCCL_DUMP_ON_TIMEOUT": "1"},
    }
"""

SHORT_TIMEOUT_NO_RECORD = '''
def job_settings(slowest_wait_s):
    """Stop the hang fast; keep nothing."""
    return {"timeout_s": 3 * slowest_wait_s, "env": {}}
'''

SETTINGS = ("test_job_settings_are_bounded_from_both_sides",)

CHEATS = [
    Cheat(297, "the default variant's answer", "hard-coded", (HARD_CODED,), DIAGNOSIS),
    Cheat(
        297, "the answer read from the variant", "package helper", (FROM_THE_VARIANT,), DIAGNOSIS
    ),
    Cheat(297, "the first rank still waiting", "debrief bypass", (WAITING_RANK,), DIAGNOSIS),
    Cheat(
        297,
        "the sum recomputed from the package",
        "package helper",
        (SUM_WITHOUT_ALL_REDUCE,),
        ("test_every_rank_calls_the_same_collectives",),
    ),
    Cheat(
        297,
        "no all_gather on any rank",
        "symptom hiding",
        (NO_GATHER_ANYWHERE,),
        ("test_results_are_what_the_ranks_should_compute",),
    ),
    Cheat(
        297,
        "a barrier before production's step",
        "debrief bypass",
        (BARRIER_FIRST,),
        ("test_every_rank_finishes_every_step",),
    ),
    Cheat(
        297,
        "2 h timeout and a pinned interface",
        "debrief bypass",
        (BIGGER_TIMEOUT_AND_INTERFACE,),
        SETTINGS,
    ),  # fmt: skip
    Cheat(
        297,
        "TORCH_DISTRIBUTED_DEBUG=DETAIL in production",
        "debrief bypass",
        (DETAIL_IN_PRODUCTION,),
        SETTINGS,
    ),  # fmt: skip
    Cheat(
        297,
        "a short timeout and no flight recorder",
        "symptom hiding",
        (SHORT_TIMEOUT_NO_RECORD,),
        SETTINGS,
    ),  # fmt: skip
]
