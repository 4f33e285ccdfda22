"""Ported from vLLM tests/entrypoints/openai/models/test_models.py at
76a76927d5715d2193f5cff2016214d70df8c7d1, run against `srelab serve` (shared server).

Out of scope (docs/peer_scope.md): the LoRA halves - test_check_models' adapter rows and
test_retrieve_lora_model (no LoRA adapters here).
"""

from __future__ import annotations

import pytest

from . import openai_shim as openai
from .conftest import MODEL_NAME


def test_check_models(client):
    models = client.models.list().data
    served_model = models[0]
    assert served_model.id == MODEL_NAME
    assert served_model.root == MODEL_NAME
    assert len(models) == 1  # (no LoRA adapters to list)


def test_retrieve_base_model(client):
    model = client.models.retrieve(MODEL_NAME)
    assert model.id == MODEL_NAME
    assert model.root == MODEL_NAME


def test_retrieve_unknown_model(client):
    with pytest.raises(openai.NotFoundError) as exc_info:
        client.models.retrieve("this-model-does-not-exist")
    assert "does not exist" in str(exc_info.value)
