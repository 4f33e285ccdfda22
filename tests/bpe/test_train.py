from labsupport import bpe
from labsupport.bpe import train


def test_training_merges_frequent_pairs_first_and_is_reproducible():
    texts = ["low low low lower lowest", "newer newest new"]
    a = train.train_ranks(texts, 6)
    assert a == train.train_ranks(texts, 6)
    assert sorted(a.values()) == list(range(256, 262))
    first = min(a, key=a.get)
    assert first in (b"lo", b" l", b"ow", b"ne", b"ew", b" n")


def test_load_trains_once_on_the_standard_library():
    tok = bpe.load()
    assert tok.vocab_size == 256 + bpe.NUM_MERGES
    assert bpe.load() is tok
    assert len(tok.encode("import asyncio")) < len("import asyncio") / 2
