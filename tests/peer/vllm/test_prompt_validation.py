"""Ported from vLLM tests/entrypoints/openai/completion/test_prompt_validation.py at
6052d63e3d36b715f4346154bebf3ef80588988c, run against `srelab serve` (shared server).

Out of scope (docs/peer_scope.md): test_load_prompt_embeds and test_disable_prompt_embeds
(prompt embeddings: unit tests of vLLM's loader; `prompt_embeds` is a 400 here), and the
`kv_transfer_params.return_last_hidden_state` cases (hidden-state extraction, a vLLM KV
transfer feature).
"""

from __future__ import annotations

import pytest

from . import openai_shim as openai
from .conftest import MODEL_NAME


def test_empty_prompt(client):
    with pytest.raises(
        openai.BadRequestError,
        match="Either prompt or prompt_embeds must be provided and non-empty.",
    ):
        client.completions.create(
            model=MODEL_NAME, prompt=None, max_tokens=5, temperature=0.0,
            extra_body={"prompt_embeds": []},
        )  # fmt: skip


def test_out_of_vocab_token_ids(client):
    with pytest.raises(openai.BadRequestError, match=".*out of vocabulary.*"):
        client.completions.create(model=MODEL_NAME, prompt=[999999], max_tokens=5,
                                  temperature=0.0)  # fmt: skip
