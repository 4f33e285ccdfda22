"""When a request stops, and what text it shows: max_tokens, stop token ids, stop strings.

    >>> from labsupport.serving.model import Tokenizer
    >>> from labsupport.serving.requests import Request, SamplingParams
    >>> from labsupport.serving.stops import stop_check
    >>> req = Request("r", [72], SamplingParams(max_tokens=9, stop=("lo",)))
    >>> steps = []
    >>> for t in b"hello":
    ...     req.output_ids.append(t)
    ...     steps.append(stop_check(req, t, Tokenizer()))
    >>> [text for _, _, text in steps], steps[-1][:2], req.text
    (['', 'h', 'e', 'l', ''], ('stop', 'lo'), 'hel')

As vLLM's output processor (`vllm/v1/engine/detokenizer.py`, `check_stop_strings`): a stop
token id ends the request with finish_reason `stop` and `stop_reason` = the id, and its text is
left out (unless `include_stop_str_in_output`); a stop string found in the new text ends it
with `stop_reason` = the string, the text cut before it (after it with
`include_stop_str_in_output`). Neither counts before `min_tokens` tokens. While a stream runs,
the last `len(longest stop) - 1` characters are held back, since they may begin a stop string.
"""

from __future__ import annotations

from labsupport.serving.requests import Request


def stop_check(req: Request, token_id: int, tokenizer) -> tuple[str | None, object, str]:
    """(finish_reason or None, stop_reason, newly visible text) after `token_id` was appended."""
    p = req.params
    n_out = len(req.output_ids)
    reason, stop_reason = None, None
    new = tokenizer.decode_token(token_id)
    if token_id in p.stop_token_ids and n_out > p.min_tokens:
        reason, stop_reason = "stop", token_id
        if not p.include_stop_str_in_output:
            new = ""
    before = len(req.text)
    req.text += new
    if reason is None and p.stop and n_out > p.min_tokens:
        for stop in p.stop:
            # search only where the new text could complete a stop string
            at = req.text.find(stop, max(0, before - len(stop) + 1))
            if at >= 0:
                end = at + len(stop) if p.include_stop_str_in_output else at
                req.text = req.text[:end]
                reason, stop_reason = "stop", stop
                break
    if reason is None and n_out >= p.max_tokens:
        reason = "length"
    hold = 0
    if reason is None and p.stop and not p.include_stop_str_in_output:
        hold = max(len(s) for s in p.stop) - 1
    visible = max(req.text_sent, len(req.text) - hold)
    delta = req.text[req.text_sent : visible]
    req.text_sent = visible
    return reason, stop_reason, delta
