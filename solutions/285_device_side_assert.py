# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lab 285 - device-side assert triggered
#
# Every request to the model server fails with a 500 that says `CUDA error: device-side
# assert triggered`, the traceback points at an innocent line, and the pod is never
# restarted. You will replay the clients' traffic against the server, rerun the failing step
# so that the error points where it really happened, find the request, the field and the
# value behind it, and then fix both halves of the outage: refuse such requests at the API
# with a clear 400, and make the liveness probe notice a process that can no longer use its
# GPU. About 40 minutes; the code runs in about 2 minutes.

# %%
from labsupport import device, session

SEED = 0  # which variant of the incident: `srelab start/interview --seed S` sets it
session.begin("285", seed=SEED)
SCALE = session.scale()  # "full"; the test suite runs a shorter "suite" scale
_ = device.banner(
    gpu="real",
    stand_in="the server's engine runs on the CPU on a stand-in for a CUDA context "
    "(labsupport.cuda_standin): the same kernels fail on the same inputs, print the same "
    "assertion, and their error reaches Python the way a GPU's does, with PyTorch's own "
    "message; on the stand-in every torch operation of the engine counts as device work",
)

# %% [markdown]
# ## 1. Incident
#
# > **PAGE - SEV1 - llm-server: error rate 100%** (10:14 UTC)
# >
# > | panel | value |
# > |---|---|
# > | `/v1/completions` 5xx | 0% until 10:12, then 100% |
# > | `GET /health` (liveness probe) | 200, every 10 s |
# > | pod restarts | 0 |
# > | GPU | healthy in `nvidia-smi`; no Xid in `dmesg` |
# >
# > ```
# > {"error": {"message": "Request errored by the server.", "type": "InternalServerError",
# >   "code": 500}}
# > ```
# >
# > What changed this week: the clients' SDK moved to the tokenizer `srelab-tok-v2` (chat
# > template tokens) on Monday; the nodes got an NVIDIA driver update on Tuesday; the server
# > image has not changed in a month.
#
# The server logs one traceback per failed engine step, each ending in
# `CUDA error: device-side assert triggered`. Is the GPU broken, the driver, the server, or
# something a client sent?

# %% [markdown]
# ## 2. Reproduce
#
# The gateway logs every request it forwards (body included, with its request id), so the
# morning's traffic can be replayed. The server is the lab's serving stack
# (`labsupport.serving`: a small model behind vLLM's OpenAI API, continuous batching, a paged
# KV cache), deployed as the team runs it: the engine keeps serving when one of its steps
# raises (the requests of that step fail with a 500, the others go on), and it passes the
# clients' requests to the engine as they come. The replay below starts a fresh server, sends
# each request at its time (half of them streamed), and calls `GET /health` every 100 ms.

# %%
from labsupport.scenarios import device_side_assert as scenario
from labsupport.scenarios.device_side_assert import plots as figures
from labsupport.scenarios.device_side_assert import rerun, runs

variant = scenario.variant(SEED)
calls = variant.calls(SCALE)
print(f"{len(calls)} requests over {calls[-1].at_s:.1f} s, first ones:")
for call in calls[:3]:
    print(call.id, call.client, call.body)

# %%
incident = runs.run(calls, label="incident replay")
health = incident.probe_series("/health")
print(
    f"served: {sum(o.served for o in incident.outcomes)} of {len(calls)} requests; "
    f"GET /health: {sum(p.status == 200 for p in health)} of {len(health)} answered 200"
)
for o in incident.outcomes:
    what = "served" if o.served else f"{o.status} {o.error or ''}"[:70]
    print(f"{o.sent_s:5.2f} s  {o.id}  {o.client:<10} {what}")

# %%
from labsupport import plots

_ = plots.show(figures.timeline(incident, title="the incident, replayed"))

# %% [markdown]
# The server's log, from its first failed step:

# %%
log = incident.server_log
first = log.find("engine step failed")
print(log[max(0, log.rfind("\n", 0, max(0, first - 400)) + 1) : first + 3000])

# %% [markdown]
# Before you read on: the traceback ends in `runner.py`, on the line that reads the sampled
# tokens back. Is that where the error happened? Which requests did the first failed step
# run, and why does every later request fail too, while `/health` says 200?

# %% [markdown]
# ## 3. Diagnose
#
# The first failed step ran these requests (ids from the server's log, bodies from the
# gateway's):

# %%
failed_ids = incident.failed_steps()[0]
batch = [{"id": c.id, "body": c.body} for c in calls if c.id in failed_ids]
for item in batch:
    print(item["id"], item["body"])
print("the model's config:", scenario.MODEL_CONFIG)
print("the clients' tokenizer:", scenario.TOKENIZER_V2)

# %% [markdown]
# Debug in a fresh process, never in your notebook's kernel, which must survive whatever
# the experiment does to its process. `rerun.rerun(bodies, env)` replays the failed step's
# requests through the same engine in a **fresh process**, with the environment variables you
# give it (`CUDA_*`, `TORCH_*`, `PYTORCH_*`), and shows what it printed and raised, and
# whether one more, harmless request then worked in that same process. As deployed (no
# variables):

# %%
as_deployed = rerun.rerun([item["body"] for item in batch], env={})
print(as_deployed.report())

# %% [markdown]
# **Exercise 1 (graded).** Two functions.
#
# - `rerun_env()`: the environment variables that make the rerun show where the error
#   really happened (they are checked against reruns of other failed steps, too);
# - `diagnose(evidence)`: from the batch, the model's config, the tokenizer and the rerun with
#   your variables, which request made the step fail, the token id in it, the engine's line
#   that failed, and whether the process can recover.
#
# Stuck? `hint("285", 1, "rerun_env")` or `hint("285", 1, "diagnose")` (up to 3 each; your
# transcript notes it).


# %% tags=["exercise"]
def rerun_env() -> dict:
    """Environment variables (name -> value, strings) for a rerun of a failed step in a fresh
    process, so that the error is raised where it happened."""
    # BEGIN SOLUTION
    return {"CUDA_LAUNCH_BLOCKING": "1"}
    # END SOLUTION


def diagnose(evidence: dict) -> dict:
    """What made the engine step fail, from `evidence`:

    - "batch": the step's requests, [{"id": "req-0008", "body": {...}}, ...] (completion
      bodies as the clients sent them);
    - "model_config": the deployed model's config (its "vocab_size" ...);
    - "tokenizer": the clients' tokenizer ("vocab_size", "added_tokens" name -> id);
    - "rerun": the batch rerun in a fresh process with rerun_env(): "error" (the first line
      of what it raised), "traceback", "stderr", "after_ok" (one more request in the same
      process worked), "after_error".

    Return {"request_id": the id of the request that made it fail, "token_id": the id (int)
    in it that did, "op": the source line of the engine (labsupport/serving/...) that ran
    the failing work, as the traceback prints it, "recoverable": whether that process can
    serve again without a restart (bool)}.
    """
    # BEGIN SOLUTION
    vocab = evidence["model_config"]["vocab_size"]
    lines = evidence["rerun"]["traceback"].splitlines()
    op = None
    for i, line in enumerate(lines[:-1]):
        if line.strip().startswith("File ") and "labsupport/serving/" in line:
            op = lines[i + 1].strip()  # innermost wins: the last one in the traceback
    # which field the failing line reads -> where to look for the id
    fields = ["prompt"]
    if op and "allowed_token_ids" in op:
        fields = ["allowed_token_ids"]
    elif op and "stop_token_ids" in op:
        fields = ["stop_token_ids"]
    elif op and "bias" in op:
        fields = ["logit_bias"]

    def ids(body: dict, field: str) -> list[int]:
        value = body.get(field)
        if field == "logit_bias":
            return [int(k) for k in (value or {})]
        if field == "stop_token_ids" and not body.get("min_tokens"):
            return []  # read by value only until min_tokens is reached
        if field == "prompt" and isinstance(value, list) and value and isinstance(value[0], list):
            return [t for row in value for t in row]
        return list(value) if isinstance(value, list) else []

    for item in evidence["batch"]:
        for field in fields:
            bad = [t for t in ids(item["body"], field) if not 0 <= t < vocab]
            if bad:
                return {
                    "request_id": item["id"],
                    "token_id": bad[0],
                    "op": op,
                    "recoverable": bool(evidence["rerun"]["after_ok"]),
                }
    return {"request_id": None, "token_id": None, "op": op, "recoverable": True}
    # END SOLUTION


# %%
import dataclasses

rerun_result = rerun.rerun([item["body"] for item in batch], env=rerun_env())
print(rerun_result.report())
evidence = {
    "batch": batch,
    "model_config": scenario.MODEL_CONFIG,
    "tokenizer": scenario.TOKENIZER_V2,
    "rerun": dataclasses.asdict(rerun_result),
}
print(diagnose(evidence))

# %% [markdown]
# Grade the diagnosis: the check reruns failed steps of other incidents in fresh processes
# (with your variables) and compares your answers with what happened (the fix checks fail
# until you write the functions of section 4):

# %%
from labsupport import check

check("285")

# %% [markdown] tags=["reveal"]
# **What happened.**
#
# - A client on the new tokenizer sent a token id the model does not have: the tokenizer
#   `srelab-tok-v2` added special tokens 512-519 after the 512 ids of the model's vocabulary
#   (`vocab_size` 512 in its config). Nobody resized the model's embedding, and the server
#   checked nothing.
# - The engine used that id as an index on the device: as a row of the token embedding (a
#   prompt id), or as a position in the logits (`allowed_token_ids`, or `stop_token_ids` while
#   `min_tokens` masks them). The kernel checks its index with a device-side assertion
#   (`srcIndex < srcSelectDimSize` in `indexSelect*`, `index out of bounds` in the indexing
#   kernel) and the assertion fails.
# - A kernel runs after the Python call that launched it has returned. The failure reaches
#   Python at a later call, here the `.tolist()` that waits for the step's sampled tokens:
#   the traceback names that line. `CUDA_LAUNCH_BLOCKING=1` makes each launch wait for its
#   kernel, so the launching line raises. It slows everything down: use it in a rerun, never
#   in production.
# - A device-side assertion leaves the CUDA context unusable (`cudaErrorAssert`: "the
#   device cannot be used again ... the process must be terminated and relaunched"). Every
#   later CUDA call in that process fails with the same error. The server caught the error
#   and carried on, so every later step failed, for every client, while `/health`, which
#   only asks whether the engine's thread is alive, kept answering 200.
# - An index refused on the host is different: `logits[600]` with a Python int is checked
#   before any kernel runs and raises an `IndexError` at once; the process is fine after it.

# %% tags=["reveal"]
for item in batch:
    body = item["body"]
    for field in ("prompt", "stop_token_ids", "allowed_token_ids"):
        outside = [t for t in (body.get(field) or []) if not 0 <= t < 512]
        if outside:
            names = {v: k for k, v in scenario.TOKENIZER_V2["added_tokens"].items()}
            print(
                item["id"],
                field,
                outside,
                [names.get(t) for t in outside],
                "min_tokens",
                body.get("min_tokens"),
            )

# %% [markdown]
# ## 4. Fix
#
# Two halves, both needed:
#
# 1. **Refuse what the model cannot take, at the API.** A request whose token ids are not in
#    `[0, vocab_size)` gets a 400 that names the id and the field, before it reaches the
#    engine; the others are served as before. Every field that carries token ids counts.
# 2. **Restart a process that can no longer use its GPU.** Something else will get through
#    one day (a bug of ours, a kernel that faults on a rare shape). Liveness must then fail,
#    so that the kubelet restarts the pod, which is the only cure.
#
# **Exercise 2 (graded).** `check_request(body, vocab_size)`: called by the server with every
# completion request before it parses it. **Exercise 3 (graded).** `device_alive(device)`:
# the server's `GET /livez` answers 200 when it returns True. Hints:
# `hint("285", 1, "check_request")`, `hint("285", 1, "device_alive")`.

# %% [markdown] tags=["reveal"]
# What people reach for, and why it is not enough:
#
# - **catch the exception and carry on**, the team's engine already does: a sticky error
#   makes every later step fail, so the pod serves nothing while looking alive.
# - **`/health` as liveness**: it asks whether the engine thread is alive; the thread is fine,
#   its device is not. vLLM's engine core dies on such an error and its `/health` answers 503
#   (`EngineDeadError`); a server that catches and carries on must ask the device itself.
# - **clamp the ids** (`min(id, vocab_size - 1)`): the request is served, wrongly, and nobody
#   learns that the clients and the model are out of step.
# - **validate against the tokenizer's size**: the tokenizer knows 520 ids, the model 512
#   (vLLM checked `allowed_token_ids` against `len(tokenizer)` until vllm#54196).


# %% tags=["exercise"]
def check_request(body: dict, vocab_size: int) -> dict | None:
    """None if every token id in this completion request is one the model has, else the
    error to answer with.

    body: the request's JSON object, as the client sent it. vocab_size: the model's number
    of token ids (its embedding rows), valid ids are 0 .. vocab_size - 1. Token ids come in
    "prompt" (a string, a list of ids, or a list of strings or of id lists),
    "stop_token_ids", "allowed_token_ids" (lists of ids) and "logit_bias" (an object whose
    keys are ids written as strings). Leave anything else to the server (return None).
    The error is OpenAI's shape: {"error": {"message": ..., "type": "BadRequestError",
    "param": <the field>, "code": 400}}, its message naming the offending id.
    """

    # BEGIN SOLUTION
    def refuse(token: int, field: str) -> dict:
        message = (
            f"Token id {token} in {field} is out of vocabulary: the model has {vocab_size} "
            f"token ids (0..{vocab_size - 1})"
        )
        return {"error": {"message": message, "type": "BadRequestError", "param": field,
                          "code": 400}}  # fmt: skip

    def outside(ids) -> list:
        return [t for t in ids if type(t) is int and not 0 <= t < vocab_size]

    prompt = body.get("prompt")
    rows = []
    if isinstance(prompt, list) and all(type(t) is int for t in prompt):
        rows = [prompt]
    elif isinstance(prompt, list):
        rows = [p for p in prompt if isinstance(p, list)]
    for row in rows:
        if found := outside(row):
            return refuse(found[0], "prompt")
    for field in ("stop_token_ids", "allowed_token_ids"):
        value = body.get(field)
        if isinstance(value, list) and (found := outside(value)):
            return refuse(found[0], field)
    bias = body.get("logit_bias")
    if isinstance(bias, dict):
        for key in bias:
            try:
                token = int(key)
            except (TypeError, ValueError):
                continue  # the server refuses keys that are not integers itself
            if not 0 <= token < vocab_size:
                return refuse(token, "logit_bias")
    return None
    # END SOLUTION


def device_alive(device: str) -> bool:
    """True when this process can still run work on `device` ("cuda:0", or "cpu" on the
    stand-in) and read the result back; False when it cannot. Called at every liveness probe
    on the server's own thread: keep it cheap."""
    # BEGIN SOLUTION
    import torch

    try:
        x = torch.ones(4, device=device)
        return float((x * 2).sum().item()) == 8.0
    except RuntimeError:  # a dead CUDA context raises on every call
        return False
    # END SOLUTION


# %% [markdown]
# The same traffic against the server with your `check_request` in front and your
# `device_alive` behind `GET /livez`, plus one request with an out-of-range id in each field
# (probes every 100 ms, as above):

# %%
from labsupport.scenarios.device_side_assert import traffic

extra = traffic.bad_bodies(scenario.MODEL_CONFIG["vocab_size"], seed=SEED)
probes = [
    traffic.Call(
        f"bad-{i + 1}",
        0.4 + 0.3 * i,
        {**body, "request_id": f"bad-{i + 1}"},
        bool(body.get("stream")),
        "probe",
    )  # fmt: skip
    for i, (_, body) in enumerate(extra)
]
fixed = runs.run(calls + probes, check_request=check_request, device_alive=device_alive,
                 probe_livez=True, bad_ids=variant.bad_ids(SCALE) + [c.id for c in probes],
                 label="fixed replay")  # fmt: skip
livez = fixed.probe_series("/livez")
print(
    f"served: {fixed.served_good} of {fixed.good} good requests; "
    f"GET /livez 200: {sum(p.status == 200 for p in livez)} of {len(livez)}"
)
for o in fixed.outcomes:
    if o.id in fixed.bad_ids:
        print(f"{o.id:<9} {o.status} param={o.param} {o.error}")

# %%
_ = plots.show(figures.timeline(fixed, title="with check_request and device_alive"))

# %% [markdown]
# And the other half: the same traffic with no `check_request` (something gets through),
# your `device_alive` on `/livez`. The time from the first failed request to the first
# failed `/livez` is what a kubelet would need, plus `failureThreshold x periodSeconds`, to
# restart the pod:

# %%
victim_sent_s = variant.calls(SCALE)[variant.victim_index].at_s
detect_s = None
if SCALE == "full":  # the test suite's shorter run leaves this to the checks
    unguarded = runs.run(calls, device_alive=device_alive, probe_livez=True,
                         bad_ids=variant.bad_ids(SCALE), label="no check_request")  # fmt: skip
    failed_at = unguarded.first_failure_s()
    livez = unguarded.probe_series("/livez")
    caught = next((p.t_s for p in livez if p.status != 200 and p.t_s >= victim_sent_s), None)
    detect_s = None if caught is None else round(caught - victim_sent_s, 2)
    print(f"the bad request was sent at {victim_sent_s:.2f} s, the first request failed at "
          f"{failed_at:.2f} s, the first GET /livez failed at {caught:.2f} s; /livez answered "
          f"200 {sum(p.status == 200 for p in livez if p.t_s < victim_sent_s)} times before, "
          f"{sum(p.status == 200 for p in livez if p.t_s > caught)} times after")  # fmt: skip
    _ = plots.show(figures.timeline(unguarded, title="no check_request: /livez notices"))

# %%
check("285")

# %% [markdown]
# ## 5. Verify
#
# The incident's replay and the fixed server's, measured in this notebook with the same
# traffic: the well-formed requests served (every request but the ones carrying an id the
# model does not have: those are refused now, as they should be).

# %%
from labsupport import headline

wellformed = {c.id for c in calls} - set(variant.bad_ids(SCALE))
before = sum(o.served for o in incident.outcomes if o.id in wellformed)
after = sum(o.served for o in fixed.outcomes if o.id in wellformed)
bars = plots.before_after(
    {"as deployed": before, "check_request + device_alive": after},
    unit="requests",
    title=f"well-formed requests served, of {len(wellformed)}",
)
_ = plots.show(bars)
_ = headline.record(
    "285",
    metric="well-formed requests served",
    before=before,
    after=after,
    unit="requests",
    higher_is_better=True,
    seed=SEED,
    layer=variant.layer,
    of=len(wellformed),
    bad_refused=sum(400 <= o.status < 500 for o in fixed.outcomes if o.id in fixed.bad_ids),
    livez_detect_s=detect_s,
    device=device.device_name(),
)

# %% [markdown]
# ## 6. Debrief
#
# **Interview question.** A model server throws `CUDA error: device-side assert triggered`,
# and the stack trace points at a line that cannot be wrong. How do you find the real
# location?
#
# **Model answer.** The trace is wrong because kernels run asynchronously: the assertion
# fired inside a kernel launched earlier, and the error surfaced at the next call that
# waited for the device (a `.item()`, a `.tolist()`, a copy). I rerun the failing input in a
# fresh process with `CUDA_LAUNCH_BLOCKING=1`, so each launch waits and the call that
# launched the failing kernel raises; the kernel's assertion on stderr says which kind
# (`indexSelect*: srcIndex < srcSelectDimSize` is an index past an embedding table;
# `index out of bounds` is an indexing or scatter op). In serving, the usual culprit is a
# token id at or above the model's vocabulary size: a tokenizer that gained special tokens,
# a client on another tokenizer, ids in `stop_token_ids`, `allowed_token_ids` or
# `logit_bias`. Then I fix two things: validate every token id at the API boundary against
# the model's vocabulary (a 400 that names the id), and make liveness exercise the device,
# because the error is sticky: the process can never use its GPU again, and only a restart
# cures it.
#
# **Where the classic answer is incomplete.**
#
# - **The process is dead after the first assertion.** `cudaErrorAssert` leaves the context
#   unusable; every later CUDA call fails. A server that catches the exception and carries
#   on fails every request while looking healthy, and `/health` that checks a thread or a
#   flag keeps answering 200. Liveness must touch the device (a tiny kernel and a sync);
#   readiness must not send real inference (lab 278).
# - **Validate every field, against the model.** vLLM validates prompt ids, `logit_bias`
#   and `allowed_token_ids`; `stop_token_ids` was not validated until 2026, and one request
#   with an out-of-vocabulary stop id and `min_tokens` took down whole engines (vllm#54195,
#   fixed by vllm#54196, which also moved `allowed_token_ids` from `len(tokenizer)` to the
#   model's vocabulary size).
# - **`TORCH_USE_CUDA_DSA` is a build flag**: the message suggests it, but release wheels
#   are not built with it, so setting it at run time does nothing.
# - **`CUDA_LAUNCH_BLOCKING` does not help inside CUDA graphs** (vLLM captures them by
#   default): rerun with `--enforce-eager`, or use `compute-sanitizer`, or a CUDA core dump
#   (`CUDA_ENABLE_COREDUMP_ON_EXCEPTION=1`, then `cuda-gdb`), as vLLM's debugging guide shows.
# - **Rerun in a fresh process, with the failing batch**: the process that hit the error is
#   of no use, and the culprit may be another request of the same batch than the one whose
#   line you are looking at.
# - **Not every index error is fatal**: an index checked on the host (`IndexError: index 600
#   is out of bounds`) raises synchronously and leaves the context intact.
#
# **Follow-up questions an interviewer asks.**
#
# - Why does `/health` answer 200? (It reports the engine thread's life; the thread caught
#   the error. vLLM's EngineCore process dies instead, so its `/health` goes 503.)
# - How would you detect this before a page? (Alert on the 5xx ratio per pod and on a
#   liveness that exercises the device; canary new tokenizers against the model's config.)
# - Where else do ids become indices on the device? (Embeddings, `gather`/`index_select`
#   for logprobs and penalties, `index_put_` masks, `scatter` in MoE routing; sampling from
#   NaN/Inf probabilities asserts in `multinomial` too.)
# - Why not resize the model's embedding to 520? (New rows are untrained; the model would
#   emit garbage for them. The client and the model must agree on a tokenizer.)
# - Your liveness now runs a kernel every 10 s: what does it cost, and what must it not do?
#   (Microseconds; it must not queue behind the batch or run a forward pass, or it fails
#   under load and restarts healthy pods.)
#
# **References.**
#
# - PyTorch, CUDA semantics, asynchronous execution and `CUDA_LAUNCH_BLOCKING`:
#   https://docs.pytorch.org/docs/stable/notes/cuda.html#asynchronous-execution
# - CUDA Runtime API, `cudaErrorAssert` ("the device cannot be used again ... the process
#   must be terminated and relaunched"):
#   https://docs.nvidia.com/cuda/cuda-runtime-api/group__CUDART__TYPES.html
# - PyTorch's error text (`c10/cuda/CUDAException.cpp`) and the kernels' assertions
#   (`aten/src/ATen/native/cuda/Indexing.cu`, `IndexKernel.cu`): https://github.com/pytorch/pytorch
# - vLLM: out-of-vocabulary `stop_token_ids` crash the engine, https://github.com/vllm-project/vllm/issues/54195,
#   and the fix, https://github.com/vllm-project/vllm/pull/54196; the validation of the other
#   fields in `vllm/v1/engine/input_processor.py`
# - vLLM, debugging CUDA crashes with core dumps: https://blog.vllm.ai/2025/08/11/cuda-debugging.html
# - Kubernetes, liveness probes: https://kubernetes.io/docs/tasks/configure-pod-container/configure-liveness-readiness-startup-probes/
