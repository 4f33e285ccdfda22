"""Lab 285's reference answers: the failed steps the diagnosis is graded on, and the rubric.

    >>> from tests.labs.truth import device_side_assert as truth
    >>> [case.layer for case in truth.cases(0)]
    ['prompt', 'allowed', 'host']
    >>> tb = '  File "/x/labsupport/serving/model.py", line 9, in f\\n    y = g(x)\\n'
    >>> truth.serving_frame(tb)
    Frame(file='model.py', line=9, text='y = g(x)')

Never part of the package: a candidate with `labsupport` installed cannot import what grades
them. A case is a failed step written so that the usual wrong readings give other answers:
the request the traceback seems to blame is not the culprit, a request with an out-of-range
id in a field nothing reads by index sits beside it, one case fails on the host and leaves
the process usable. The engine line that failed is not written here: it is read from a rerun
with launches blocking, made by the check itself.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from labsupport.scenarios import device_side_assert as scenario
from labsupport.scenarios.device_side_assert import traffic

VOCAB = traffic.MODEL_VOCAB
BLOCKING = {"CUDA_LAUNCH_BLOCKING": "1"}
DETECT_BOUND_S = 1.5  # /livez must fail this soon after the first failed request
LIVENESS_BUDGET_S = 0.25  # one device_alive call, at most (it runs at every probe)
_FRAME = re.compile(r'^\s*File "([^"]+)", line (\d+), in ')


@dataclass(frozen=True)
class Frame:
    file: str  # basename
    line: int
    text: str  # the source line, stripped


def serving_frame(traceback_text: str) -> Frame | None:
    """The innermost frame of labsupport/serving/ in a formatted traceback."""
    found = None
    lines = traceback_text.splitlines()
    for i, line in enumerate(lines):
        m = _FRAME.match(line)
        if m and "labsupport/serving/" in m.group(1).replace("\\", "/"):
            text = lines[i + 1].strip() if i + 1 < len(lines) else ""
            found = Frame(m.group(1).replace("\\", "/").rsplit("/", 1)[-1], int(m.group(2)), text)
    return found


def op_matches(answer, frame: Frame) -> bool:
    """The learner's op names the frame: its source text, or file:line."""
    if not isinstance(answer, str) or not answer.strip():
        return False
    norm = " ".join(answer.split())
    if " ".join(frame.text.split()) in norm and frame.text:
        return True
    return re.search(rf"(^|[/\s]){re.escape(frame.file)}:{frame.line}(\D|$)", norm) is not None


@dataclass(frozen=True)
class Case:
    label: str
    layer: str  # "prompt", "stop", "allowed", or "host" (an index refused on the host)
    batch: tuple  # ({"id", "body"}, ...) in the order the step ran them
    culprit: str
    token_id: int

    def bodies(self) -> list[dict]:
        return [dict(item["body"]) for item in self.batch]

    @property
    def key(self) -> str:
        """The case as text (its fields hold dicts, so it is not hashable itself)."""
        import json

        return json.dumps([self.label, list(self.batch)], sort_keys=True)


def _item(call_id: str, body: dict) -> dict:
    return {"id": call_id, "body": {**body, "request_id": call_id}}


def cases(seed: int) -> list[Case]:
    """Three failed steps: one in the variant's field (written for `seed`); the same two for
    every seed (reruns are shared): an allowed_token_ids id beside a request whose
    out-of-range stop id the failing step never reached, and an index refused on the host."""
    return [_variant_case(seed), *_shared_cases()]


def _variant_case(seed: int) -> Case:
    rng = random.Random(f"285-cases-{seed}")
    layer = scenario.variant(seed).layer
    ids = iter(f"req-{n:04d}" for n in rng.sample(range(100, 9999), 4))
    token = rng.choice([traffic.ADDED[name] for name in traffic.LAYER_TOKENS[layer]])
    decoy = traffic._good_body(rng, "rag", False)
    decoy["stop_token_ids"], decoy["min_tokens"] = [traffic.ADDED["<|im_end|>"]], 0
    batch = [_item(next(ids), traffic._good_body(rng, "rag", False)), _item(next(ids), decoy)]
    culprit = _item(next(ids), traffic.bad_body(layer, token, rng))
    batch.insert(rng.randrange(0, 3), culprit)
    return Case(f"a failed step whose culprit sends {layer} ids", layer, tuple(batch),
                culprit["id"], token)  # fmt: skip


def _shared_cases() -> list[Case]:
    rng = random.Random("285-cases-shared")
    ids = iter(f"req-{n:04d}" for n in rng.sample(range(100, 9999), 6))
    token = VOCAB + 5
    culprit = _item(next(ids), traffic.bad_body("allowed", token, rng))
    near = _item(next(ids), traffic.bad_body("stop", VOCAB + 11, rng))
    batch = (_item(next(ids), traffic._good_body(rng, "chat-sdk", False)), culprit, near)
    out = [Case("an allowed_token_ids id, and after it a request with an id out of range in "
                "stop_token_ids that the failing step never reached", "allowed", batch,
                culprit["id"], token)]  # fmt: skip
    token = VOCAB + 37
    body = traffic._good_body(rng, "rag", False)
    body["logit_bias"] = {str(token): 2.5}
    culprit = _item(next(ids), body)
    batch = (_item(next(ids), traffic._good_body(rng, "rag", False)), culprit)
    out.append(Case("an id out of range in logit_bias", "host", batch, culprit["id"], token))
    return out


def _tokens(layer: str) -> tuple:
    return traffic.LAYER_TOKENS[layer]


def evidence(case: Case, rerun_record) -> dict:
    """What diagnose() gets for a case, given the rerun made with the learner's env."""
    import dataclasses

    return {
        "batch": [dict(item) for item in case.batch],
        "model_config": dict(traffic.MODEL_CONFIG),
        "tokenizer": {**traffic.TOKENIZER_V2, "added_tokens": dict(traffic.ADDED)},
        "rerun": dataclasses.asdict(rerun_record),
    }


# ---- the fix: requests the learner's check_request must refuse, and must let through ------
def request_table(seed: int) -> list[tuple[str, int, dict, str | None, int | None]]:
    """(label, vocab_size, body, field or None, bad id or None): None = must pass."""
    rng = random.Random(f"285-requests-{seed}")
    rows = []
    for vocab in (VOCAB, rng.randrange(900, 1100), rng.randrange(30000, 50000)):
        ok = lambda **kw: {"model": "m", "max_tokens": 4, **kw}  # noqa: E731
        top = vocab - 1
        rows += [
            ("a text prompt", vocab, ok(prompt="hello"), None, None),
            (f"prompt ids 0 and {top}", vocab, ok(prompt=[0, 5, top]), None, None),
            ("a list of prompts", vocab, ok(prompt=[[1, 2], [top]]), None, None),
            ("a list of strings", vocab, ok(prompt=["a", "b"]), None, None),
            (f"stop_token_ids [{top}] with min_tokens", vocab,
             ok(prompt="x", stop_token_ids=[top], min_tokens=2), None, None),
            ("allowed_token_ids in range", vocab, ok(prompt="x", allowed_token_ids=[0, top]),
             None, None),
            ("logit_bias in range", vocab, ok(prompt="x", logit_bias={"0": -100, str(top): 5}),
             None, None),
        ]  # fmt: skip
        bad = vocab + rng.randrange(0, 9)
        rows += [
            (f"prompt id {vocab} (= vocab_size)", vocab, ok(prompt=[3, vocab, 4]), "prompt",
             vocab),
            ("a negative prompt id", vocab, ok(prompt=[7, -1]), "prompt", -1),
            ("an id out of range in the second prompt of a list", vocab,
             ok(prompt=[[1, 2], [3, bad]]), "prompt", bad),
            ("stop_token_ids out of range", vocab,
             ok(prompt="x", stop_token_ids=[bad], min_tokens=1), "stop_token_ids", bad),
            ("stop_token_ids out of range, min_tokens 0", vocab,
             ok(prompt="x", stop_token_ids=[2, bad + 1]), "stop_token_ids", bad + 1),
            ("allowed_token_ids out of range", vocab,
             ok(prompt="x", allowed_token_ids=[4, bad + 2]), "allowed_token_ids", bad + 2),
            ("a logit_bias key out of range", vocab,
             ok(prompt="x", logit_bias={"1": 2.0, str(bad + 3): 1.0}), "logit_bias", bad + 3),
        ]  # fmt: skip
    return rows


# ---- interviewer material -----------------------------------------------------------------
def answer_key(seed: int) -> dict:
    v = scenario.variant(seed)
    victim = v.victim
    field_name = {"prompt": "prompt", "stop": "stop_token_ids", "allowed": "allowed_token_ids"}
    body = victim.body[field_name[v.layer]]
    bad = [t for t in body if not 0 <= t < VOCAB]
    return {
        "layer": v.layer,
        "victim": victim.id,
        "client": victim.client,
        "token_id": bad[0],
        "recoverable": False,
        "graded_cases": [(c.layer, c.culprit, c.token_id) for c in cases(seed)],
    }


_OPS = {
    "prompt": "the token embedding in the model's prefill "
    "(`x = self.tok_emb(token_ids) + self.pos_emb(positions)`, model.py), kernel "
    "`indexSelect*: srcIndex < srcSelectDimSize`",
    "stop": 'the sampler\'s min_tokens mask (`logits[list(p.stop_token_ids)] = float("-inf")`, '
    "sampler.py), kernel `index out of bounds`",
    "allowed": "the sampler's allowed-token mask (`mask[list(p.allowed_token_ids)] = 0.0`, "
    "sampler.py), kernel `index out of bounds`",
}


def expected(seed: int) -> dict:
    key = answer_key(seed)
    names = {v: k for k, v in traffic.ADDED.items()}
    return {
        "incident": (
            "the replay serves every request until the victim arrives; its step and every "
            "later request fail with 500 'CUDA error: device-side assert triggered'; GET "
            "/health answers 200 throughout"
        ),
        "logged traceback": "ends in runner.py at `ids = torch.stack(picks).tolist()` (the sync)",
        "culprit": (
            f"{key['victim']} from the {key['client']} client: token id {key['token_id']} "
            f"({names[key['token_id']]}) in {key['layer']} "
            f"{'ids' if key['layer'] == 'prompt' else 'token ids'}; the model's vocab_size 512"
        ),
        "rerun with CUDA_LAUNCH_BLOCKING=1": _OPS[key["layer"]],
        "recoverable": "no: one more request in the same process fails with the same error",
        "a passing fix": (
            "check_request refuses ids outside [0, 512) in prompt, stop_token_ids, "
            "allowed_token_ids and logit_bias keys with a 400 naming id and field; "
            "device_alive runs a tiny kernel on the device and reads it back, False on "
            "RuntimeError; /livez fails within about 0.1-0.5 s of the first failed request"
        ),
    }


RUBRIC = {
    "diagnosis": {
        "strong": (
            "Says the traceback is not where the error happened (asynchronous kernels), "
            "reruns the failed batch in a fresh process with CUDA_LAUNCH_BLOCKING=1, reads the "
            "engine's line and the kernel's assertion, maps it to the field it reads and finds "
            "the id at or above the model's vocab_size (not the tokenizer's) and its request; "
            "shows that the process is unusable afterwards."
        ),
        "adequate": (
            "Finds the out-of-range id by scanning the requests, or names the embedding from "
            "experience, without locating the failing line; or misses why every later "
            "request fails."
        ),
        "weak": (
            "Blames the driver or the GPU, reruns in the same process, or debugs the line "
            "the asynchronous traceback points at."
        ),
    },
    "fix": {
        "strong": (
            "Validates every token-id field (prompt, lists of prompts, stop_token_ids, "
            "allowed_token_ids, logit_bias keys) against the model's vocabulary with a 400 "
            "naming id and field, and a liveness that runs a tiny kernel and syncs, returning "
            "False on error; good streams keep flowing, a poisoned process is restarted."
        ),
        "adequate": (
            "Validates the prompt only, or checks against the tokenizer's size; or a liveness "
            "that runs a full generation (slow, flaps under load)."
        ),
        "weak": (
            "Catches the exception and carries on, clamps the ids, or keeps /health (a thread "
            "check) as liveness."
        ),
    },
    "reasoning": {
        "strong": (
            "Explains cudaErrorAssert's stickiness and why only a new process recovers; knows "
            "TORCH_USE_CUDA_DSA is a build flag, that CUDA graphs defeat CUDA_LAUNCH_BLOCKING "
            "(enforce eager, compute-sanitizer, core dumps) and that host-side IndexErrors "
            "are not fatal."
        ),
        "adequate": "Knows CUDA_LAUNCH_BLOCKING and the vocab-size cause, not the stickiness.",
        "weak": "Treats the error as transient and retries.",
    },
}
