"""Lab 285's rerun: a failed batch replayed through the engine in a fresh process, with an env.

    >>> from labsupport.scenarios.device_side_assert import rerun, traffic
    >>> body = {"prompt": [72, 105], "max_tokens": 2, "temperature": 0}
    >>> result = rerun.rerun([body], env={"CUDA_LAUNCH_BLOCKING": "1"})    # doctest: +SKIP
    >>> result.error, result.after_ok                                      # doctest: +SKIP
    (None, True)

The requests of the step that failed, as the gateway logged them (`POST /v1/completions`
bodies), go through the same engine as the server's (the GPU when there is one, else the
`labsupport.cuda_standin` CPU stand-in), in one batch, in a fresh process: your notebook's
kernel never touches the device that fails. `env` is added to that process's environment
(only `CUDA_*`, `TORCH_*` and `PYTORCH_*` variables). What comes back is what the process
printed and raised: the exception and its traceback, the kernels' stderr, and whether one
more, harmless request then worked in that same process (`after_ok`, `after_error`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from labsupport import isolate, wire

ENV_NAME = re.compile(r"^(CUDA|TORCH|PYTORCH)_[A-Z0-9_]{1,60}$")
REFUSED_PREFIXES = ("CUDA_INJECTION",)  # CUDA loads a library named there: never from here


@wire.record
@dataclass
class Rerun:
    """What the fresh process showed."""

    env: dict  # the variables it ran with (the accepted ones)
    error: str | None  # "Type: message" of what the batch raised, None if it ran through
    traceback: str  # the formatted traceback of that exception ("" if none)
    stderr: str  # what the process wrote to stderr (device assertions print there)
    after_ok: bool | None  # one more request in the same process worked (None: not reached)
    after_error: str | None = None
    device: str = "cpu"
    ignored_env: list = field(default_factory=list)  # variables refused, with why

    def report(self) -> str:
        """The rerun as text, as a terminal would show it."""
        lines = [f"device: {self.device}; env: {self.env or '{}'}"]
        lines += [f"ignored: {why}" for why in self.ignored_env]
        if self.stderr.strip():
            lines += ["--- stderr ---", self.stderr.rstrip()]
        if self.traceback:
            lines += ["--- the batch raised ---", self.traceback.rstrip()]
        else:
            lines.append("--- the batch ran without an error ---")
        after = "not tried" if self.after_ok is None else ("ok" if self.after_ok else "failed")
        lines.append(f"--- one more request in the same process: {after}")
        if self.after_error:
            lines.append(self.after_error.rstrip())
        return "\n".join(lines)


def accepted_env(env: dict | None) -> tuple[dict, list[str]]:
    """(the variables a rerun takes, why others were refused)."""
    kept, refused = {}, []
    for key, value in (env or {}).items():
        if not isinstance(key, str) or not ENV_NAME.match(key):
            refused.append(f"{key!r}: only CUDA_*, TORCH_*, PYTORCH_* variables are passed")
        elif key.startswith(REFUSED_PREFIXES):
            refused.append(f"{key!r}: loads code into the process")
        elif not isinstance(value, str) or len(value) > 200:
            refused.append(f"{key!r}: the value must be a string (at most 200 characters)")
        else:
            kept[key] = value
    return kept, refused


def rerun(bodies: list[dict], env: dict | None = None, *, timeout_s: float = 90.0) -> Rerun:
    """Replay `bodies` as one batch in a fresh process with `env` added; what it showed."""
    from labsupport import device

    kept, refused = accepted_env(env)
    where = "cuda" if device.cuda_available() else "cpu"
    result = isolate.run_function(
        "labsupport.scenarios.device_side_assert.rerun:run_batch",
        [dict(b) for b in bodies],
        where,
        timeout_s=timeout_s,
        extra_env=kept,
    )
    if result.ok and isinstance(result.value, dict):
        out = result.value
        return Rerun(kept, out["error"], out["traceback"], result.stderr, out["after_ok"],
                     out["after_error"], where, refused)  # fmt: skip
    # the process itself died (a CUDA abort, a timeout): what it printed is the evidence
    return Rerun(kept, result.error or "the process died", result.traceback, result.stderr,
                 None, None, where, refused)  # fmt: skip


def run_batch(bodies: list[dict], where: str) -> dict:
    """In the fresh process: the batch through one engine step loop, then one more request."""
    import json
    import traceback

    import torch

    from labsupport import cuda_standin
    from labsupport.serving.engine import Engine, EngineConfig
    from labsupport.serving.faults import FaultController
    from labsupport.serving.model import Tokenizer
    from labsupport.serving.protocol import parse_completion
    from labsupport.serving.requests import SamplingParams

    torch.set_num_threads(1)
    faults = FaultController.from_specs(["no_input_validation"])
    engine = Engine.build(config=EngineConfig(max_num_seqs=64), device=where, faults=faults)
    out = {"error": None, "traceback": "", "after_ok": None, "after_error": None}
    for body in bodies:  # the server's parser, without its token-id checks (as deployed)
        job = parse_completion(json.dumps(body).encode(), Tokenizer(), "srelab-tiny", 1024,
                               check_token_ids=False)  # fmt: skip
        for prompt in job.prompts:
            engine.add_request(prompt.ids, job.params)
    with cuda_standin.device_thread(where):
        try:
            while engine.step():
                pass
            if where == "cuda":
                torch.cuda.synchronize()
        except Exception as exc:
            out["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
            out["traceback"] = traceback.format_exc()
        try:  # the same process, a new engine, one short, valid request
            again = Engine.build(device=where)
            again.add_request([72, 105], SamplingParams(max_tokens=2))
            while again.step():
                pass
            if where == "cuda":
                torch.cuda.synchronize()
            out["after_ok"] = True
        except Exception as exc:
            out["after_ok"] = False
            out["after_error"] = f"{type(exc).__name__}: {exc}"
    return out
