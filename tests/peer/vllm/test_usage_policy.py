"""Ported from vLLM tests/entrypoints/openai/completion/test_usage_policy.py at
07807420b2db2bf16241f057d85608a9d51f2f4f, run against `srelab serve` (shared server).
All three cases of TestUsagePolicyDefault are ported.
"""

from __future__ import annotations

from .conftest import MODEL_NAME


def _create(client, **kw):
    return client.completions.create(
        model=MODEL_NAME, prompt="Hello", max_tokens=5, temperature=0.0, **kw
    )


def test_non_streaming(client):
    """Non-streaming always returns usage."""
    response = _create(client, stream=False)
    assert response.usage is not None
    assert response.usage.prompt_tokens > 0
    assert response.usage.completion_tokens > 0


def test_streaming_no_usage(client):
    """Streaming without stream_options returns no usage chunk."""
    usage_in_chunks = False
    for chunk in _create(client, stream=True):
        if chunk.usage is not None and not chunk.choices:
            usage_in_chunks = True
    assert not usage_in_chunks


def test_streaming_with_usage_option(client):
    """stream_options.include_usage adds a final usage chunk."""
    final_chunk_with_usage = False
    for chunk in _create(client, stream=True, stream_options={"include_usage": True}):
        if chunk.usage is not None and not chunk.choices:
            final_chunk_with_usage = True
            assert chunk.usage.prompt_tokens > 0
    assert final_chunk_with_usage
