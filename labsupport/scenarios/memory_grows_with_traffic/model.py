"""The server's model: the serving labs' tiny transformer, run over a batch of prompts.

    >>> import torch
    >>> from labsupport.scenarios.memory_grows_with_traffic import model
    >>> m = model.build("cpu")
    >>> ids = torch.randint(0, m.vocab_size, (3, 7))
    >>> m(ids).shape
    torch.Size([3, 7, 512])
    >>> bool(torch.allclose(m(ids)[1], m.reference(ids[1]), atol=1e-5))
    True

`BatchedLM.forward(ids)` takes token ids of shape (batch, length) and returns the logits of
every position, (batch, length, vocab), with causal attention inside each prompt: what a
prefill step computes. `reference(row)` is the same model on one prompt
(`TinyLM.reference_logits`), the ground truth for any batching or padding around it. On a GPU
the model is wider (`GPU_CONFIG`), so that what the GPU keeps per recorded shape is large
enough to see.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from labsupport.serving.model import ModelConfig, TinyLM

__all__ = ["BatchedLM", "build", "CPU_CONFIG", "GPU_CONFIG"]

CPU_CONFIG = ModelConfig()  # vocab 512, d_model 128, 2 layers
GPU_CONFIG = ModelConfig(vocab_size=8192, d_model=1024, n_layers=4, n_heads=8, d_ff=4096)


class BatchedLM(nn.Module):
    """Token ids (batch, length) -> logits (batch, length, vocab)."""

    def __init__(self, lm: TinyLM):
        super().__init__()
        self.lm = lm
        self.vocab_size = lm.cfg.vocab_size

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        lm = self.lm
        positions = torch.arange(ids.shape[1], device=ids.device)
        x = lm.tok_emb(ids) + lm.pos_emb(positions)
        for block in lm.blocks:
            q, k, v = lm._qkv(block, x)  # each (batch, length, heads, head_dim)
            out = F.scaled_dot_product_attention(
                q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True
            )
            x = x + block.proj(out.transpose(1, 2).reshape(x.shape))
            x = x + block.mlp(x)
        return lm.lm_head(lm.ln_f(x))

    @torch.no_grad()
    def reference(self, row: torch.Tensor) -> torch.Tensor:
        """Logits of one prompt (length,) -> (length, vocab), without any batching."""
        return self.lm.reference_logits(row)


def build(device: str = "cpu", seed: int = 0) -> BatchedLM:
    """The model with seeded weights, in eval mode, on `device`."""
    cfg = GPU_CONFIG if str(device).startswith("cuda") else CPU_CONFIG
    return BatchedLM(TinyLM(cfg).init_weights(seed)).eval().to(device)
