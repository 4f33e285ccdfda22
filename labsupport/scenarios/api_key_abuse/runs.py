"""Rounds of the API's traffic, as the notebook and the checks play them (lab 291).

    >>> from labsupport.scenarios.api_key_abuse import runs
    >>> runs.ROUNDS_S["suite"]
    {'quiet': 2.5, 'busy': 5.0}

- `incident(variant, scale)`: the stack with the limits as deployed: a quiet round (every
  customer but one), then a busy round (everyone); `Rounds` keeps both.
- `compare(variant, scripts, scale)`: one stack, the same customers: a quiet round and a busy
  one with your scripts, and a busy one with the deployed scripts, for the before/after.
- `graded_busy(variant, scale)` is the busy round alone (the diagnosis check's evidence).
Each run starts Redis and the engine once, one gateway per pair of scripts (every customer's
first request is a warm-up, not measured), and stops everything at the end. A learner's
scripts are text run by Redis: no learner Python runs in any of these processes.
"""

from __future__ import annotations

from dataclasses import dataclass

from labsupport import progress, wire
from labsupport.scenarios.api_key_abuse.production import PRODUCTION, Scripts
from labsupport.scenarios.api_key_abuse.stack import Round, running

ROUNDS_S = {"full": {"quiet": 4.0, "busy": 8.0}, "suite": {"quiet": 2.5, "busy": 5.0}}
WARMUP_S = 0.6
START_S = 12.0  # Redis, the engine and a gateway coming up, on 2 busy cores


@wire.record
@dataclass
class Rounds:
    """The rounds of one run, by label ("quiet", "busy", "busy, as deployed" ...)."""

    seed: int
    heavy: str
    heavy_starts_s: float
    rounds: dict  # label -> Round
    device: str = ""
    then: object = None  # what `compare(then=...)` returned

    @property
    def victims(self) -> list[str]:
        keys = {r.key for rnd in self.rounds.values() for r in rnd.results}
        return sorted(k for k in keys if k != self.heavy)

    def victims_p95_ms(self, label: str) -> float | None:
        """p95 TTFT of everyone but the heavy key in round `label`, in ms, counting a request
        that got no token before the round ended as waiting that long."""
        from labsupport.serving.loadgen import percentile

        rnd = self.rounds[label]
        since = self.heavy_starts_s if label.startswith("busy") else 0.0
        return percentile(victim_ttfts_ms(rnd, self.victims, since), 95)


def victim_ttfts_ms(rnd: Round, keys, since_s: float = 0.0) -> list[float]:
    """Time to first token (ms) of `keys`' requests started after `since_s`; a request that got
    no token by the end counts with the time it waited (a lower bound). 429s do not count."""
    out = []
    for r in rnd.results:
        if r.key in keys and r.start_s >= since_s and r.outcome in ("ok", "cut", "truncated"):
            out.append(1000 * (r.ttft_s if r.ttft_s is not None else r.e2e_s))
    return out


def _play(gw, variant, label: str, *, heavy: bool, round_s: float) -> Round:
    return gw.play(variant.traffics(heavy=heavy, round_s=round_s), round_s=round_s, label=label)


def _warm(gw, variant) -> None:
    gw.play(variant.traffics(heavy=False, round_s=WARMUP_S), round_s=WARMUP_S, label="warm-up")


def incident(variant, scale: str = "full", *, show_progress: bool = True) -> Rounds:
    """The deployed limits: a quiet round, then a busy one."""
    s = ROUNDS_S[scale]
    expected = START_S + WARMUP_S + s["quiet"] + s["busy"] + 4
    with progress.timed(expected, "the API, as deployed", disable=None if show_progress else True):
        with running() as stack, stack.gateway(PRODUCTION, variant.keys) as gw:
            _warm(gw, variant)
            quiet = _play(gw, variant, "quiet", heavy=False, round_s=s["quiet"])
            busy = _play(gw, variant, "busy", heavy=True, round_s=s["busy"])
            device = stack.device
    return Rounds(variant.seed, variant.heavy, variant.heavy_starts_s,
                  {"quiet": quiet, "busy": busy}, device)  # fmt: skip


def graded_busy(variant, scale: str = "suite") -> Rounds:
    """The busy round with the deployed limits, alone (what the diagnosis is graded on)."""
    s = ROUNDS_S[scale]
    with running() as stack, stack.gateway(PRODUCTION, variant.keys) as gw:
        _warm(gw, variant)
        busy = _play(gw, variant, "busy", heavy=True, round_s=s["busy"])
        device = stack.device
    return Rounds(variant.seed, variant.heavy, variant.heavy_starts_s, {"busy": busy}, device)


def compare(variant, scripts: Scripts, scale: str = "full", *, deployed: bool = True,
            plan=None, show_progress: bool = True, then=None) -> Rounds:  # fmt: skip
    """Your scripts (`scripts`): a quiet round and a busy one; then, with `deployed`, the busy
    round with the deployed scripts, on the same engine. `plan`: the keys' limits (the
    variant's). `then(stack)`: more work on the same stack before it stops (its result is
    kept in `Rounds.then`)."""
    s = ROUNDS_S[scale]
    keys = {k: plan or v for k, v in variant.keys.items()}
    expected = START_S + WARMUP_S + s["quiet"] + s["busy"] * (2 if deployed else 1) + 6
    rounds: dict = {}
    extra = None
    with progress.timed(expected, "yours and the deployed limits",
                        disable=None if show_progress else True):  # fmt: skip
        with running() as stack:
            with stack.gateway(scripts, keys) as gw:
                _warm(gw, variant)
                rounds["quiet"] = _play(gw, variant, "quiet", heavy=False, round_s=s["quiet"])
                rounds["busy"] = _play(gw, variant, "busy", heavy=True, round_s=s["busy"])
            if deployed:
                with stack.gateway(PRODUCTION, keys) as gw:  # the engine is warm already
                    rounds["busy, as deployed"] = _play(gw, variant, "busy, as deployed",
                                                        heavy=True, round_s=s["busy"])  # fmt: skip
            if then is not None:
                extra = then(stack)
            device = stack.device
    return Rounds(variant.seed, variant.heavy, variant.heavy_starts_s, rounds, device, extra)
