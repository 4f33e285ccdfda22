"""Lab 299's hint ladder: `hint("299", level, exercise)` shows one, the transcript records it.

    >>> from labsupport.scenarios.errors_during_rollout.hints import HINTS
    >>> sorted(HINTS)
    ['failure_causes', 'fixed_manifest', 'on_sigterm']

The first hint of each exercise points at the evidence and never names the cause.
"""

HINTS = {
    "failure_causes": (
        "Take one failed request at a time and put it next to the lifecycle of the pod that "
        "had it (its `backend`): where do its start and its end fall among that pod's events?",
        "Only two moments of the pod decide: `sigterm_s` and `sigkill_s`. Was the request "
        "opened after the signal, or already running when it came? If it was running, was it "
        "still running when the kill came?",
        "start_s >= sigterm_s -> sent_after_sigterm; else end_s >= sigkill_s (when there was a "
        "SIGKILL) -> killed_at_deadline; else end_s >= sigterm_s -> cut_at_sigterm; no pod, no "
        "SIGTERM, or ended before it -> other. Skip requests whose status is 'ok'.",
    ),
    "on_sigterm": (
        "When the pod is told to stop, what should happen to the answers it is streaming, and "
        "to requests that still arrive? And how long may that take?",
        "Refuse new work at once (`ctx.stop_accepting()`), then wait for the in-flight streams "
        "with `await ctx.wait_idle(...)`; the wait has a budget, `ctx.drain_timeout_s`.",
        "ctx.stop_accepting(); await ctx.wait_idle(ctx.drain_timeout_s) - and nothing else: "
        "no fixed sleep, no abort_all(); return as soon as it does.",
    ),
    "fixed_manifest": (
        "Each setting answers one question about time: how long do load balancers keep "
        "sending to a deleted pod, how long can an answer take, when does the kubelet stop "
        "waiting, and can a new pod start before an old one leaves?",
        "A preStop sleep keeps the pod serving until the balancers have caught up "
        "(propagation_s plus a margin of a couple of seconds, not much more); "
        "--shutdown-timeout covers the longest answer; terminationGracePeriodSeconds counts "
        "from the preStop hook; maxSurge needs a free GPU on the node.",
        "preStop sleep ceil(propagation_s) + 2; --shutdown-timeout ceil(longest_answer_s); "
        "grace = preStop + shutdown-timeout + 5; node_gpus > replicas: maxSurge 1, "
        "maxUnavailable 0, else maxSurge 0, maxUnavailable 1; replace any --shutdown-timeout "
        "production set (`settings.manifest_with` does all of it).",
    ),
}
