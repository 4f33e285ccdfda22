"""Wrong submissions for lab 299 that must fail a check (see tests/cheats/corpus.py).

Each is the solution with one exercise replaced by what a learner or a candidate would try.
"""

from tests.cheats.corpus import Cheat

DIAGNOSIS = ("test_failure_causes_match_the_event_log",)
HANDLER = ("test_handler_finishes_streams_within_its_budget",)
MANIFEST = ("test_manifest_fits_each_cluster",)
ROLLOUT = ("test_rollout_under_load_loses_nothing",)

# The solution's manifest with one change: `fixed_manifest` is redefined around it.
_AROUND_SOLUTION = """
import math

import yaml

from labsupport.scenarios.errors_during_rollout.settings import manifest_with


def fixed_manifest(production, propagation_s, longest_answer_s, node_gpus):
    replicas = yaml.safe_load(production)["spec"]["replicas"]
    pre_stop_s = math.ceil(propagation_s) + 2
    budget_s = math.ceil(longest_answer_s)
    spare = node_gpus - replicas
    settings = dict(
        pre_stop_s=pre_stop_s,
        drain_s=budget_s,
        grace_s=pre_stop_s + budget_s + 5,
        max_surge=1 if spare >= 1 else 0,
        max_unavailable=0 if spare >= 1 else 1,
    )
    {change}
    return manifest_with(production, **settings)
"""

CHEATS = [
    Cheat(
        299,
        "the status decides the cause (right for the default incident only)",
        "hard-coded",
        (
            """
def failure_causes(requests, pods):
    by_status = {"truncated": "cut_at_sigterm", "http_error": "sent_after_sigterm",
                 "connection_error": "sent_after_sigterm"}
    return {r.index: by_status.get(r.status, "other") for r in requests if r.status != "ok"}
""",
        ),
        DIAGNOSIS,
    ),
    Cheat(
        299,
        "the default variant's manifest, whatever the cluster",
        "hard-coded",
        (
            """
from labsupport.scenarios.errors_during_rollout import variant
from labsupport.scenarios.errors_during_rollout.settings import manifest_with


def fixed_manifest(production, propagation_s, longest_answer_s, node_gpus):
    return manifest_with(variant(0).production, pre_stop_s=5, drain_s=40, grace_s=50,
                         max_surge=1, max_unavailable=0)
""",
        ),
        MANIFEST,
    ),
    Cheat(
        299,
        "the reference answer imported from the grader's truth module",
        "package helper",
        (
            """
def failure_causes(requests, pods):
    from tests.labs.truth.errors_during_rollout import failure_causes as reference

    return reference(requests, pods)
""",
        ),
        DIAGNOSIS,
    ),
    Cheat(
        299,
        "the server's own SIGTERM default, vLLM's abort_in_flight",
        "package helper",
        ("from labsupport.serving.shutdown import abort_in_flight as on_sigterm  # noqa: F401\n",),
        HANDLER,
    ),
    Cheat(
        299,
        "a handler that sleeps the whole budget",
        "symptom hiding",
        (
            """
import asyncio


async def on_sigterm(ctx):
    ctx.stop_accepting()
    await asyncio.sleep(ctx.drain_timeout_s)
""",
        ),
        HANDLER,
    ),
    Cheat(
        299,
        "a handler that waits for the streams with no budget",
        "symptom hiding",
        (
            """
async def on_sigterm(ctx):
    ctx.stop_accepting()
    await ctx.wait_idle(None)
""",
        ),
        HANDLER,
    ),
    Cheat(
        299,
        "a preStop sleep longer than any answer, and the server left to abort",
        "symptom hiding",
        (
            _AROUND_SOLUTION.format(
                change="settings.update(pre_stop_s=math.ceil(propagation_s + longest_answer_s) "
                "+ 5, drain_s=0, grace_s=math.ceil(propagation_s + longest_answer_s) + 10)"
            ),
        ),
        MANIFEST + ROLLOUT,
    ),
    Cheat(
        299,
        "the classic answer: handle SIGTERM, grace 120 s, maxSurge 1 / maxUnavailable 0",
        "debrief bypass",
        (
            _AROUND_SOLUTION.format(
                change="settings.update(pre_stop_s=None, grace_s=120, max_surge=1, "
                "max_unavailable=0)"
            ),
        ),
        MANIFEST + ROLLOUT,
    ),
    Cheat(
        299,
        "just raise terminationGracePeriodSeconds to 3600",
        "debrief bypass",
        (_AROUND_SOLUTION.format(change="settings.update(grace_s=3600)"),),
        MANIFEST + ROLLOUT,
    ),
    Cheat(
        299,
        "the grace period is the drain time (grace = --shutdown-timeout)",
        "debrief bypass",
        (_AROUND_SOLUTION.format(change='settings.update(grace_s=settings["drain_s"])'),),
        MANIFEST + ROLLOUT,
    ),
    Cheat(
        299,
        "a preStop sleep longer than the grace period",
        "debrief bypass",
        (_AROUND_SOLUTION.format(change='settings.update(pre_stop_s=settings["grace_s"] + 10)'),),
        MANIFEST + ROLLOUT,
    ),
]
