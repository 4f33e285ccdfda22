"""Lab 292's reference answers and interviewer material (never part of the package).

    >>> from tests.labs.truth import cpu_pegged_gpu_idle as truth
    >>> [truth.answer_key(s)["request_step"] for s in (0, 1, 2)]
    ['admit_prompt', 'encode_stop_sequences', 'count_usage_tokens']

The server tokenizes on its event loop with a BPE whose merge loop is quadratic in the length of
a piece (a run of text without white space). A seed picks the long text (letters without
spaces, a rule of dashes or hashes, a leader of dots or underscores), where it travels (the
prompt; a stop sequence; the prompt counted for a token budget first) and the sizes. The
diagnosis reads a stack dump (py-spy, or faulthandler where ptrace is denied): the busy thread,
its innermost function, the request handler's step, the request id from py-spy's locals.
The fix caps characters before tokenizing (more than max_model_len x the longest token's
characters cannot fit) and tokenizes in a process pool.
"""

from __future__ import annotations

import re

import numpy as np

from labsupport.scenarios import cpu_pegged_gpu_idle as lab
from labsupport.scenarios.cpu_pegged_gpu_idle import incident

PATH_STEP = {
    "prompt": "admit_prompt",
    "stop": "encode_stop_sequences",
    "usage": "count_usage_tokens",
}
HANDLER = "handle_completion"
_PYSPY_THREAD = re.compile(r'^Thread (\S+) \(([^)]*)\)(?::\s*"(.*)")?\s*$')
_PYSPY_FRAME = re.compile(r"^ {4}(\S.*?) \((.*)\)\s*$")
_PYSPY_LOCAL = re.compile(r"^ {8,}(\w+): (.*)$")
_FH_THREAD = re.compile(r"^(Current thread|Thread) (0x[0-9a-fA-F]+)")
_FH_FRAME = re.compile(r'^\s+File "(.*)", line (\d+) in (.+)$')


def _short(name: str) -> str:
    return name.strip().split(".")[-1]


def parse(text: str) -> dict:
    """{"tool", "threads": [{"id", "busy", "frames": [(function, {locals})], innermost first}]}"""
    threads: list[dict] = []
    if _FH_THREAD.search(text.lstrip().splitlines()[0] if text.strip() else ""):
        tool = "faulthandler"
        for line in text.splitlines():
            if m := _FH_THREAD.match(line):
                threads.append({"id": m.group(2), "busy": m.group(1) == "Current thread",
                                "frames": []})  # fmt: skip
            elif (m := _FH_FRAME.match(line)) and threads:
                threads[-1]["frames"].append((m.group(3).strip(), {}))
        return {"tool": tool, "threads": threads}
    for line in text.splitlines():
        if m := _PYSPY_THREAD.match(line):
            status = m.group(2)
            threads.append({"id": m.group(1), "status": status, "frames": []})
        elif threads and (m := _PYSPY_FRAME.match(line)):
            threads[-1]["frames"].append((m.group(1), {}))
        elif threads and threads[-1]["frames"] and (m := _PYSPY_LOCAL.match(line)):
            threads[-1]["frames"][-1][1][m.group(1)] = m.group(2).strip()
    active = [t for t in threads if "active" in t["status"]]
    busy = next((t for t in active if "gil" in t["status"]), active[0] if active else None)
    for t in threads:
        t["busy"] = t is busy
    return {"tool": "py-spy", "threads": threads}


def reading(text: str) -> dict:
    """What read_stack_dump must return for `text`."""
    dump = parse(text)
    busy = next(t for t in dump["threads"] if t["busy"])
    names = [_short(f) for f, _ in busy["frames"]]
    step, request_id = None, None
    if HANDLER in names:
        i = names.index(HANDLER)
        step = names[i - 1] if i > 0 else None
        rid = busy["frames"][i][1].get("request_id")
        request_id = int(rid) if rid is not None and rid.lstrip("-").isdigit() else None
    return {
        "tool": dump["tool"],
        "function": names[0],
        "request_step": step,
        "request_id": request_id,
    }


def answer_key(seed: int) -> dict:
    """The variant's ground truth: where the long text travels and which request it is."""
    v = lab.variant(seed)
    big = next(r for r in incident.incident_requests(v) if r.role == "big")
    return {
        "request_step": PATH_STEP[v.path],
        "function": "_byte_pair_merge",
        "incident_request_id": big.request_id,
        "kind": v.kind,
        "max_model_len": v.max_model_len,
        "big_chars": v.big_chars,
    }


def cap_chars(max_model_len: int) -> int:
    """The tightest character cap that never refuses a text that fits."""
    from labsupport import bpe

    return max_model_len * bpe.load().longest_token_chars


# ---------------------------------------------------------------- made-up dumps

_STEPS = ("admit_prompt", "encode_stop_sequences", "count_usage_tokens", "render_chat",
          "check_moderation", "apply_template")  # fmt: skip
_INNER = ("_byte_pair_merge", "bpe", "_merge_pairs", "sub", "loads", "_compile")


def _stack(rng, step: str, inner: str, request_id: int, with_locals: bool) -> list:
    frames = [
        (f"Tokenizer.{inner}", "tok/core.py:85", {"best": "262", "i": str(rng.integers(1e4))}),
        ("Tokenizer.encode", "tok/core.py:62", {}),
        ("Frontend.tokenize", "api/frontend.py:91", {}),
        (f"Frontend.{step}", "api/frontend.py:114", {}),
        (f"Frontend.{HANDLER}", "api/frontend.py:99", {"request_id": str(request_id)}),
        ("_one_request", "api/server.py:152", {}),
        ("Handle._run", "asyncio/events.py:80", {}),
        ("BaseEventLoop._run_once", "asyncio/base_events.py:1922", {"i": "0"}),
        ("BaseEventLoop.run_forever", "asyncio/base_events.py:607", {}),
        ("run", "asyncio/runners.py:190", {}),
        ("<module>", "serve.py:12", {}),
    ]
    return [(f, w, loc if with_locals else {}) for f, w, loc in frames]


def _idle_stack(rng, request_id: int) -> list:
    """A thread parked in a wait, whose stack also has a request handler (a near miss)."""
    return [
        ("Condition.wait", "threading.py:331", {"timeout": "0.1"}),
        ("Event.wait", "threading.py:629", {}),
        (f"Frontend.{rng.choice(_STEPS)}", "api/frontend.py:120", {}),
        (f"Frontend.{HANDLER}", "api/frontend.py:99", {"request_id": str(request_id)}),
        ("Thread.run", "threading.py:982", {}),
        ("Thread._bootstrap", "threading.py:1002", {}),
    ]


def synthetic_dump(seed: int, tool: str) -> str:
    """A dump of a made-up stuck server: the busy thread among idle ones (one of them holds a
    request handler too; in py-spy one more thread is active without the GIL)."""
    rng = np.random.default_rng([292, seed, len(tool)])
    step, inner = str(rng.choice(_STEPS)), str(rng.choice(_INNER))
    rid = int(rng.integers(1, 5000))
    busy = _stack(rng, step, inner, rid, tool == "py-spy")
    others = [_idle_stack(rng, int(rng.integers(5000, 9000))) for _ in range(2)]
    order = list(range(3))
    rng.shuffle(order)
    threads = [("busy", busy), ("idle", others[0]), ("idle", others[1])]
    threads = [threads[i] for i in order]
    lines = []
    if tool == "py-spy":
        lines += ["Process 4242: python -m server", "Python v3.11.7 (/usr/bin/python3.11)", ""]
        for n, (role, frames) in enumerate(threads):
            status = "active+gil" if role == "busy" else ("active" if n == 0 else "idle")
            name = "MainThread" if role == "busy" else "worker"
            lines.append(f'Thread {4242 + 7 * n} ({status}): "{name}"')
            for f, where, loc in frames:
                lines.append(f"    {f} ({where})")
                if loc:
                    lines.append("        Locals:")
                    lines += [f"            {k}: {v}" for k, v in loc.items()]
        return "\n".join(lines) + "\n"
    for role, frames in threads:
        head = "Current thread" if role == "busy" else "Thread"
        lines.append(f"{head} 0x00007f{rng.integers(16**8):08x} (most recent call first):")
        for f, where, _ in frames:
            path, line = where.rsplit(":", 1)
            lines.append(f'  File "/srv/{path}", line {line} in {f.split(".")[-1]}')
        lines.append("")
    return "\n".join(lines)


# ---------------------------------------------------------------- interviewer material


def expected(seed: int) -> dict:
    """What the interviewer should see in variant `seed` (from the seed, no run)."""
    v = lab.variant(seed)
    key = answer_key(seed)
    text = {"letters": "letters with no spaces or punctuation",
            "rule": "a line of one repeated character ('-' or '#')",
            "leader": "a run of '.' or '_'"}[v.kind]  # fmt: skip
    where = {"prompt": "in the prompt", "stop": "as a stop sequence",
             "usage": "in the prompt, counted for a token budget first"}[v.path]  # fmt: skip
    return {
        "what read_stack_dump must return on the run's py-spy dump": {
            "tool": "py-spy",
            "function": key["function"],
            "request_step": key["request_step"],
            "request_id": key["incident_request_id"],
        },
        "the long text": f"{v.big_chars:,} characters of {text}, {where}",
        "as shipped (2-core CPU)": (
            "the loop stalls 1-4 s per long request (max loop lag = the stall), engine steps "
            "stop (device busy 0 %), the process's one thread burns CPU; the request ends in a "
            "400 (too long) after it was tokenized"
        ),
        "the cap the checks accept": (
            f"{cap_chars(v.max_model_len):,} to {2 * cap_chars(v.max_model_len):,} characters "
            f"(max_model_len {v.max_model_len} x the longest token's characters, up to 2x)"
        ),
        "fixed": (
            "the long request refused at once (400); the shorter one of the same kind "
            "tokenized in a worker process while steps go on (>= 70 % of the step rate)"
        ),
        "wrong fixes that fail": (
            "a cap only (the shorter text still stalls the loop), a process pool only (the "
            "long text is tokenized, for seconds, before its 400), a thread pool (the GIL: "
            "steps halve), a pool of one worker (chat prompts queue behind the long one), a "
            "cap of 4 characters per token (refuses prompts that fit), a hard-coded cap"
        ),
    }


RUBRIC = {
    "diagnosis": {
        "strong": (
            "Checks CPU vs GPU first, dumps the live process with py-spy (knows it needs "
            "ptrace: SYS_PTRACE in a container, Yama's ptrace_scope) or faulthandler, picks "
            "the thread holding the GIL, reads the stack from the inside out to the handler "
            "step and the request id, and explains why one request stops every stream (one "
            "event loop runs the engine too)."
        ),
        "adequate": (
            "Reads the dump right but needs hints on the format (faulthandler's 'Current "
            "thread', py-spy's active+gil) or on why other streams stop."
        ),
        "weak": (
            "Blames a regex backtracking, a deadlock or the GPU; or names a frame of an idle "
            "thread; or restarts the pod without evidence."
        ),
    },
    "fix": {
        "strong": (
            "Refuses texts longer than max_model_len x the longest token (no false 400s) "
            "before any tokenizing, and tokenizes the rest in a process pool sized so one "
            "long prompt cannot block the short ones; shuts the pool down; can say why a "
            "thread pool does not help a pure-Python tokenizer."
        ),
        "adequate": "Cap and pool, but a magic cap number or a pool of one worker.",
        "weak": (
            "A cap alone, a thread pool, a bigger timeout, more replicas, or a cap in "
            "tokens (which needs the tokenizing it was meant to avoid)."
        ),
    },
    "reasoning": {
        "strong": (
            "Explains BPE's cost per piece (every merge rescans the piece: quadratic in its "
            "length; white space bounds pieces in normal text), why Rust tokenizers moved to "
            "a heap for long pieces, why the loop's lag is the metric to alert on, and how "
            "vLLM splits API server and engine into processes."
        ),
        "adequate": "Explains the loop being blocked, not why tokenizing is slow.",
        "weak": "Describes the symptom only.",
    },
}
