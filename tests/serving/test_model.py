import pytest
import torch

from labsupport.serving.kv_cache import PagedKVCache
from labsupport.serving.model import ModelConfig, TinyLM, Tokenizer

CFG = ModelConfig()


@pytest.fixture(scope="module")
def model():
    return TinyLM(CFG).init_weights(seed=0).eval()


def test_tokenizer_encodes_any_text_and_decodes_every_id():
    tok = Tokenizer(CFG.vocab_size)
    assert tok.encode("Hi é") == list("Hi é".encode())
    assert tok.decode([72, 105]) == "Hi"
    pieces = [tok.decode_token(i) for i in range(CFG.vocab_size)]
    assert all(pieces) and all(p.isprintable() for p in pieces)
    with pytest.raises(ValueError):
        Tokenizer(100)


def test_same_seed_same_weights_other_seed_other_weights():
    a, b, c = (TinyLM(CFG).init_weights(s) for s in (0, 0, 1))
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["tok_emb.weight"], sc["tok_emb.weight"])
    assert 1e6 < a.param_bytes() < 2e7  # a few MB


def test_init_does_not_touch_the_global_rng():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    TinyLM(CFG).init_weights(seed=7)
    assert torch.equal(torch.rand(3), expected)


@torch.no_grad()
def test_paged_prefill_and_batched_decode_match_plain_attention(model):
    """Sequences in scattered blocks, decoded together, give the logits of a full recompute."""
    kv = PagedKVCache(CFG, num_blocks=32, block_size=4)
    alloc = kv.allocator
    alloc.allocate("hole", 9)  # so the others' blocks are not at the start of the pool
    prompts = {"a": [5, 9, 200, 3, 77], "b": [1, 2], "c": list(range(40, 51))}
    last = {}
    for rid, ids in prompts.items():
        alloc.allocate(rid, len(ids))
        slots = torch.tensor(alloc.slots(rid, 0, len(ids)))
        logits = model.prefill(torch.tensor(ids), slots, kv.k, kv.v)
        ref = model.reference_logits(torch.tensor(ids))[-1]
        torch.testing.assert_close(logits, ref, rtol=1e-4, atol=1e-4)
        last[rid] = int(logits.argmax())
    alloc.free("hole")
    seqs = {rid: ids + [last[rid]] for rid, ids in prompts.items()}
    for _ in range(6):  # crosses block boundaries for every sequence
        rids = list(seqs)
        for rid in rids:
            alloc.allocate(rid, len(seqs[rid]))
        ctx = [alloc.slots(rid, 0, len(seqs[rid])) for rid in rids]
        width = max(map(len, ctx))
        logits = model.decode(
            torch.tensor([seqs[r][-1] for r in rids]),
            torch.tensor([len(seqs[r]) - 1 for r in rids]),
            torch.tensor([c[-1] for c in ctx]),
            torch.tensor([c + [0] * (width - len(c)) for c in ctx]),
            torch.tensor([[True] * len(c) + [False] * (width - len(c)) for c in ctx]),
            kv.k,
            kv.v,
        )
        for row, rid in zip(logits, rids, strict=True):
            ref = model.reference_logits(torch.tensor(seqs[rid]))[-1]
            torch.testing.assert_close(row, ref, rtol=1e-4, atol=1e-4)
            seqs[rid].append(int(row.argmax()))
