import pickle

from labsupport import bpe
from labsupport.bpe.tokenizer import Tokenizer


def _naive(ranks: dict, data: bytes) -> list[bytes]:
    """BPE by the book: merge the lowest-ranked adjacent pair (leftmost on ties) until none."""
    parts = [bytes([b]) for b in data]
    while len(parts) > 1:
        scored = [
            (ranks.get(a + b, 1 << 40), i)
            for i, (a, b) in enumerate(zip(parts, parts[1:], strict=False))
        ]
        rank, i = min(scored)
        if rank >= 1 << 40:
            break
        parts[i : i + 2] = [parts[i] + parts[i + 1]]
    return parts


def test_encode_matches_textbook_bpe_and_round_trips():
    tok = bpe.load()
    for text in ("def handler(request):", "-" * 300, "aaaaaaaaab", "Hello, wörld!  \n\tx"):
        ids = tok.encode(text)
        assert tok.decode(ids) == text
        for piece in tok.pieces(text):
            want = [tok.ranks[p] for p in _naive(tok.ranks, piece.encode())]
            assert tok.encode_piece(piece) == want


def test_longest_token_and_a_run_of_it():
    tok = bpe.load()
    assert tok.longest_token_chars == max(len(t.decode("utf-8", "replace")) for t in tok.ranks)
    dash = max((t for t in tok.ranks if set(t) == {ord("-")}), key=len)
    assert len(tok.encode(dash.decode() * 10)) == 10


def test_a_tokenizer_pickles_as_its_vocabulary():
    tok = Tokenizer({b"ab": 256})
    tok.encode("ab ab ab")
    copy = pickle.loads(pickle.dumps(tok))
    assert copy.ranks == tok.ranks and copy._cache == {}
    assert copy.encode("ab") == [256]
