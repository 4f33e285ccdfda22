"""Lab 290's server state: the start-up state, requests and their response streams.

    >>> from labsupport.scenarios.p99_spikes.state import LongLivedHeap, Request
    >>> heap = LongLivedHeap(3_000, 500, seed=0)
    >>> heap.intact()
    True
    >>> r = Request(0, -1, 0.0, 64, 8)
    >>> r.on_token.__self__.request is r   # request -> stream callback -> stream -> request
    True

`LongLivedHeap` is what a server builds at start-up and keeps for ever (a tokenizer
vocabulary, a prefix-cache block index). A `Request` holds its `Stream` through the stream's
callback, and the stream holds the request: a reference cycle, as in real servers where a
request object and its output handler point at each other. `Request.live` counts requests
not yet freed; measured requests also record when they were freed.
"""

from __future__ import annotations

import gc
import time

import numpy as np


class TokenInfo:
    """One tokenizer vocabulary entry (a BPE piece and the merge that built it)."""

    __slots__ = ("token_id", "piece", "merge")

    def __init__(self, token_id: int, piece: str, merge: list):
        self.token_id, self.piece, self.merge = token_id, piece, merge


class CachedBlock:
    """One prefix-cache block: its id, the token ids it holds, its parent block."""

    __slots__ = ("block_id", "token_ids", "parent")

    def __init__(self, block_id: int, token_ids: list, parent):
        self.block_id, self.token_ids, self.parent = block_id, token_ids, parent


class LongLivedHeap:
    """The start-up state: every object here lives as long as the server."""

    def __init__(self, tracked_objects: int, vocab_size: int, seed: int):
        was_enabled = gc.isenabled()
        gc.disable()  # start-up cost only: the state is the same, it is built 3x faster
        try:
            self._build(max(3, tracked_objects), vocab_size, seed)
        finally:
            if was_enabled:
                gc.enable()
        self.fingerprint = self._fingerprint()

    def _build(self, tracked_objects: int, vocab_size: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.pieces: list[str] = [f"tok{i:05d}" for i in range(vocab_size)]
        ids = list(range(vocab_size))
        n_entries = max(1, tracked_objects // 6)  # TokenInfo + its merge list: 2 tracked each
        self.vocab: dict[str, TokenInfo] = {}
        for i in range(n_entries):
            a, b = i % vocab_size, (i * 7 + 3) % vocab_size
            self.vocab[f"{self.pieces[a]}|{i}"] = TokenInfo(i, self.pieces[a], [ids[a], ids[b]])
        n_blocks = max(1, tracked_objects // 3)  # CachedBlock + its token list: 2 tracked each
        draws = rng.integers(0, vocab_size, size=(n_blocks, 16)).tolist()
        self.blocks: dict[int, CachedBlock] = {}
        parent = None
        for i, row in enumerate(draws):
            block = CachedBlock(i, [ids[t] for t in row], parent if i % 8 else None)
            self.blocks[i] = block
            parent = block

    def _fingerprint(self) -> tuple[int, int, int]:
        last = self.blocks[len(self.blocks) - 1]
        return len(self.vocab), len(self.blocks), sum(last.token_ids)

    def intact(self) -> bool:
        """True while nobody has emptied or replaced the state."""
        try:
            return self._fingerprint() == self.fingerprint
        except (KeyError, AttributeError, TypeError):
            return False


class Logprob:
    """Per-token top-logprob entry, as OpenAI-compatible servers return with `top_logprobs=k`
    (the token's text and its UTF-8 bytes as a list of ints, as the API sends them)."""

    __slots__ = ("logprob", "rank", "decoded", "bytes")

    def __init__(self, logprob: float, rank: int, decoded: str):
        self.logprob, self.rank, self.decoded = logprob, rank, decoded
        self.bytes = list(decoded.encode())


FREED = {"at": np.zeros(0), "clock": time.perf_counter, "origin": 0.0}  # measured requests


class Request:
    """One generation request. Holds its stream, whose callback holds it back: a cycle."""

    __slots__ = tuple(
        "request_id index arrival_s prompt_tokens prefilled max_tokens output_token_ids"
        " logprobs on_token first_token_s last_token_s finish_s".split()
    )
    live = 0  # requests not yet freed

    def __init__(self, request_id, index, arrival_s, prompt_tokens, max_tokens):
        Request.live += 1
        self.request_id, self.index, self.arrival_s = request_id, index, arrival_s
        self.prompt_tokens, self.prefilled, self.max_tokens = prompt_tokens, 0, max_tokens
        self.output_token_ids: list[int] = []
        self.logprobs: list | None = []
        self.first_token_s = self.last_token_s = self.finish_s = 0.0
        self.on_token = Stream(self).push  # request -> bound method -> stream -> request

    def __del__(self):
        Request.live -= 1
        if self.index >= 0:
            at = FREED["at"]
            if self.index < at.size:
                at[self.index] = FREED["clock"]() - FREED["origin"]


class Stream:
    """The response stream of one request (what an SSE handler would drain)."""

    __slots__ = ("request", "chunks")

    def __init__(self, request: Request):
        self.request = request
        self.chunks: list[str] = []

    def push(self, delta: tuple) -> None:
        self.chunks.append(delta[1])
