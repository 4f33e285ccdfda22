"""Response bodies in vLLM's shapes: completion and chat choices, chunks, logprobs, usage.

    >>> from labsupport.serving.responses import completion_chunk, usage
    >>> chunk = completion_chunk("cmpl-1", "tiny", 0, "Hi", finish_reason=None)
    >>> sorted(chunk["choices"][0])
    ['finish_reason', 'index', 'logprobs', 'prompt_token_ids', 'stop_reason', 'text', 'token_ids']
    >>> usage(2, 3)
    {'prompt_tokens': 2, 'total_tokens': 5, 'completion_tokens': 3, 'prompt_tokens_details': None}

Field for field as vLLM's pydantic models serialize (`completion/protocol.py`,
`chat_completion/protocol.py`): every field present, `null` when unset; a stream chunk's
choice carries exactly `index, text, logprobs, finish_reason, stop_reason, prompt_token_ids,
token_ids` (vLLM's `test_stream_frame_template.py`). Logprobs: a token's entry lists the
sampled token first, then the most likely ones (vLLM's order); completions report up to
`logprobs + 1` of them, chat `top_logprobs`; -inf is written as -9999.0, as vLLM does.
"""

from __future__ import annotations

import time

from labsupport.serving.requests import TokenLogprob

FLOOR = -9999.0


def usage(n_prompt: int, n_out: int, cached: bool = False) -> dict:
    details = {"cached_tokens": 0} if cached else None  # nothing is ever cached here
    return {
        "prompt_tokens": n_prompt,
        "total_tokens": n_prompt + n_out,
        "completion_tokens": n_out,
        "prompt_tokens_details": details,
    }


def _step(lp: TokenLogprob) -> dict[int, float]:
    """vLLM's per-token dict: the sampled token first, then the top tokens."""
    out = {lp.token_id: lp.logprob}
    for token_id, value in lp.top.items():
        out.setdefault(token_id, value)
    return out


def _name(token_id: int, tokenizer, as_ids: bool) -> str:
    return f"token_id:{token_id}" if as_ids else tokenizer.decode_token(token_id)


def completion_logprobs(
    token_ids: list[int],
    steps: list[TokenLogprob | None],
    k: int,
    tokenizer,
    *,
    offset: int = 0,
    as_ids: bool = False,
) -> dict:
    """vLLM's CompletionLogProbs for these tokens (None steps: an echoed first prompt token)."""
    offsets, token_lps, tokens, tops = [], [], [], []
    for token_id, lp in zip(token_ids, steps, strict=True):
        token = _name(token_id, tokenizer, as_ids)
        offsets.append(offset)
        offset += len(token)
        tokens.append(token)
        if lp is None:
            token_lps.append(None)
            tops.append(None)
            continue
        token_lps.append(max(lp.logprob, FLOOR))
        step = list(_step(lp).items())[: k + 1] if k >= 0 else list(_step(lp).items())
        tops.append({_name(t, tokenizer, as_ids): max(v, FLOOR) for t, v in step})
    return {"text_offset": offsets, "token_logprobs": token_lps, "tokens": tokens,
            "top_logprobs": tops}  # fmt: skip


def chat_logprobs(
    token_ids: list[int], steps: list[TokenLogprob], k: int, tokenizer, *, as_ids: bool = False
) -> dict:
    content = []
    for token_id, lp in zip(token_ids, steps, strict=True):
        token = _name(token_id, tokenizer, as_ids)
        step = list(_step(lp).items())
        top = step if k < 0 else step[:k]
        content.append({
            "token": token,
            "logprob": max(lp.logprob, FLOOR),
            "bytes": list(token.encode()),
            "top_logprobs": [
                {"token": (name := _name(t, tokenizer, as_ids)), "logprob": max(v, FLOOR),
                 "bytes": list(name.encode())}
                for t, v in top
            ],
        })  # fmt: skip
    return {"content": content}


def prompt_logprobs(steps, tokenizer) -> list | None:
    """vLLM's prompt_logprobs: None, then {token id: {logprob, rank, decoded_token}} per token."""
    if steps is None:
        return None
    out: list = []
    for lp in steps:
        if lp is None:
            out.append(None)
            continue
        ranks = {lp.token_id: lp.rank}
        for rank, token_id in enumerate(lp.top, start=1):
            ranks.setdefault(token_id, rank)
        values = _step(lp)
        out.append({
            str(t): {"logprob": max(values[t], FLOOR), "rank": ranks[t],
                     "decoded_token": tokenizer.decode_token(t)}
            for t in values
        })  # fmt: skip
    return out


def completion_choice(index: int, text: str, **fields) -> dict:
    """A choice of a (non-streamed) completion response."""
    return {
        "index": index,
        "text": text,
        "logprobs": fields.get("logprobs"),
        "finish_reason": fields.get("finish_reason"),
        "stop_reason": fields.get("stop_reason"),
        "token_ids": fields.get("token_ids"),
        "prompt_logprobs": fields.get("prompt_logprobs"),
        "prompt_token_ids": fields.get("prompt_token_ids"),
    }


def completion_body(rid: str, model: str, choices: list[dict], use: dict) -> dict:
    return {
        "id": rid,
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
        "service_tier": None,
        "system_fingerprint": None,
        "usage": use,
        "kv_transfer_params": None,
    }


def completion_chunk(rid: str, model: str, index: int, text: str, **fields) -> dict:
    choice = {
        "index": index,
        "text": text,
        "logprobs": fields.get("logprobs"),
        "finish_reason": fields.get("finish_reason"),
        "stop_reason": fields.get("stop_reason"),
        "prompt_token_ids": fields.get("prompt_token_ids"),
        "token_ids": fields.get("token_ids"),
    }
    chunk = {"id": rid, "object": "text_completion", "created": int(time.time()),
             "model": model, "choices": [choice]}  # fmt: skip
    if fields.get("usage") is not None:
        chunk["usage"] = fields["usage"]
    return chunk


def chat_message(content: str) -> dict:
    return {"role": "assistant", "content": content, "refusal": None, "annotations": None,
            "audio": None, "function_call": None, "tool_calls": [], "reasoning": None}  # fmt: skip


def chat_choice(index: int, content: str, **fields) -> dict:
    return {
        "index": index,
        "message": chat_message(content),
        "logprobs": fields.get("logprobs"),
        "finish_reason": fields.get("finish_reason"),
        "stop_reason": fields.get("stop_reason"),
        "token_ids": fields.get("token_ids"),
    }


def chat_body(rid: str, model: str, choices: list[dict], use: dict, **fields) -> dict:
    return {
        "id": rid,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
        "service_tier": None,
        "system_fingerprint": None,
        "usage": use,
        "prompt_logprobs": fields.get("prompt_logprobs"),
        "prompt_token_ids": fields.get("prompt_token_ids"),
        "kv_transfer_params": None,
    }


def chat_chunk(rid: str, model: str, index: int, delta: dict, **fields) -> dict:
    choice = {"index": index, "delta": delta, "logprobs": fields.get("logprobs"),
              "finish_reason": fields.get("finish_reason")}  # fmt: skip
    if fields.get("finish_reason") is not None:
        choice["stop_reason"] = fields.get("stop_reason")
    if fields.get("token_ids") is not None:
        choice["token_ids"] = fields["token_ids"]
    chunk = {"id": rid, "object": "chat.completion.chunk", "created": int(time.time()),
             "model": model, "choices": [choice]}  # fmt: skip
    if fields.get("usage") is not None:
        chunk["usage"] = fields["usage"]
    return chunk


def usage_chunk(rid: str, model: str, use: dict, *, chat: bool = False) -> dict:
    """The last chunk of a stream with include_usage: no choices (vLLM drops nulls here)."""
    use = {k: v for k, v in use.items() if v is not None}
    kind = "chat.completion.chunk" if chat else "text_completion"
    return {"id": rid, "object": kind, "created": int(time.time()), "model": model,
            "choices": [], "usage": use}  # fmt: skip
