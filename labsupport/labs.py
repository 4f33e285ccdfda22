"""The lab registry: one place for every lab's number, title, needs and files.

    >>> from labsupport import labs
    >>> lab = labs.get("290")
    >>> lab.slug, lab.gpu
    ('290_p99_spikes', 'optional')
    >>> lab.solution_path.name
    '290_p99_spikes.py'

It feeds `srelab list`, the README table and the tests. A lab is `done` when its solution,
learner notebook and checks exist and its checks are proven to fail on the learner copy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Lab:
    number: int
    symptom: str  # the slug after the number: named for the symptom, never the cause
    title: str
    domain: str
    gpu: str  # "real" | "optional" | "none"
    headline: str
    minutes_cpu: int = 0  # machine minutes: the notebook end to end on the 2-core CPU machine
    minutes_gpu: int = 0
    learner_minutes: int = 0  # how long a competent engineer needs (the interview time box)
    services: tuple[str, ...] = ()
    min_ratio: float = 1.0  # the headline's before/after ratio a run must reach (tests check it)
    done: bool = False
    allowed_flags: tuple[str, ...] = ()  # grading.flags kinds this lab's exercises need
    default_seed: int = 0  # the variant the solution notebook runs (srelab check --seed S)
    cause_words: tuple[str, ...] = ()  # words that name the cause: none before the diagnosis
    suite_min_ratio: float | None = None  # headline ratio at the suite's smaller scale

    @property
    def slug(self) -> str:
        return f"{self.number}_{self.symptom}"

    @property
    def solution_path(self) -> Path:
        return REPO_ROOT / "solutions" / f"{self.slug}.py"

    @property
    def notebook_path(self) -> Path:
        return REPO_ROOT / "labs" / f"{self.slug}.ipynb"

    @property
    def scenario(self) -> str:
        """The lab's workload package: `labsupport.scenarios.<symptom>`."""
        return f"labsupport.scenarios.{self.symptom}"

    @property
    def test_path(self) -> Path:
        return REPO_ROOT / "tests" / "labs" / f"test_{self.slug}.py"


LABS: tuple[Lab, ...] = (
    Lab(
        276,
        "oom_despite_free_memory",
        "OOM while monitoring shows free memory",
        "memory",
        "real",
        "largest request that fits, as deployed vs fixed",
        minutes_cpu=1,
        minutes_gpu=4,
        learner_minutes=35,
        min_ratio=3.0,
        done=True,
        cause_words=(
            "fragmentation",
            "fragmented",
            "fragmenting",
            "fragment",
            "fragments",
            "defragment",
            "expandable",
            "expandable_segments",
            "max_split_size_mb",
            "neighbour",
            "neighbours",
            "neighbor",
            "neighbors",
            "tenant",
            "tenants",
            "overcommit",
            "overcommitted",
        ),
        suite_min_ratio=3.0,
    ),
    Lab(
        277,
        "gpu_memory_held_after_crash",
        "GPU memory stays used after the server crashed",
        "processes",
        "real",
        "card memory free for the restarted server, production entrypoint vs fixed",
        minutes_cpu=2,
        learner_minutes=40,
        min_ratio=1.2,
        suite_min_ratio=1.2,
        allowed_flags=("process", "signal", "native"),
        cause_words=(
            "PDEATHSIG",
            "tini",
            "subreaper",
            "killpg",
            "dumb-init",
            "reaps",
            "reaped",
            "reaping",
        ),
        done=True,
    ),
    Lab(
        278,
        "port_open_but_not_serving",
        "The port answers but nothing is served",
        "serving",
        "optional",
        "incident scenarios handled right (of 6), the deployed probes vs yours",
        minutes_cpu=3,
        minutes_gpu=3,
        learner_minutes=45,
        min_ratio=2.5,
        suite_min_ratio=2.5,
        done=True,
        default_seed=0,
        cause_words=(
            "wedged_engine",
            "blocked_event_loop",
            "gil_busy_loop",
            "wedged",
            "wedge",
            "busy loop",
            "busy-loop",
            "time.sleep",
            "deadlock",
            "deadlocked",
        ),
    ),
    Lab(
        279,
        "slower_every_day",
        "Slower every day, a restart fixes it",
        "serving",
        "optional",
        "idle KV usage and p99 drift over a soak",
    ),
    Lab(
        280,
        "gpu_running_hot",
        "GPU temperature and clock alerts",
        "telemetry",
        "real",
        "share of pages that were a real slowdown, the team's rules vs the learner's",
        minutes_cpu=1,
        minutes_gpu=2,
        learner_minutes=35,
        min_ratio=3.0,
        suite_min_ratio=3.0,
        done=True,
        default_seed=0,
        cause_words=(
            "power brake",
            "power-brake",
            "brake asserted",
            "cooling failure",
            "cooling failed",
            "fan failure",
            "fast trigger",
            "fast-trigger",
            "thermal slowdown",
            "thermal throttling",
            "power management",
            "normal under load",
            "expected under load",
        ),
    ),
    Lab(
        281,
        "neighbor_model_starves_llm",
        "A neighbour model starves the LLM",
        "memory",
        "real",
        "decode p99 and survival with a co-located embedding job",
    ),
    Lab(
        282,
        "pod_pending_gpu_idle",
        "Pod pending while a GPU looks idle",
        "platform",
        "none",
        "llm-server replicas running, as deployed vs the fixed manifest",
        minutes_cpu=1,
        learner_minutes=25,
        min_ratio=1.05,
        suite_min_ratio=1.05,
        default_seed=0,
        done=True,
        cause_words=("idle pod", "idle notebook", "priority-0 pod", "preempts the idle"),
    ),
    Lab(
        283,
        "logs_fill_the_disk",
        "Request logs fill the disk",
        "operations",
        "none",
        "bytes on disk per request, full vs metadata logging",
    ),
    Lab(
        284,
        "dataloader_bus_error",
        "DataLoader workers die with a bus error",
        "data",
        "none",
        "free /dev/shm over the loader's measured peak, as in production vs the fixed Pod",
        minutes_cpu=2,
        learner_minutes=35,
        min_ratio=1.3,
        suite_min_ratio=1.3,
        cause_words=("leftover", "left over", "left behind", "stale", "emptyDir", "sizeLimit"),
        done=True,
    ),
    Lab(
        285,
        "device_side_assert",
        "device-side assert triggered",
        "cuda",
        "real",
        "well-formed requests served while bad ones are refused, as deployed vs fixed",
        minutes_cpu=2,
        minutes_gpu=2,
        learner_minutes=40,
        min_ratio=2.0,
        suite_min_ratio=2.0,
        done=True,
        default_seed=0,
        cause_words=(
            "out of vocabulary",
            "out-of-vocabulary",
            "out-of-vocab",
            "vocabulary mismatch",
            "tokenizer mismatch",
            "sticky",
            "poisoned",
            "unusable",
            "cannot be used again",
        ),
    ),
    Lab(
        286,
        "client_gone_gpu_still_busy",
        "Clients leave, the GPU keeps generating",
        "serving",
        "optional",
        "tokens generated per token delivered, the incident vs the fixed stack",
        minutes_cpu=1,
        minutes_gpu=1,
        learner_minutes=30,
        min_ratio=5.0,
        suite_min_ratio=4.0,
        done=True,
        default_seed=0,
        cause_words=(
            "cancel",
            "cancels",
            "cancelled",
            "canceled",
            "cancelling",
            "canceling",
            "cancellation",
            "CancelledError",
            "GeneratorExit",
            "abort",
            "aborts",
            "aborted",
            "aborting",
            "abort_request",
            "ignore_client_abort",
            "proxy_ignore_client_abort",
            "aclose",
            "is_disconnected",
            "http.disconnect",
            "disconnect handling",
            "keeps reading",
            "reads on",
            "reading on",
            "read to the end for nobody",
            "buffering",
        ),
    ),
    Lab(
        287,
        "primary_cluster_down",
        "The primary cluster is down",
        "serving",
        "optional",
        "success ratio and p95 under each fault",
    ),
    Lab(
        288,
        "killed_while_loading",
        "Killed while loading the model",
        "platform",
        "optional",
        "container starts to get one ready pod, as deployed vs fixed",
        minutes_cpu=2,
        learner_minutes=30,
        min_ratio=3.0,
        suite_min_ratio=2.0,
        done=True,
        default_seed=0,
        cause_words=("startupProbe", "startup probe", "startup budget", "KEP-950"),
    ),
    Lab(
        289,
        "wrong_results_after_upgrade",
        "Wrong results after an upgrade",
        "environment",
        "real",
        "compatibility problems caught before serving",
    ),
    Lab(
        290,
        "p99_spikes",
        "p99 latency spikes, p50 is fine",
        "runtime",
        "optional",
        "p99 time to first token, the server as shipped vs the learner's fix",
        minutes_cpu=2,
        minutes_gpu=2,
        learner_minutes=40,
        min_ratio=3.0,
        done=True,
        default_seed=0,
        cause_words=(
            "freeze",
            "gc.freeze",
            "gen-2",
            "gen2",
            "generation-2",
            "generation 2",
            "full collection",
            "full collections",
            "stop-the-world",
            "chunked",
            "chunk",
            "chunks",
            "long_prefill_token_threshold",
            "to_thread",
            "run_in_executor",
            "off the loop",
        ),
        suite_min_ratio=3.0,
    ),
    Lab(
        291,
        "api_key_abuse",
        "One API key slows everyone down",
        "serving",
        "optional",
        "other customers' p95 TTFT while one key sends its traffic, as deployed vs fixed",
        minutes_cpu=2,
        minutes_gpu=2,
        learner_minutes=40,
        services=("redis",),
        min_ratio=3.0,
        suite_min_ratio=2.0,
        done=True,
        default_seed=0,
        cause_words=(
            "counts requests",
            "only requests",
            "tokens per minute",
            "token budget",
            "token bucket",
            "refund",
            "reserve",
            "atomic",
            "responses in flight per key",
        ),
    ),
    Lab(
        292,
        "cpu_pegged_gpu_idle",
        "CPU at 100%, GPU idle",
        "runtime",
        "optional",
        "longest event-loop stall under a customer's long texts, as shipped vs fixed",
        minutes_cpu=2,
        minutes_gpu=2,
        learner_minutes=35,
        min_ratio=5.0,
        suite_min_ratio=5.0,
        done=True,
        default_seed=0,
        allowed_flags=("process",),
        cause_words=(
            "quadratic",
            "super-linear",
            "superlinear",
            "merge loop",
            "merge pass",
            "no white space",
            "without white space",
            "character cap",
            "cap characters",
            "process pool",
            "ProcessPoolExecutor",
            "run_in_executor",
            "off the event loop",
            "off the loop",
        ),
    ),
    Lab(
        293,
        "slow_cold_start",
        "Cold start takes minutes",
        "weights",
        "optional",
        "cold weights load, production's torch.load of the training checkpoint vs yours",
        minutes_cpu=2,
        learner_minutes=35,
        min_ratio=4.0,
        suite_min_ratio=3.0,
        done=True,
        default_seed=0,
        cause_words=(
            "optimizer state",
            "optimiser state",
            "exp_avg",
            "Adam moments",
            "EMA copy",
            "oversized",
            "read amplification",
            "loader-bound",
            "storage-bound",
            "unpickling",
        ),
    ),
    Lab(
        294,
        "memory_grows_with_traffic",
        "GPU memory grows with traffic",
        "compile",
        "real",
        "memory reserved beyond the weights after the traffic, as deployed vs fixed",
        minutes_cpu=2,
        minutes_gpu=3,
        learner_minutes=40,
        min_ratio=3.0,
        suite_min_ratio=3.0,
        done=True,
        default_seed=0,
        cause_words=(
            "bucket",
            "buckets",
            "bucketing",
            "bucketed",
            "mark_dynamic",
            "set_stance",
            "fail_on_recompile",
            "capture sizes",
            "cudagraph_capture_sizes",
            "graph per shape",
            "graph per size",
            "one graph per",
            "per distinct shape",
        ),
    ),
    Lab(
        295,
        "spot_reclaim",
        "Spot instance reclaimed mid-stream",
        "serving",
        "optional",
        "in-flight streams completed within the notice",
    ),
    Lab(
        296,
        "bandwidth_blind_spot",
        "Memory bandwidth nobody sees",
        "telemetry",
        "real",
        "a GEMM's memory-bandwidth use: the utilisation reading vs its measured share of the peak",
        minutes_cpu=1,
        minutes_gpu=2,
        learner_minutes=30,
        min_ratio=2.0,
        suite_min_ratio=1.5,
        done=True,
        default_seed=0,
        cause_words=(
            "duty cycle",
            "duty cycles",
            "duty-cycle",
            "percent of time",
            "share of time",
            "shares of time",
            "fraction of time",
            "bandwidth-bound",
            "memory-bound",
            "compute-bound",
            "launch-bound",
            "overhead-bound",
            "write-allocate",
            "roofline",
        ),
    ),
    Lab(
        297,
        "collective_timeout",
        "Collective operation timed out",
        "distributed",
        "optional",
        "seconds a stopped job stays silent, default settings vs fixed",
        minutes_cpu=2,
        learner_minutes=40,
        min_ratio=3.0,
        suite_min_ratio=1.5,
        done=True,
        default_seed=0,
        cause_words=(
            "desync",
            "desynced",
            "desyncs",
            "desynchronised",
            "desynchronized",
            "skipped",
            "skips",
            "rank-local",
            "left out",
        ),
    ),
    Lab(
        298,
        "threads_starve_the_gpu",
        "Threads starve the GPU",
        "runtime",
        "optional",
        "GPU idle fraction, threads vs processes",
    ),
    Lab(
        299,
        "errors_during_rollout",
        "Errors during every rollout",
        "platform",
        "optional",
        "requests lost during a rollout, production vs fixed",
        minutes_cpu=3,
        learner_minutes=45,
        min_ratio=5.0,
        done=True,
        default_seed=0,
        cause_words=(
            "preStop",
            "drain",
            "drains",
            "draining",
            "drained",
            "propagation",
            "graceful",
            "gracefully",
        ),
        suite_min_ratio=5.0,
    ),
    Lab(
        300,
        "total_outage",
        "Total outage game day",
        "capstone",
        "optional",
        "time to mitigate with evidence preserved",
    ),
)

_BY_NUMBER = {lab.number: lab for lab in LABS}


class UnknownLab(KeyError):
    """No lab has that number or slug."""


def get(key: str | int | Lab) -> Lab:
    """A lab by number (276, "276") or slug ("276_oom_despite_free_memory"); a Lab as is."""
    if isinstance(key, Lab):
        return key
    text = str(key).strip()
    number = text.split("_", 1)[0]
    if not number.isdigit() or int(number) not in _BY_NUMBER:
        known = f"{LABS[0].number}-{LABS[-1].number}"
        raise UnknownLab(f"no lab {key!r}: labs are numbered {known} (see `srelab list`)")
    lab = _BY_NUMBER[int(number)]
    if "_" in text and text != lab.slug:
        raise UnknownLab(f"lab {number} is {lab.slug!r}, not {text!r}")
    return lab


def done() -> list[Lab]:
    """Labs whose solution, notebook and checks exist."""
    return [lab for lab in LABS if lab.done]
