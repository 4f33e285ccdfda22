"""A byte-level BPE tokenizer: a regex split into pieces, then byte-pair merges in each piece.

    >>> from labsupport.bpe.tokenizer import Tokenizer
    >>> tok = Tokenizer({b"ab": 256, b"abc": 257}, pattern=r"\\S+|\\s+")
    >>> tok.encode("abc ab")
    [257, 32, 256]
    >>> tok.decode([257, 32, 256])
    'abc ab'

How tiktoken encodes (`CoreBPE` in its `src/lib.rs`): the text is split with a regular
expression into pieces (words with their leading space, number runs, punctuation runs, white
space); each piece found whole in the vocabulary is one token; any other piece starts as single
bytes, and the adjacent pair of lowest rank is merged, again and again, until no adjacent pair
is in the vocabulary (`_byte_pair_merge`: one merge per pass, each pass a scan of the piece).
Short pieces are cached. Ranks are the merge order: byte b has rank b, the i-th merge 256 + i.
"""

from __future__ import annotations

import re

# GPT-2's split (words, numbers, punctuation runs, each with one leading space; white space),
# written for the standard `re` module: [^\W\d_] is a letter, (?:[^\s\w]|_) punctuation.
PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?[^\W\d_]+| ?\d+| ?(?:[^\s\w]|_)+|\s+(?!\S)|\s+"""
NO_RANK = 1 << 30
CACHE_PIECE_CHARS = 64  # pieces up to this long are cached, as words of ordinary text are


class Tokenizer:
    """Byte-level BPE over `ranks` (token bytes -> id; single bytes are ids 0-255)."""

    def __init__(self, ranks: dict[bytes, int], *, pattern: str = PATTERN):
        self.ranks = {bytes([b]): b for b in range(256)}
        self.ranks.update(ranks)
        self.pattern = pattern
        self._split = re.compile(pattern)
        self._decoder = {i: t for t, i in self.ranks.items()}
        self._cache: dict[str, list[int]] = {}

    def __getstate__(self) -> dict:  # what a process pool sends: the vocabulary, not the cache
        return {"ranks": self.ranks, "pattern": self.pattern}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["ranks"], pattern=state["pattern"])

    @property
    def vocab_size(self) -> int:
        return len(self.ranks)

    @property
    def longest_token_chars(self) -> int:
        """The most characters one token can cover (a prompt of N chars needs >= N / this)."""
        return max(len(t.decode("utf-8", "replace")) for t in self.ranks)

    def pieces(self, text: str) -> list[str]:
        return self._split.findall(text)

    def encode(self, text: str) -> list[int]:
        """Token ids of `text`."""
        ids: list[int] = []
        for piece in self._split.findall(text):
            ids.extend(self.encode_piece(piece))
        return ids

    def encode_piece(self, piece: str) -> list[int]:
        cached = self._cache.get(piece)
        if cached is not None:
            return cached
        data = piece.encode("utf-8")
        whole = self.ranks.get(data)
        ids = [whole] if whole is not None else self._byte_pair_merge(data)
        if len(piece) <= CACHE_PIECE_CHARS:
            self._cache[piece] = ids
        return ids

    def _byte_pair_merge(self, data: bytes) -> list[int]:
        """Merge the adjacent pair of lowest rank until none is in the vocabulary."""
        ranks = self.ranks
        starts = list(range(len(data) + 1))  # token i is data[starts[i]:starts[i + 1]]
        pair_ranks = [ranks.get(data[i : i + 2], NO_RANK) for i in range(len(data) - 1)]
        while pair_ranks:
            best = min(pair_ranks)
            if best == NO_RANK:
                break
            i = pair_ranks.index(best)
            del starts[i + 1]  # tokens i and i + 1 become one
            del pair_ranks[i]
            if i < len(pair_ranks):
                pair_ranks[i] = ranks.get(data[starts[i] : starts[i + 2]], NO_RANK)
            if i > 0:
                pair_ranks[i - 1] = ranks.get(data[starts[i - 1] : starts[i + 1]], NO_RANK)
        return [ranks[data[starts[i] : starts[i + 1]]] for i in range(len(starts) - 1)]

    def decode(self, ids: list[int]) -> str:
        return b"".join(self._decoder[i] for i in ids).decode("utf-8", "replace")
