"""Lab 288's hints, from a nudge to the mechanism (`hint("288", level, exercise)`)."""

HINTS = {
    "slowest_start_s": (
        "Two clocks are in the evidence: the moment the container started, and the time in "
        "front of every log line. From which moment does the kubelet count, and at which "
        "moment can a probe first get an answer?",
        "Count from startedAt, not from the first log line (Python, torch and the device start "
        "before the server prints anything), to the line that says the server listens. The "
        "server's own total_s starts its timers late: it is not the kubelet's clock.",
        "Per start: parse startedAt and the timestamp of the 'listening on' line (the logs "
        "carry nine fractional digits; datetime keeps six, so read the fraction yourself or cut "
        "it), subtract, and return the largest difference over all starts, in real seconds.",
    ),
    "fixed_manifest": (
        "Liveness asks one question for the container's whole life, and during the load the "
        "honest answer is 'not known yet'. Which probe covers only that phase, and what do the "
        "other probes do until it has succeeded?",
        "Add a startupProbe on /health. It may fail initialDelaySeconds + failureThreshold x "
        "periodSeconds before the kubelet restarts the container: size that from "
        "load_time_seconds with a margin, not a fixed number. Keep liveness short and without "
        "an initial delay: it only runs once the startup probe has succeeded.",
        "startupProbe: httpGet /health on port http, periodSeconds 5, failureThreshold "
        "ceil(2 x load_time_seconds / 5). livenessProbe: httpGet /health, periodSeconds 10, "
        "timeoutSeconds 1, failureThreshold 3. Keep the readiness probe and the rest of the "
        "incident's manifest.",
    ),
}
