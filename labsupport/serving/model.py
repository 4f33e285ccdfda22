"""A tiny decoder-only transformer with paged attention, and its byte-level tokenizer.

    >>> import torch
    >>> from labsupport.serving.model import ModelConfig, Tokenizer, TinyLM
    >>> cfg = ModelConfig()
    >>> model = TinyLM(cfg).init_weights(seed=0)
    >>> ids = Tokenizer(cfg.vocab_size).encode("hello")
    >>> model.reference_logits(torch.tensor(ids)).shape
    torch.Size([5, 512])

The weights are random (seeded), so the text it writes is gibberish, but every step does the
work a real engine does: embeddings, attention over a paged KV cache, an MLP, a vocabulary
projection. `prefill` runs a prompt with causal attention and writes its keys and values into
cache slots; `decode` runs one token for each of a batch of sequences, reading each sequence's
context from the cache through its slot indices (the gather a paged-attention kernel does).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int = 512
    d_model: int = 128
    n_layers: int = 2
    n_heads: int = 4
    d_ff: int = 512
    max_model_len: int = 1024

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads


_SYLLABLES = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]


class Tokenizer:
    """Bytes are tokens 0..255 (so any text encodes); ids above 255 decode to syllables."""

    def __init__(self, vocab_size: int = 512):
        if vocab_size < 256:
            raise ValueError(f"vocab_size must be >= 256 to hold every byte, got {vocab_size}")
        self.vocab_size = vocab_size

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode_token(self, token_id: int) -> str:
        if 32 <= token_id < 127:
            return chr(token_id)
        if token_id < 256:
            return f"<0x{token_id:02X}>"
        k = token_id - 256
        return " " + _SYLLABLES[k % len(_SYLLABLES)] + _SYLLABLES[(k // len(_SYLLABLES)) % 7]

    def decode(self, token_ids: list[int]) -> str:
        return "".join(self.decode_token(t) for t in token_ids)


class _Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=False)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        self.fc1 = nn.Linear(cfg.d_model, cfg.d_ff)
        self.fc2 = nn.Linear(cfg.d_ff, cfg.d_model)

    def mlp(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(self.ln2(x))))


class TinyLM(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        # torch's default initialisers draw from the global RNG; leave it as we found it
        with torch.random.fork_rng(devices=[]):
            self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.d_model)
            self.pos_emb = nn.Embedding(cfg.max_model_len, cfg.d_model)
            self.blocks = nn.ModuleList(_Block(cfg) for _ in range(cfg.n_layers))
            self.ln_f = nn.LayerNorm(cfg.d_model)
            self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)

    @torch.no_grad()
    def init_weights(self, seed: int = 0) -> TinyLM:
        """Fill every parameter from a private generator: same seed, same model, no global RNG."""
        gen = torch.Generator().manual_seed(seed)
        for name, p in sorted(self.named_parameters()):
            if name.endswith("bias"):
                p.zero_()
            elif ".ln" in name or name.startswith("ln_"):
                p.fill_(1.0)
            else:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5 / math.sqrt(p.shape[-1]))
        return self

    def _qkv(self, block: _Block, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Queries, keys, values of `x` [..., d_model], each [..., n_heads, head_dim]."""
        qkv = block.qkv(block.ln1(x))
        return qkv.view(*x.shape[:-1], 3 * self.cfg.n_heads, self.cfg.head_dim).chunk(3, dim=-2)

    def prefill(
        self,
        token_ids: torch.Tensor,
        slot_mapping: torch.Tensor,
        k_cache: torch.Tensor,
        v_cache: torch.Tensor,
        all_positions: bool = False,
    ) -> torch.Tensor:
        """Run a whole sequence (positions 0..T-1), store its K/V at `slot_mapping`.

        Returns the logits of the last position, shape [vocab] (of every position, [T, vocab],
        with `all_positions`: what prompt logprobs need).
        """
        positions = torch.arange(token_ids.shape[0], device=token_ids.device)
        x = self.tok_emb(token_ids) + self.pos_emb(positions)
        for layer, block in enumerate(self.blocks):
            q, k, v = self._qkv(block, x)
            k_cache[layer].index_copy_(0, slot_mapping, k)
            v_cache[layer].index_copy_(0, slot_mapping, v)
            # [T, H, D] -> [H, T, D] for attention over this sequence's own tokens
            out = F.scaled_dot_product_attention(
                q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1), is_causal=True
            )
            x = x + block.proj(out.transpose(0, 1).reshape(x.shape))
            x = x + block.mlp(x)
        return self.lm_head(self.ln_f(x if all_positions else x[-1]))

    def decode(
        self,
        token_ids: torch.Tensor,
        positions: torch.Tensor,
        slot_mapping: torch.Tensor,
        context_slots: torch.Tensor,
        context_mask: torch.Tensor,
        k_cache: torch.Tensor,
        v_cache: torch.Tensor,
    ) -> torch.Tensor:
        """One new token for each of B sequences; returns logits [B, vocab].

        `context_slots[b, j]` is the cache slot of position j of sequence b (padded),
        `context_mask[b, j]` says whether that position exists. The new token's own slot is
        `slot_mapping[b]` and must be among its context slots.
        """
        x = self.tok_emb(token_ids) + self.pos_emb(positions)
        scale = 1.0 / math.sqrt(self.cfg.head_dim)
        for layer, block in enumerate(self.blocks):
            q, k, v = self._qkv(block, x)  # [B, H, D]
            k_cache[layer].index_copy_(0, slot_mapping, k)
            v_cache[layer].index_copy_(0, slot_mapping, v)
            keys = k_cache[layer][context_slots]  # [B, L, H, D]: the paged gather
            values = v_cache[layer][context_slots]
            scores = torch.einsum("bhd,blhd->bhl", q, keys) * scale
            scores = scores.masked_fill(~context_mask[:, None, :], float("-inf"))
            out = torch.einsum("bhl,blhd->bhd", scores.softmax(dim=-1), values)
            x = x + block.proj(out.reshape(x.shape))
            x = x + block.mlp(x)
        return self.lm_head(self.ln_f(x))

    @torch.no_grad()
    def reference_logits(self, token_ids: torch.Tensor) -> torch.Tensor:
        """Logits of every position by plain causal attention, no cache: the ground truth."""
        positions = torch.arange(token_ids.shape[0], device=token_ids.device)
        x = self.tok_emb(token_ids) + self.pos_emb(positions)
        for block in self.blocks:
            q, k, v = self._qkv(block, x)
            out = F.scaled_dot_product_attention(
                q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1), is_causal=True
            )
            x = x + block.proj(out.transpose(0, 1).reshape(x.shape))
            x = x + block.mlp(x)
        return self.lm_head(self.ln_f(x))

    def param_bytes(self) -> int:
        return sum(p.numel() * p.element_size() for p in self.parameters())
