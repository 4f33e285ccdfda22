"""Wrong submissions for lab 290 that must fail a check (see tests/cheats/corpus.py).

The default variant (seed 0) is the one where full collections cause the spikes; `AT_SEED`
holds fixes for the wrong cause in the other variants (tests/scenarios/p99_spikes/
test_wrong_cause.py runs them at their seed).
"""

from tests.cheats.corpus import Cheat

HARD_CODED = """
def explain_slow_requests(run, percentile=99):
    # what the default variant's run printed once
    return {"cause": "collections", "slow": 7, "stalls": 2, "explained": 7}
"""

PACKAGE_HELPER = """
from labsupport.scenarios import p99_spikes
from labsupport.scenarios.p99_spikes.records import intervals


def explain_slow_requests(run, percentile=99):
    # the log with the most time in long entries, by the package's own table
    table = p99_spikes.instrument_table(run)
    best = max(table, key=lambda row: row["ms in entries >= 20 ms"])
    spans = intervals(getattr(run, best["log"]))
    ttft = [r.ttft_ms for r in run.requests]
    cut = sorted(ttft)[int(len(ttft) * percentile / 100)]
    slow = [r for r in run.requests if r.ttft_ms > cut]
    explained = sum(
        any(s <= r.first_token_s and e >= r.arrival_s for s, e in spans) for r in slow
    )
    return {"cause": best["log"], "slow": len(slow), "stalls": best[">= 20 ms"],
            "explained": explained}
"""

DISABLE_FOREVER = """
import gc


def after_warmup(server):
    gc.disable()  # the classic answer: no collection, no pause
"""

THRESHOLDS_ONLY = """
import gc


def after_warmup(server):
    gc.set_threshold(2000, 10, 10)  # 3.13's generation-0 default: fewer young collections
"""

MANUAL_COLLECT = """
import gc


def after_warmup(server):
    gc.disable()

    async def flush_then_collect(log):
        log.flush()
        gc.collect()  # collect by hand between batches, when we choose

    server.flush_request_log = flush_then_collect
"""

NEVER_FLUSH = """
import gc


def after_warmup(server):
    gc.collect()
    gc.freeze()

    async def skip(log):
        pass  # no flush, no stall

    server.flush_request_log = skip
"""

TINY_CHUNKS = """
import gc


def after_warmup(server):
    gc.collect()
    gc.freeze()
    server.scheduler.long_prefill_token_threshold = 8  # every prompt in 8-token chunks
"""

DIAGNOSIS = ("test_diagnosis_names_the_cause_and_its_evidence",)
P99 = ("test_fix_cuts_p99_ttft",)
CORRECT = ("test_fix_keeps_the_server_correct",)

CHEATS = [
    Cheat(290, "the default run's numbers, hard-coded", "hard-coded", (HARD_CODED,), DIAGNOSIS),
    Cheat(
        290,
        "the log with the most stall time, by the package's table",
        "package helper",
        (PACKAGE_HELPER,),
        DIAGNOSIS,
    ),
    Cheat(290, "gc.disable() for good", "debrief bypass", (DISABLE_FOREVER,), CORRECT),
    Cheat(290, "thresholds raised only", "debrief bypass", (THRESHOLDS_ONLY,), P99),
    Cheat(290, "a manual gc.collect() between batches", "symptom hiding", (MANUAL_COLLECT,), P99),
    Cheat(290, "never flush the request log", "symptom hiding", (NEVER_FLUSH,), CORRECT),
    Cheat(290, "chunks so small every prompt is split", "symptom hiding", (TINY_CHUNKS,), P99),
]

FREEZE_ONLY = """
import gc


def after_warmup(server):
    gc.collect()
    gc.freeze()  # the classic fix, in a variant where collections are not the cause
"""

AT_SEED = {  # seed -> cheats graded at that variant
    1: [Cheat(290, "freeze in a blocked-loop variant", "symptom hiding", (FREEZE_ONLY,), P99)],
}
