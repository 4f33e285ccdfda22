"""Lab 285's traffic: what the clients sent, as the gateway logged it, and the tokenizer they use.

    >>> from labsupport.scenarios.device_side_assert import traffic
    >>> calls = traffic.calls_for(seed=0, layer="prompt", count=20, victim_index=7, rate_per_s=8)
    >>> len(calls), calls[7].id, calls[7].client
    (20, 'req-0008', 'agent')
    >>> sorted(traffic.TOKENIZER_V2["added_tokens"].values())[:2]
    [512, 513]

The clients tokenize on their side (a RAG pipeline, an agent framework, a classifier) and
send token ids: prompts as id lists, `stop_token_ids`, `allowed_token_ids`. Every call is a
`POST /v1/completions` body, sent at `at_s` after the start, streamed or not. One client's
request (the variant's) carries one id of the new tokenizer's added tokens in one field (the
variant's `layer`: "prompt", "stop" with `min_tokens`, or "allowed"); other clients send
well-formed requests, some with the same added ids in places where nothing reads them by
index (a stop id with `min_tokens` 0). `bad_bodies` are requests with an id out of range in
each field, for the fixed server to refuse.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from labsupport import wire

MODEL_VOCAB = 512  # the deployed model's embedding rows (TinyLM's vocab_size)
ADDED = {  # tokenizer v2's added special tokens, after the model's 512 ids
    "<|im_start|>": 512,
    "<|im_end|>": 513,
    "<|tool_call|>": 514,
    "<|tool_result|>": 515,
    "<|label_yes|>": 516,
    "<|label_no|>": 517,
    "<|eot|>": 518,
    "<|pad|>": 519,
}
TOKENIZER_V2 = {
    "name": "srelab-tok-v2",
    "vocab_size": MODEL_VOCAB + len(ADDED),
    "added_tokens": dict(ADDED),
}
MODEL_CONFIG = {
    "model_type": "srelab-tiny",
    "vocab_size": MODEL_VOCAB,
    "max_position_embeddings": 1024,
    "hidden_size": 128,
    "num_hidden_layers": 2,
    "tokenizer": "srelab-tok-v1",
}
LAYERS = ("prompt", "stop", "allowed")
# which added token each layer's client sends (the seed picks one)
LAYER_TOKENS = {
    "prompt": ("<|tool_call|>", "<|tool_result|>", "<|im_start|>"),
    "stop": ("<|im_end|>", "<|eot|>"),
    "allowed": ("<|label_yes|>", "<|label_no|>"),
}
CLIENT_OF_LAYER = {"prompt": "agent", "stop": "chat-sdk", "allowed": "classifier"}


@wire.record
@dataclass(frozen=True)
class Call:
    """One request as the gateway logged it."""

    id: str
    at_s: float  # when it was sent, after the start of the run
    body: dict  # the POST /v1/completions body
    stream: bool
    client: str


def _prompt(rng: random.Random, low: int = 8, high: int = 40) -> list[int]:
    return [rng.randrange(32, MODEL_VOCAB) for _ in range(rng.randint(low, high))]


def _good_body(rng: random.Random, client: str, stream: bool) -> dict:
    body = {
        "model": "srelab-tiny",
        "prompt": _prompt(rng),
        "max_tokens": rng.randint(10, 20),
        "temperature": 0,
        "stream": stream,
    }
    if client == "chat-sdk":
        body["stop_token_ids"] = [rng.randrange(256, MODEL_VOCAB)]
        body["min_tokens"] = 2
    elif client == "classifier":
        body["allowed_token_ids"] = sorted(rng.sample(range(256, MODEL_VOCAB), 3))
        body["max_tokens"] = 4
    elif client == "batch" and rng.random() < 0.5:
        body["stop_token_ids"] = [ADDED["<|im_end|>"]]  # read by value only: harmless
        body["min_tokens"] = 0
    return body


def bad_body(layer: str, token_id: int, rng: random.Random, *, stream: bool = False) -> dict:
    """A request carrying `token_id` in the field `layer` reads (exactly one such id)."""
    body = _good_body(rng, "batch", stream)
    body.pop("stop_token_ids", None)
    body.pop("min_tokens", None)
    if layer == "prompt":
        prompt = body["prompt"]
        prompt.insert(rng.randrange(1, len(prompt)), token_id)
    elif layer == "stop":
        body["stop_token_ids"] = [token_id]
        body["min_tokens"] = rng.randint(2, 4)
    elif layer == "allowed":
        body["allowed_token_ids"] = sorted([rng.randrange(256, MODEL_VOCAB), token_id])
        body["max_tokens"] = 4
    else:
        raise ValueError(f"layer must be one of {LAYERS}, got {layer!r}")
    return body


def _generate(seed: int, layer: str, count: int, victim_index: int, rate_per_s: float):
    rng = random.Random(f"285-traffic-{seed}")
    token = ADDED[rng.choice(LAYER_TOKENS[layer])]
    clients = ("batch", "chat-sdk", "classifier", "rag")
    calls, bad = [], []
    for i in range(count):
        at_s = round(i / rate_per_s + rng.uniform(0.0, 0.3 / rate_per_s), 4)
        stream = i % 2 == 1
        if i == victim_index:
            client, body = CLIENT_OF_LAYER[layer], bad_body(layer, token, rng, stream=stream)
        else:
            client = clients[i % len(clients)]
            body = _good_body(rng, client, stream)
        call_id = f"req-{i + 1:04d}"
        body["request_id"] = call_id  # the gateway's id, passed on: the server logs it
        calls.append(Call(call_id, at_s, body, stream, client))
        if i == victim_index or body.get("stop_token_ids") == [ADDED["<|im_end|>"]]:
            bad.append(call_id)
    return calls, bad


def calls_for(
    *, seed: int, layer: str, count: int, victim_index: int, rate_per_s: float
) -> list[Call]:
    """The incident's requests: `count` calls at `rate_per_s`, the victim's at `victim_index`."""
    return _generate(seed, layer, count, victim_index, rate_per_s)[0]


def bad_call_ids(
    *, seed: int, layer: str, count: int, victim_index: int, rate_per_s: float
) -> list[str]:
    """The ids of those calls that carry an id the model does not have, as generated."""
    return _generate(seed, layer, count, victim_index, rate_per_s)[1]


def bad_bodies(vocab_size: int, seed: int = 0) -> list[tuple[str, dict]]:
    """(field, body) for requests the fixed server must refuse: an id out of range in each
    field that carries token ids, negative ids included."""
    rng = random.Random(f"285-bad-{seed}")
    out = []
    for layer, field_name in (
        ("prompt", "prompt"),
        ("stop", "stop_token_ids"),
        ("allowed", "allowed_token_ids"),
    ):
        out.append((field_name, bad_body(layer, vocab_size + rng.randrange(0, 8), rng)))
    out.append(("prompt", bad_body("prompt", -1, rng, stream=True)))
    body = _good_body(rng, "batch", False)
    body["logit_bias"] = {str(vocab_size + 3): 5.0}
    out.append(("logit_bias", body))
    return out
