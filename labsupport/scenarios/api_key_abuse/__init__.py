"""Lab 291, one API key slows everyone down: the API's customers, its gateway and its engine.

    >>> from labsupport.scenarios.api_key_abuse import variant
    >>> v = variant(0)
    >>> len(v.keys), v.heavy in v.keys, v.chatty in v.keys, v.heavy != v.chatty
    (6, True, True, True)
    >>> variant(0) == v, variant(1) == v
    (True, False)

The stack (`stack`): API clients -> the gateway (`labsupport.gateway`: keys, limits kept in a
real Redis by Lua scripts, relaying streams) -> the engine (`srelab serve`). A seed picks the
customers (their keys and how they use the API: `traffic`), the one whose traffic hurts the
others and what it sends, the busiest customer by request count, the plans' numbers, and when
the trouble starts. `runs` plays rounds of traffic and keeps what every layer saw, `evidence`
turns them into the on-call view, `plots` draws them, `hints` holds the exercises' hints.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from labsupport import wire
from labsupport.gateway.clients import Traffic
from labsupport.gateway.limits import Limits

TEAMS = ("acme", "globex", "initech", "umbrella", "hooli", "stark", "wayne", "wonka", "tyrell",
         "cyberdyne", "soylent", "aperture")  # fmt: skip
PROMPTS = (
    "Summarise this support ticket for me.",
    "Translate 'good morning' into French.",
    "Write a haiku about the sea.",
    "What is the capital of Peru?",
    "Suggest a name for a bakery.",
    "Explain what a hash map is.",
)
# The engine the API runs on (the CPU stand-in paces each step to at least STEP_MS, as a GPU
# step takes its time): a KV cache of BLOCKS x 16 tokens, requests up to MAX_MODEL_LEN tokens.
STEP_MS = 20
BLOCKS = 64
MAX_MODEL_LEN = 256
MAX_NUM_SEQS = 32
ENGINE_ARGS = ("--min-step-ms", str(STEP_MS), "--num-kv-blocks", str(BLOCKS),
               "--max-model-len", str(MAX_MODEL_LEN),
               "--max-num-seqs", str(MAX_NUM_SEQS))  # fmt: skip
HOWS = ("max_tokens", "streams")


@wire.record
@dataclass(frozen=True)
class Variant:
    seed: int
    keys: dict  # API key -> Limits: every key is on the same plan
    customers: tuple  # Traffic of each customer but the heavy one, in key order
    heavy: str  # the key whose traffic hurts the others
    how: str  # what it sends: "max_tokens" (a few huge answers) or "streams" (many at once)
    heavy_traffic: Traffic
    chatty: str  # the key that sends the most requests
    heavy_starts_s: float  # seconds into a round when the heavy key starts
    plan: Limits = field(default_factory=Limits)

    def traffics(self, *, heavy: bool = True, round_s: float = 8.0) -> list[Traffic]:
        """Everyone's traffic for a round of `round_s` seconds (the heavy key's or not)."""
        out = [_until(t, round_s) for t in self.customers]
        if heavy:
            out.append(_until(self.heavy_traffic, round_s))
        return out

    def describe(self) -> str:
        return "\n".join(t.describe() for t in self.customers)


def _until(t: Traffic, stop_s: float) -> Traffic:
    import dataclasses

    return dataclasses.replace(t, stop_s=stop_s)


def _key(rng: random.Random, team: str) -> str:
    return f"sk-{team}-{rng.randrange(16**4):04x}"


def variant(seed: int) -> Variant:
    """The incident of `seed` (the solution notebook runs the lab's default seed)."""
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    rng = random.Random(f"291/{seed}")
    teams = rng.sample(TEAMS, 6)
    keys = [_key(rng, t) for t in teams]
    heavy, chatty = keys[rng.randrange(6)], None
    chatty = rng.choice([k for k in keys if k != heavy])
    how = HOWS[seed % 2]
    plan = Limits(rpm=rng.choice((60, 90, 120)), tpm=rng.choice((40_000, 60_000, 90_000)),
                  max_streams=2, max_global=rng.choice((20, 24)))  # fmt: skip
    customers = []
    for key in keys:
        if key == heavy:
            continue
        busy = key == chatty
        customers.append(
            Traffic(
                key,
                sessions=2 if busy else 1,
                max_tokens=rng.choice((12, 16, 24)),
                prompt=rng.choice(PROMPTS),
                think_s=0.15 if busy else round(rng.uniform(0.2, 0.35), 2),
                label=key,
            )  # fmt: skip
        )
    starts = round(rng.uniform(1.0, 1.6), 2)
    prompt = rng.choice(PROMPTS)
    if how == "max_tokens":  # a few requests, each asking for nearly the whole context
        heavy_traffic = Traffic(heavy, sessions=rng.choice((5, 6)), requests=1,
                                max_tokens=MAX_MODEL_LEN - len(prompt.encode()) - rng.randint(0, 8),
                                prompt=prompt, start_s=starts, label=heavy)  # fmt: skip
    else:  # many requests at once, each of a modest size
        heavy_traffic = Traffic(heavy, sessions=rng.choice((18, 20, 22)), requests=1,
                                max_tokens=rng.choice((80, 96, 112)), prompt=prompt,
                                start_s=starts, label=heavy)  # fmt: skip
    limits = {k: plan for k in keys}
    return Variant(seed, limits, tuple(customers), heavy, how, heavy_traffic, chatty, starts, plan)


__all__ = ["ENGINE_ARGS", "HOWS", "Variant", "variant"]
