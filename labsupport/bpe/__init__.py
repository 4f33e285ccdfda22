"""A byte-level BPE tokenizer trained on the spot from Python's own sources (nothing downloaded).

    >>> from labsupport import bpe
    >>> tok = bpe.load()
    >>> ids = tok.encode("def handler(request):")
    >>> tok.decode(ids), len(ids) < len("def handler(request):")
    ('def handler(request):', True)
    >>> bpe.load() is tok                      # trained once per process
    True

`load()` trains `NUM_MERGES` merges on a fixed set of standard-library modules (about a second)
and keeps the tokenizer for the process; `from_ranks(ranks)` rebuilds one from a vocabulary
sent by another process (a tokenizer pickles as its vocabulary). Modules: `tokenizer` (split and
merge, as tiktoken's `CoreBPE` does), `train` (the corpus and BPE training).
"""

from __future__ import annotations

from labsupport.bpe.tokenizer import Tokenizer

NUM_MERGES = 768
CORPUS = (
    "asyncio/base_events.py", "asyncio/tasks.py", "json/decoder.py", "logging/__init__.py",
    "http/client.py", "textwrap.py", "string.py", "csv.py", "difflib.py",
)  # fmt: skip
_LOADED: dict[int, Tokenizer] = {}

__all__ = ["NUM_MERGES", "Tokenizer", "from_ranks", "load"]


def load(num_merges: int = NUM_MERGES) -> Tokenizer:
    """The tokenizer trained on the standard library's sources (once per process)."""
    if num_merges not in _LOADED:
        from labsupport.bpe import train

        _LOADED[num_merges] = Tokenizer(train.train_ranks(train.corpus(CORPUS), num_merges))
    return _LOADED[num_merges]


def from_ranks(ranks: dict[bytes, int]) -> Tokenizer:
    """A tokenizer over a vocabulary trained elsewhere (token bytes -> id)."""
    return Tokenizer(ranks)
