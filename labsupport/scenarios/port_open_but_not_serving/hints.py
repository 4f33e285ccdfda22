"""Hints for lab 278, from a nudge to the mechanism: `hint("278", level, "exercise")`."""

HINTS = {
    "diagnose": (
        "Go through the evidence in the order a request goes through the server: does the "
        "kernel accept the connection, does any route of the process answer, does work get "
        "done while work is waiting? Print evidence.table() for each column of the matrix.",
        "If /health and /metrics answer, compare the step counter of the first and the last "
        "answered scrape, and whether requests were running or waiting at both. If nothing "
        "answers, the process is either doing nothing or spinning: ask the CPU samples, and use "
        "the runnable column, which does not depend on what else the machine runs.",
        "steps = last answered scrape's vllm:iteration_tokens_total_count minus the first's "
        "(None if fewer than two answered); cores = (runnable[-1] - runnable[0]) / "
        "(t[-1] - t[0]). Routes answer and pending at both ends with steps == 0: 'engine'; "
        "routes answer otherwise: 'none'; most /health tries unanswered: 'gil' when cores >= "
        "0.5, else 'event_loop'.",
    ),
    "liveness": (
        "A liveness failure restarts the container. Which of the situations in the matrix "
        "would a restart cure, and which would it only make worse?",
        "Compare `previous` and `current`: was work pending (running or waiting) in both, and did "
        "the engine step in between? An idle server does not step and is fine. When the event "
        "loop or the interpreter is stuck, /livez does not answer at all: the kubelet's timeout "
        "fails the probe for you.",
        "False when srelab:engine_alive is 0, or when previous is not None and both scrapes have "
        "running + waiting > 0 and vllm:iteration_tokens_total_count did not move; else True.",
    ),
    "readiness": (
        "Readiness only takes the pod out of the Service's endpoints. When should this replica "
        "get no traffic, whatever the other replicas look like?",
        "Every replica behind the Service sees the same peak and the same storm: a readiness "
        "that fails on a long queue fails on all of them at once. Keep it for 'this pod cannot "
        "serve': the engine dead, or stuck with work pending.",
        "The same rule as liveness (engine alive; not pending-without-steps), with no queue "
        "threshold: the gateway limit sheds the storm. Its probe should act sooner than "
        "liveness's.",
    ),
    "pod_manifest": (
        "Start from the incident's manifest: which probe answers which question, and what does "
        "the kubelet call now?",
        "httpGet /livez and /readyz on port 8000. The liveness window (periodSeconds x "
        "failureThreshold) must outlast stall_s, and a stuck server must still be restarted "
        "within restart_within_s: the first failing probe can come a period late, and the last "
        "one waits timeoutSeconds. Keep the startup probe for the model load.",
        "periodSeconds 10, failureThreshold stall_s // 10 + 1, timeoutSeconds 1 (then 10 x "
        "(failures + 1) + 1 <= restart_within_s); readiness periodSeconds 5 with a window "
        "shorter than liveness's; the incident's startupProbe (2 s x 300).",
    ),
    "gateway_limit": (
        "How many requests may be in flight on one replica before the gateway answers 429 at "
        "once instead of queueing them?",
        "The daily peak must pass untouched; beyond the server's capacity every admitted request "
        "waits behind a batch. Which two numbers bound the limit?",
        "Anything from `peak` to `capacity` running plus two batches waiting (3 x capacity): "
        "for capacity 32 and a peak of 64, from 64 to 96.",
    ),
}
