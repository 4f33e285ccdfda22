"""Train a byte-level BPE vocabulary on the spot, from text that ships with Python itself.

    >>> from labsupport.bpe import train
    >>> ranks = train.train_ranks(["low lower lowest", "newer newest"], num_merges=5)
    >>> len(ranks), min(ranks.values())
    (5, 256)

`train_ranks(texts, num_merges)` is BPE training as tokenizer libraries do it: split the text
into pieces with the tokenizer's pattern, count the pieces, then repeatedly merge the most
frequent adjacent pair of tokens (ties: the pair of smaller ids, so runs are reproducible).
`corpus()` reads the standard library's own source (the same files on every machine with
this Python), so nothing is downloaded and the vocabulary is built in about a second.
"""

from __future__ import annotations

import heapq
import re
import sysconfig
from collections import Counter, defaultdict
from pathlib import Path

from labsupport.bpe.tokenizer import PATTERN

CORPUS_MODULES = (
    "asyncio/base_events.py", "asyncio/tasks.py", "asyncio/streams.py", "json/decoder.py",
    "json/encoder.py", "logging/__init__.py", "http/client.py", "http/server.py",
    "email/message.py", "urllib/parse.py", "argparse.py", "textwrap.py", "string.py",
    "csv.py", "datetime.py", "fractions.py", "statistics.py", "difflib.py",
)  # fmt: skip


def corpus(modules=CORPUS_MODULES) -> list[str]:
    """The text of some standard-library modules (those this Python has)."""
    root = Path(sysconfig.get_paths()["stdlib"])
    texts = []
    for name in modules:
        path = root / name
        if path.is_file():
            texts.append(path.read_text(encoding="utf-8", errors="replace"))
    if not texts:
        raise FileNotFoundError(f"none of the corpus modules is in {root}")
    return texts


def train_ranks(texts, num_merges: int, *, pattern: str = PATTERN) -> dict[bytes, int]:
    """The first `num_merges` merges of BPE on `texts`: {token bytes: 256 + merge index}."""
    split = re.compile(pattern)
    counts = Counter(p for text in texts for p in split.findall(text))
    words = [list(p.encode("utf-8")) for p in counts]
    freq = list(counts.values())
    token_bytes = {b: bytes([b]) for b in range(256)}
    pairs: Counter = Counter()
    where: dict[tuple[int, int], set[int]] = defaultdict(set)
    for w, (word, n) in enumerate(zip(words, freq, strict=True)):
        for pair in zip(word, word[1:], strict=False):
            pairs[pair] += n
            where[pair].add(w)
    heap = [(-n, pair) for pair, n in pairs.items()]
    heapq.heapify(heap)
    ranks: dict[bytes, int] = {}
    while len(ranks) < num_merges and heap:
        neg, best = heapq.heappop(heap)
        if pairs.get(best, 0) != -neg:
            continue  # a stale entry: the pair's count changed since it was pushed
        if -neg <= 0:
            break
        new_id = 256 + len(ranks)
        token_bytes[new_id] = token_bytes[best[0]] + token_bytes[best[1]]
        ranks[token_bytes[new_id]] = new_id
        for w in list(where.pop(best, ())):
            word, n = words[w], freq[w]
            touched = set(zip(word, word[1:], strict=False))
            for pair in zip(word, word[1:], strict=False):
                pairs[pair] -= n
            merged, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and (word[i], word[i + 1]) == best:
                    merged.append(new_id)
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            words[w] = merged
            for pair in zip(merged, merged[1:], strict=False):
                pairs[pair] += n
                where[pair].add(w)
            touched |= set(zip(merged, merged[1:], strict=False))
            for pair in touched:
                if pair != best and pairs[pair] > 0:
                    heapq.heappush(heap, (-pairs[pair], pair))
        pairs.pop(best, None)
    return ranks
