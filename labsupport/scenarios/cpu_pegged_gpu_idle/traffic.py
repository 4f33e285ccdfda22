"""Lab 292's traffic: chat requests on a fixed-seed open-loop schedule, and two long texts.

    >>> from labsupport.scenarios.cpu_pegged_gpu_idle import traffic, variant
    >>> v = variant(0)
    >>> reqs = traffic.schedule(v, duration_s=4.0)
    >>> [r.role for r in reqs if r.role != "chat"]
    ['big', 'near']
    >>> len(traffic.long_text(v, 50))
    50

Chat prompts are a few sentences of ordinary text. The variant's client sends one text too
long to fit (`big_chars`) and, later, one of the same kind a little under what could fit
(`fit_chars`); where it travels (the prompt or a stop sequence) is the variant's `path`.
"""

from __future__ import annotations

import numpy as np

from labsupport.scenarios.cpu_pegged_gpu_idle.frontend import Request

WORDS = (
    "the request model token server stream batch latency prompt answer cache user time "
    "summary report please write short explain code list first then what when which data "
    "query result error value table page line number name file"
).split()
LETTERS = "etaoinshrdlucmfwypvbgk"
LETTER_P = np.array([12.7, 9.1, 8.2, 7.5, 7.0, 6.7, 6.3, 6.1, 6.0, 4.3, 4.0, 2.8, 2.4, 2.2, 2.4,
                     2.0, 1.9, 1.0, 1.5, 2.0, 0.8, 1.0])  # fmt: skip


def chat_prompt(rng: np.random.Generator) -> str:
    words = rng.choice(WORDS, size=int(rng.integers(8, 25)))
    return " ".join(words).capitalize() + "."


def long_text(variant, chars: int) -> str:
    """`chars` characters of the variant's long text (no white space in it)."""
    rng = np.random.default_rng([292, variant.seed, chars])
    if variant.kind == "letters":  # text that lost its spaces and punctuation
        p = LETTER_P / LETTER_P.sum()
        return "".join(rng.choice(list(LETTERS), size=chars, p=p))
    char = {"rule": "-#", "leader": "._"}[variant.kind][variant.seed % 2]
    return char * chars


def schedule(variant, duration_s: float, *, seed_offset: int = 0, long_texts: bool = True):
    """The requests of one window, sorted by arrival (times in s from the window's start)."""
    rng = np.random.default_rng([292, variant.seed, seed_offset])
    rate = variant.arrival_rate_per_s
    arrivals = np.cumsum(rng.exponential(1.0 / rate, size=int(duration_s * rate * 1.5) + 8))
    arrivals = arrivals[arrivals < duration_s]
    lo, hi = variant.output_tokens
    out = []
    for t in arrivals:
        out.append(("chat", float(t), chat_prompt(rng), (), int(rng.integers(lo, hi + 1))))
    if long_texts:
        for role, chars, at in (
            ("big", variant.big_chars, variant.big_at_s),
            ("near", variant.fit_chars, variant.fit_at_s),
        ):
            text = long_text(variant, chars)
            if variant.path == "stop":
                prompt, stop = chat_prompt(rng), (text,)
            else:
                prompt, stop = "Summarise this: " + text, ()
            out.append((role, at * duration_s, prompt, stop, lo))
    out.sort(key=lambda r: r[1])
    return [
        Request(i, role, t, prompt=p, stop=s, max_tokens=m)
        for i, (role, t, p, s, m) in enumerate(out)
    ]
