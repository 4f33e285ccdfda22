"""Lab 294's batched model: every row is the model's own prompt, and padding at the end of a
prompt (or extra rows) leaves its logits alone: the premise of the fix."""

import torch

from labsupport.scenarios.memory_grows_with_traffic import model


def test_a_batch_gives_each_prompts_own_logits():
    m = model.build("cpu")
    ids = torch.randint(0, m.vocab_size, (3, 11), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = m(ids)
    assert out.shape == (3, 11, m.vocab_size)
    for row in range(3):
        assert torch.allclose(out[row], m.reference(ids[row]), atol=1e-5)


def test_padding_after_the_prompt_changes_nothing_and_padding_before_does():
    m = model.build("cpu")
    ids = torch.randint(0, m.vocab_size, (2, 9), generator=torch.Generator().manual_seed(2))
    padded = ids.new_zeros((4, 16))
    padded[:2, :9] = ids
    front = ids.new_zeros((2, 16))
    front[:, 7:] = ids
    with torch.no_grad():
        want = m(ids)
        assert torch.allclose(m(padded)[:2, :9], want, atol=1e-5)
        assert not torch.allclose(m(front)[:, 7:], want, atol=1e-3)


def test_the_weights_are_seeded():
    a, b = model.build("cpu"), model.build("cpu")
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert model.GPU_CONFIG.d_model > model.CPU_CONFIG.d_model
