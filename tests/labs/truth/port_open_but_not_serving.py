"""Lab 278's reference answers: what stopped, read from evidence; the probe and gateway bounds.

    >>> from tests.labs.truth import port_open_but_not_serving as truth
    >>> cases = truth.made_up_evidence(0)
    >>> truth.diagnosis(cases["requests wait, no step in between"])["cause"]
    'engine'
    >>> truth.gateway_bounds(32, 64)  # the daily peak .. capacity running + two batches waiting
    (64, 96)

Never part of the package: a candidate with `labsupport` installed cannot import the rule that
grades them. The checks of tests/labs/test_278_port_open_but_not_serving.py compare the
learner's `diagnose` with `diagnosis` on evidence written by hand (`made_up_evidence(seed)`,
built so that the usual near misses answer otherwise) and on evidence gathered from the
variant's live servers, whose truth is the situation that was set up; they judge the probe
logic on scrape pairs written by hand (`probe_cases`), and the manifest and the gateway limit
the learner's functions give for the variant's numbers and for other deployments' (`slos`,
`sizes`) with `manifest_problems` and `gateway_bounds`.
"""

from __future__ import annotations

import math

import yaml

from labsupport.scenarios import port_open_but_not_serving as scenario
from labsupport.scenarios.port_open_but_not_serving.evidence import Evidence
from labsupport.serving.scrape import no_answer, synthetic

STEPS = "vllm:iteration_tokens_total_count"
GIL_CORES = 0.5  # runnable cores: a thread that never lets the lock go wants a whole core
CORES_TOLERANCE = 0.02
TRUTH_OF = {
    "idle": "none",
    "healthy": "none",
    "heavy_load": "none",
    "overload": "none",
    "wedged_engine": "engine",
    "gil_busy_loop": "gil",
    "blocked_event_loop": "event_loop",
}
MIN_STARTUP_S = 300  # a model loads in minutes on a cold node: the startup budget covers it
MAX_TIMEOUT_S = 5


# ---- the diagnosis -------------------------------------------------------------------------
def _pending(scrape) -> float:
    return (scrape.value("vllm:num_requests_running") or 0.0) + (
        scrape.value("vllm:num_requests_waiting") or 0.0
    )


def steps(ev: Evidence) -> float | None:
    """Engine steps between the first and the last scrape that answered (None: < 2 answered)."""
    ok = [s for s in ev.scrapes if s.ok]
    if len(ok) < 2:
        return None
    return ok[-1].value(STEPS) - ok[0].value(STEPS)


def cores(ev: Evidence) -> float:
    """Runnable cores over the whole window: on-CPU plus waiting for a core, per second."""
    (t0, _, r0), (t1, _, r1) = ev.cpu[0], ev.cpu[-1]
    return (r1 - r0) / (t1 - t0)


def diagnosis(ev: Evidence) -> dict:
    """The graded answer: which part stopped, and the two numbers that decide it."""
    answered = sum(h is not None for h in ev.health)
    n, c = steps(ev), cores(ev)
    if answered * 2 < len(ev.health):  # the process does not answer its routes
        cause = "gil" if c >= GIL_CORES else "event_loop"
    else:
        ok = [s for s in ev.scrapes if s.ok]
        stuck = len(ok) >= 2 and _pending(ok[0]) > 0 and _pending(ok[-1]) > 0 and n == 0
        cause = "engine" if stuck else "none"
    return {"cause": cause, "steps": n, "cores": c}


def _evidence(scrapes, health, *, runnable_per_s: float, on_cpu_per_s: float, tcp=True):
    ticks = len(scrapes)
    cpu = [(float(i), 40.0 + on_cpu_per_s * i, 41.0 + runnable_per_s * i) for i in range(ticks + 1)]
    return Evidence(
        1.0,
        tcp=[tcp] * ticks,
        health=list(health),
        completion=[
            h is not None and s.ok and _pending(s) < 8 for h, s in zip(health, scrapes, strict=True)
        ],
        scrapes=list(scrapes),
        cpu=cpu,
    )


def made_up_evidence(seed: int) -> dict[str, Evidence]:
    """Evidence written by hand, each built so that a usual wrong reading answers otherwise."""
    c = scenario.variant(seed).capacity
    none = no_answer()
    return {
        "idle: nothing pending, no step": _evidence(
            [synthetic(500, 0, 0, t_s=i) for i in range(4)], [200] * 4,
            runnable_per_s=0.02, on_cpu_per_s=0.02,
        ),
        "a batch waits, steps go on, 1-token completions time out": _evidence(
            [synthetic(500 + 40 * i, c, c, t_s=i) for i in range(4)], [200] * 4,
            runnable_per_s=1.1, on_cpu_per_s=0.5,
        ),
        "requests wait, no step in between": _evidence(
            [synthetic(812, 2, i, t_s=i) for i in range(4)], [200] * 4,
            runnable_per_s=0.03, on_cpu_per_s=0.02,
        ),
        "only waiting requests, no step": _evidence(
            [synthetic(812, 0, 3 + i, t_s=i) for i in range(4)], [200] * 4,
            runnable_per_s=0.02, on_cpu_per_s=0.02,
        ),
        "a request arrives between two idle scrapes": _evidence(
            [synthetic(90, 0, 0, t_s=0), synthetic(90, 0, 0, t_s=1), synthetic(91, 1, 0, t_s=2),
             synthetic(95, 0, 0, t_s=3)], [200] * 4,
            runnable_per_s=0.05, on_cpu_per_s=0.05,
        ),
        "nothing answers, one thread wants a core (crowded machine)": _evidence(
            [none] * 4, [None] * 4, runnable_per_s=1.05, on_cpu_per_s=0.3,
        ),
        "nothing answers, the process sleeps": _evidence(
            [none] * 4, [None] * 4, runnable_per_s=0.04, on_cpu_per_s=0.03,
        ),
        "nothing answers but once, the process sleeps": _evidence(
            [none, synthetic(300, 2, 1, t_s=1), none, none], [None, 200, None, None],
            runnable_per_s=0.06, on_cpu_per_s=0.05,
        ),
    }  # fmt: skip


def answer_problem(got, ev: Evidence) -> str | None:
    """What is wrong with the learner's answer on `ev` (None: right)."""
    want = diagnosis(ev)
    if not isinstance(got, dict) or not {"cause", "steps", "cores"} <= set(got):
        return f"return a dict with cause, steps and cores, not {got!r:.80}"
    if got["cause"] not in scenario.CAUSES:
        return f"cause must be one of {sorted(scenario.CAUSES)}, not {got['cause']!r:.40}"
    if want["steps"] is None:
        if got["steps"] is not None:
            return f"steps: fewer than two scrapes answered, so None, not {got['steps']!r:.40}"
    elif not isinstance(got["steps"], (int, float)) or got["steps"] != want["steps"]:
        return (
            f"steps: {got['steps']!r:.40}, the scrapes say {want['steps']:g} (the step counter "
            f"{STEPS} of the last answered scrape minus the first's)"
        )
    value = got["cores"]
    if not isinstance(value, (int, float)) or not math.isclose(
        value, want["cores"], rel_tol=CORES_TOLERANCE, abs_tol=0.005
    ):
        return (
            f"cores: {value!r:.40}, the samples say {want['cores']:.2f} (runnable seconds, "
            "last sample minus first, per second between them)"
        )
    if got["cause"] != want["cause"]:
        return f"cause: {got['cause']!r}, the evidence says otherwise"
    return None


# ---- the probes ----------------------------------------------------------------------------
def probe_cases(seed: int) -> list[tuple[str, object, object, bool, bool | None]]:
    """(what, previous, current, liveness, readiness): readiness None means either is fine."""
    c = scenario.variant(seed).capacity

    def s(steps_, running, waiting, t, alive=True):
        return synthetic(steps_, running, waiting, t_s=t, alive=alive)

    return [
        ("first probe, requests running", None, s(120, 2, 0, 100.0), True, None),
        ("idle: nothing pending, no step", s(120, 0, 0, 100.0), s(120, 0, 0, 101.0), True, True),
        ("light traffic, stepping", s(120, 2, 0, 100.0), s(170, 2, 0, 101.0), True, True),
        ("daily peak: a batch waits, stepping", s(120, c, c, 100.0), s(165, c, c, 101.0),
         True, True),
        ("retry storm: six batches wait, stepping", s(120, c, 6 * c, 100.0),
         s(165, c, 6 * c, 101.0), True, True),
        ("requests running and waiting, no step", s(812, 2, 3, 100.0), s(812, 2, 5, 101.0),
         False, False),
        ("only waiting requests, no step", s(812, 0, 4, 100.0), s(812, 0, 4, 101.0),
         False, False),
        ("a request arrived since the last probe, no step yet", s(90, 0, 0, 100.0),
         s(90, 1, 0, 101.0), True, None),
        ("the engine loop died", s(120, 2, 0, 100.0, alive=False),
         s(120, 2, 0, 101.0, alive=False), False, False),
    ]  # fmt: skip


def gateway_bounds(capacity: int, peak: int) -> tuple[int, int]:
    """The admission limit per replica: no less than the daily peak (healthy traffic is never
    shed), no more than `capacity` running plus two batches waiting (an admitted request waits
    at most two requests' time)."""
    return peak, 3 * capacity


def sizes(seed: int) -> list[tuple[int, int]]:
    """(capacity, peak) the gateway limit is asked for: the variant's first, then others."""
    v = scenario.variant(seed)
    return [(v.capacity, v.peak), (24, 40), (48, 100), (16, 44), (64, 128)]


def slos(seed: int) -> list[tuple[int, int]]:
    """(stall_s, restart_within_s) the manifest is asked for: the variant's first, then others
    chosen so that one fixed window cannot fit them all."""
    v = scenario.variant(seed)
    return [(v.stall_s, v.restart_within_s), (30, 90), (15, 45), (45, 120), (5, 30)]


def _budget(probe: dict) -> tuple[int, int, int]:
    return (
        int(probe.get("periodSeconds") or 10),
        int(probe.get("failureThreshold") or 3),
        int(probe.get("timeoutSeconds") or 1),
    )


def _http(probe: dict, path: str, port_names: dict) -> str | None:
    get = probe.get("httpGet")
    if not get:
        kind = next((k for k in ("tcpSocket", "exec", "grpc") if probe.get(k)), "no handler")
        return f"it is a {kind} probe: make it httpGet {path} on port 8000"
    port = get.get("port")
    port = port_names.get(port, port)
    if get.get("path") != path or port != 8000:
        return f"it asks {get.get('path')!r} on port {get.get('port')!r}: ask {path} on 8000"
    return None


def manifest_problems(obj: dict, stall_s: int, restart_within_s: int) -> list[str]:
    """What is wrong with a validated manifest's probes for these SLOs ([]: nothing)."""
    pod = obj["spec"]["template"]["spec"] if obj["kind"] == "Deployment" else obj["spec"]
    c = pod["containers"][0]
    names = {p.get("name"): p["containerPort"] for p in c.get("ports") or [] if p.get("name")}
    if 8000 not in [p.get("containerPort") for p in c.get("ports") or []]:
        return ["the container does not declare containerPort 8000, where the server listens"]
    problems = []
    live, ready, start = (c.get(k) for k in ("livenessProbe", "readinessProbe", "startupProbe"))
    wanted = (("livenessProbe", live, "/livez"), ("readinessProbe", ready, "/readyz"))
    for key, probe, path in wanted:
        if probe is None:
            problems.append(f"{key}: missing")
        elif (why := _http(probe, path, names)) is not None:
            problems.append(f"{key}: {why}")
    if live is not None:
        period, failures, timeout = _budget(live)
        if period * failures <= stall_s:
            problems.append(
                f"livenessProbe: {failures} failures x {period} s = {period * failures} s: an "
                f"engine may pause {stall_s} s between steps on a long prefill, and this "
                "restarts it"
            )
        if period * (failures + 1) + timeout > restart_within_s:
            problems.append(
                f"livenessProbe: a stuck engine is restarted only after up to {period} x "
                f"({failures} + 1) + {timeout} = {period * (failures + 1) + timeout} s (the first "
                "failing probe can come a period late); it must be within "
                f"{restart_within_s} s"
            )
        if timeout > MAX_TIMEOUT_S:
            problems.append(
                f"livenessProbe: timeoutSeconds {timeout}: /livez answers in milliseconds when "
                f"the loop runs; at most {MAX_TIMEOUT_S} s, or a stuck loop is waited for"
            )
        if ready is not None:
            r_period, r_failures, _ = _budget(ready)
            if r_period * r_failures >= period * failures:
                problems.append(
                    f"readinessProbe: {r_failures} x {r_period} s = {r_period * r_failures} s, "
                    f"not less than liveness's {period * failures} s: a pod that cannot serve "
                    "keeps its traffic until it is killed"
                )
    if start is None:
        problems.append(
            "startupProbe: missing, so liveness starts probing while the model still loads"
        )
    else:
        s_period, s_failures, _ = _budget(start)
        if s_period * s_failures < MIN_STARTUP_S:
            problems.append(
                f"startupProbe: {s_failures} x {s_period} s = {s_period * s_failures} s for the "
                f"model to load; keep at least {MIN_STARTUP_S} s (a cold node loads for minutes)"
            )
    return problems


# ---- the interviewer's sheet ---------------------------------------------------------------
def answer_key(seed: int) -> dict:
    """The variant's graded ground truth."""
    v = scenario.variant(seed)
    lo, hi = gateway_bounds(v.capacity, v.peak)
    return {
        "incident_cause": v.cause,
        "incident_fault": v.incident_fault,
        "gateway_limit": [lo, hi],
        "liveness_window_s": {
            "more_than": v.stall_s,
            "period_x_(failures+1)+timeout_at_most": v.restart_within_s,
        },
        "readiness": "engine alive and stepping while work is pending; not the queue length",
        "made_up_evidence": {k: diagnosis(e)["cause"] for k, e in made_up_evidence(seed).items()},
    }


def expected(seed: int) -> dict:
    """What the interviewer should see in variant `seed` (CPU, 2 cores; a GPU paces the same)."""
    v = scenario.variant(seed)
    lo, hi = gateway_bounds(v.capacity, v.peak)
    incident = {
        "engine": (
            "pod Ready, 0 restarts, /health 200 in ms, /metrics answers: "
            "vllm:num_requests_running / waiting > 0 and vllm:iteration_tokens_total_count flat"
            "; the process sleeps (runnable ~0 cores)"
        ),
        "event_loop": (
            "pod not Ready (readiness /health times out) yet never restarted (tcpSocket passes); "
            "/health and /metrics do not answer; the process sleeps (runnable ~0 cores): "
            "a blocking call on the event loop"
        ),
        "gil": (
            "pod not Ready (readiness /health times out) yet never restarted (tcpSocket passes); "
            "/health and /metrics do not answer; the process wants a whole core (runnable ~1 "
            "core, on-CPU less on a busy machine): a thread that keeps the interpreter lock"
        ),
    }[v.cause]
    return {
        "deployment": v.describe(),
        "the incident (cause hidden from the candidate)": f"{v.cause}: {incident}",
        "probe matrix": (
            "TCP passes everywhere; /health fails only when the process cannot run its routes "
            "(GIL held, loop blocked); a 1-token completion fails in every fault and at the "
            f"daily peak ({v.peak} clients for {v.capacity} slots: a batch waits)"
        ),
        "a passing fix": (
            "liveness = /metrics-style heartbeat over the own scrape: fail when requests are "
            "pending at both probes and the step counter did not move, or the engine is dead; "
            "readiness = the same, without any queue threshold; livenessProbe httpGet /livez "
            f"with periodSeconds x failureThreshold > {v.stall_s} and x (failures + 1) + timeout "
            f"<= {v.restart_within_s} (e.g. 10 s x {v.stall_s // 10 + 1}); readinessProbe "
            "httpGet /readyz with a shorter window; "
            f"startupProbe kept; gateway limit between {lo} and {hi} in flight per replica"
        ),
        "headline": "2 of 6 incident scenarios handled by the incident's probes, 6 of 6 by yours",
    }


RUBRIC = {
    "diagnosis": {
        "strong": (
            "Separates the three candidates with evidence from this run: /health and /metrics "
            "answer but the step counter is flat while requests are pending (engine); nothing "
            "answers and the process sleeps (event loop) or wants a whole core (interpreter "
            "lock), reading runnable rather than on-CPU time on a busy machine; says why TCP "
            "and /health pass, and that a 1-token completion also fails at a healthy peak."
        ),
        "adequate": (
            "Finds the right part from the probe matrix, but reads one signal (a failing "
            "completion, a flat counter) without checking that work was pending, or cannot "
            "tell the event loop from the interpreter lock without a stack dump."
        ),
        "weak": (
            "Blames the gateway or the network because the port answers and /health is 200; "
            "or calls every failing completion a hung engine."
        ),
    },
    "fix": {
        "strong": (
            "Liveness = heartbeat (pending at both probes and no step in between, or the engine "
            "dead), readiness = can it serve (same, no queue threshold), served by the server "
            "as /livez and /readyz with a manifest whose liveness window tolerates the longest "
            "legitimate pause and still restarts within the SLO, readiness acting first, a "
            "startup probe kept; overload shed at the gateway with a limit between the peak and "
            "capacity plus two batches."
        ),
        "adequate": (
            "A working heartbeat liveness, but readiness also sheds on queue length, or the "
            "thresholds are copied rather than derived from the stall and the restart SLO."
        ),
        "weak": (
            "A real 1-token inference as readiness or liveness, /health for both, or bigger "
            "timeouts: flaps at the peak and restarts healthy pods, or never catches the stall."
        ),
    },
    "reasoning": {
        "strong": (
            "Explains that readiness failing on every equally loaded replica empties the "
            "Service (the cascade), that TCP passes from the listen backlog until it is full, "
            "that vLLM's /health only knows whether EngineCore is alive, that a restart often "
            "cannot recover a wedged GPU (Xid: reset or drain the node), and puts real inference "
            "in a canary outside the pod with its own alert."
        ),
        "adequate": "Knows liveness restarts and readiness removes, but not the cascade.",
        "weak": "Treats liveness and readiness as interchangeable health checks.",
    },
}


def load_manifest(text: str) -> dict:
    """The learner's manifest as a dict (yaml.safe_load: data only)."""
    return yaml.safe_load(text)
