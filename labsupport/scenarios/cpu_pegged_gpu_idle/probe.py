"""Try a deployment's start-up code on a server with no engine and no traffic, in seconds.

    >>> from labsupport import bpe
    >>> from labsupport.scenarios.cpu_pegged_gpu_idle import probe
    >>> got = probe.probe(None, bpe.load().ranks, max_model_len=8)
    >>> got["plain"]["outcome"], got["over"]["outcome"]
    ('ids', 'RuntimeError')

`probe(configure, ranks)` calls configure(server), then awaits server.tokenize for ordinary
text, for the longest run that still fits in max_model_len tokens, and for a run more than
twice what could fit, and says what came back (ids, a 400, an error), how long each took and
how late the loop's 5 ms probe woke meanwhile. The checks run it before any workload.
"""

from __future__ import annotations

import asyncio
import time

from labsupport.scenarios.cpu_pegged_gpu_idle import frontend
from labsupport.scenarios.cpu_pegged_gpu_idle.server import (
    _children_left,
    _children_now,
    _lag_probe,
    _resolve,
)


class ProbeTokenizer:
    """The probe's tokenizer: the model's, but it refuses (at once) any text longer than
    `limit` characters, which no sensible cap lets through. It pickles with its limit."""

    def __init__(self, ranks: dict, limit: int):
        from labsupport import bpe

        self.inner, self.limit = bpe.from_ranks(ranks), limit

    def __getstate__(self) -> dict:
        return {"ranks": self.inner.ranks, "limit": self.limit}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["ranks"], state["limit"])

    @property
    def longest_token_chars(self) -> int:
        return self.inner.longest_token_chars

    @property
    def vocab_size(self) -> int:
        return self.inner.vocab_size

    def encode(self, text: str) -> list[int]:
        if len(text) > self.limit:
            raise RuntimeError(f"asked to tokenize {len(text)} characters")
        return self.inner.encode(text)

    def decode(self, ids) -> str:
        return self.inner.decode(ids)


def run_token(tok) -> bytes:
    """The vocabulary's longest token made of one repeated printable character (e.g. a line of
    dashes): a run of it tokenizes to len(run) / len(token) tokens, slowly."""
    return max(
        (t for t in tok.ranks if len(set(t)) == 1 and not t.isspace() and t[:1].isascii()),
        key=len,
    )


def probe(configure, ranks: dict, *, max_model_len: int = 64) -> dict:
    """Call configure(server) on a server with no engine and no traffic, then ask its tokenize
    for: ordinary text; the longest run that fits in max_model_len tokens (timing the loop's
    lag meanwhile); a run of more than twice what could fit. What came back, as data."""
    from labsupport import bpe

    had = _children_now()
    hook = _resolve(configure)
    ref = bpe.from_ranks(ranks)
    cap = max_model_len * ref.longest_token_chars
    tok = ProbeTokenizer(ranks, limit=2 * cap)
    front = frontend.Frontend(tok, max_model_len=max_model_len, path="prompt")
    if hook is not None:
        hook(front.server)
    unit = run_token(ref).decode()
    texts = {
        "plain": ("Hello world, how are you today? " * 10)[:300],
        "fit": unit * max_model_len,  # max_model_len tokens: it fits
        "over": unit[0] * (2 * cap + 1),  # more than twice what could fit
    }

    async def ask(text: str) -> dict:
        lag, stop = [], asyncio.Event()
        probe_task = asyncio.create_task(_lag_probe(stop, time.perf_counter(), lag, False))
        await asyncio.sleep(0.02)
        t = time.perf_counter()
        out = {"chars": len(text)}
        try:
            ids = await asyncio.wait_for(front.server.tokenize(text), 30.0)
            out["outcome"], out["ok"] = "ids", isinstance(ids, list) and ids == ref.encode(text)
        except frontend.PromptRejected as exc:
            out["outcome"], out["message"] = "rejected", str(exc)[:200]
        except Exception as exc:  # noqa: BLE001 - reported to the check
            out["outcome"], out["message"] = type(exc).__name__, str(exc)[:200]
        out["took_ms"] = (time.perf_counter() - t) * 1e3
        stop.set()
        await probe_task
        out["max_lag_ms"] = max((ms for _, ms in lag), default=0.0)
        return out

    async def main() -> dict:
        return {name: await ask(text) for name, text in texts.items()}

    try:
        got = asyncio.run(main())
    finally:
        errors = front.server.shutdown()
    got["children_left"] = _children_left(had) + [f"on_shutdown raised {e}" for e in errors]
    got["cap_chars"] = cap
    return got
