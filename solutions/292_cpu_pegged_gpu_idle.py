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
# # Lab 292 - CPU at 100 %, GPU idle
#
# Every stream of an inference server stops at once. The worker process burns a full core,
# the GPU does nothing, nothing is logged, and a minute later it all comes back on its own.
# You will reproduce it with a real server, catch the process in the act with a real stack
# sampler, read the evidence, fix the server's front end and prove the fix by measurement.
# About 35 minutes; the workloads run in about a minute, each `check()` in about a minute.

# %%
from labsupport import device, session

SEED = 0  # which variant of the incident: `srelab start/interview --seed S` sets it
session.begin("292", seed=SEED)
_ = device.banner(
    gpu="optional",
    stand_in="the engine's step runs a small matmul on the CPU and sleeps the rest of a "
    "GPU step (8 ms); the server, its event loop, its tokenizer and the stack dumps are real",
)

# %% [markdown]
# ## 1. Incident
#
# > **PAGE - SEV2 - llm-api-prod: streams stalled** (09:12 UTC)
# >
# > | panel | value |
# > |---|---|
# > | `vllm:num_requests_running` | flat, no tokens emitted for 1-4 s at a time |
# > | worker process CPU | **100 %** of one core during the stalls |
# > | GPU utilisation (DCGM) | **0 %** during the stalls |
# > | HTTP 5xx | 0; a few 400s |
# > | restarts, OOM kills, Xid errors | none |
# >
# > What changed: nothing was deployed. A new enterprise customer started sending documents
# > last night.
#
# One worker process serves everything: an OpenAI-compatible API and the engine, on one
# asyncio event loop (as vLLM's single-process server did before its V1 engine, and as most
# FastAPI model servers do). CPU at 100 % with the GPU idle means the process is busy with
# something that is not the model. What, and why does everybody wait for it?

# %% [markdown]
# ## 2. Reproduce
#
# `labsupport.scenarios.cpu_pegged_gpu_idle` runs that server in a fresh process: chat
# requests on a fixed-seed open-loop schedule (about 20 a second), continuous batching of up
# to 32 streams (one token per stream per 8 ms step), and the new customer's requests. It
# measures from inside: every step of the engine, how late a task that sleeps 5 ms again and
# again wakes up (the loop's *lag*), the process's CPU time, the device's busy share, and
# every request's fate.

# %%
from labsupport import plots
from labsupport.scenarios import cpu_pegged_gpu_idle as scenario
from labsupport.scenarios.cpu_pegged_gpu_idle import figures

variant = scenario.variant(SEED)
scale = scenario.scale_for(session.scale())  # an 8 s window (the test suite runs 6 s)
shipped = scenario.run_arm("as shipped", variant=variant, scale=scale)  # about 15 s
chat = [r for r in shipped.requests if r.role == "chat"]
print(
    f"{len(chat)} chat requests on {shipped.device}: longest stall of the loop "
    f"{shipped.max_lag_ms:.0f} ms, longest gap between two engine steps "
    f"{shipped.longest_step_gap_ms:.0f} ms, worst wait between two tokens of a stream "
    f"{max(r.max_itl_ms for r in chat):.0f} ms"
)
for r in shipped.requests:
    if r.role != "chat":
        print(f"request {r.request_id}: {r.prompt_chars} characters, answered {r.status} after "
              f"{(r.finish_s - r.arrival_s) * 1e3:.0f} ms")  # fmt: skip

# %%
_ = plots.show(figures.dashboard(shipped))

# %% [markdown]
# The page, reproduced: while a stall lasts, the process's CPU is pinned (as much of a core as
# the machine gives it), the device is idle, the loop's 5 ms probe wakes up seconds late, and
# every stream waits. Two requests of the new customer coincide with the stalls, and both end
# in a 400. The process is doing *something* for seconds. Guessing is cheap; a stack dump
# of the live process is cheaper.

# %% [markdown]
# ## 3. Diagnose
#
# [py-spy](https://github.com/benfred/py-spy) reads another process's Python stacks from the
# outside (`py-spy dump --pid PID`): no restart, no code change, the process keeps running.
# It reads the target's memory with `ptrace`, which Linux guards: Yama's
# `kernel.yama.ptrace_scope` (1 on Ubuntu: only your own descendants) and, in a container,
# the `SYS_PTRACE` capability (`docker run --cap-add SYS_PTRACE`, or a Pod's
# `securityContext.capabilities.add: ["SYS_PTRACE"]`). Where neither is possible, a process
# that called `faulthandler.register(signal.SIGUSR1, all_threads=True)` at start-up prints
# every thread's stack when sent that signal (`kill -USR1 PID`). What does this machine allow?

# %%
print(scenario.ptrace_status())

# %% [markdown]
# `capture_stuck_server(variant)` starts the server as shipped, watches it from outside like
# on-call would (its heartbeat line goes silent for a second while its CPU burns), then
# runs `py-spy dump --pid PID --locals` on it, and kills it.

# %%
caught = scenario.capture_stuck_server(variant)  # about 10 s
print(f"{caught.tool}: pid {caught.pid}, {caught.cpu_percent:.0f} % CPU, heartbeat silent "
      f"{caught.silent_s:.1f} s\n")  # fmt: skip
print(caught.text)

# %% [markdown]
# And the fallback, on the same server: the dump `faulthandler` writes on `SIGUSR1`.

# %%
fallback = scenario.capture_stuck_server(variant, tool="faulthandler")  # about 10 s
print(fallback.text)

# %% [markdown]
# **Exercise 1 (graded).** Write `read_stack_dump(text)`: from a dump of either tool, say what
# the stuck process is doing (`hint("292", 1, "read_stack_dump")` if you are stuck; up to 3
# hints). The check runs it on made-up dumps of both tools, then on a new py-spy dump of your
# variant's server.

# %% tags=["exercise"]
import re


def read_stack_dump(text: str) -> dict:
    """What a stuck Python process is doing, from `py-spy dump --locals` or faulthandler output.

    The busy thread is the one py-spy marks active (prefer "active+gil" when several are
    active), or the one faulthandler calls "Current thread". Frames are listed innermost first.
    Return {"tool": "py-spy" or "faulthandler", "function": the busy thread's innermost
    function (its name only, without "Class."), "request_step": the function the frame
    handle_completion called (the frame printed just before handle_completion's in the busy
    thread; None if it has none), "request_id": the int in handle_completion's "request_id: N"
    local (None when the dump shows no locals)}.
    """
    # BEGIN SOLUTION
    lines = text.splitlines()
    threads = []  # (busy, [(function, {locals})])
    if any(re.match(r"(Current thread|Thread) 0x[0-9a-fA-F]+", ln) for ln in lines):
        tool = "faulthandler"
        for ln in lines:
            if m := re.match(r"(Current thread|Thread) 0x", ln):
                threads.append((m.group(1) == "Current thread", []))
            elif (m := re.match(r'\s+File ".*", line \d+ in (.+)$', ln)) and threads:
                threads[-1][1].append((m.group(1).strip(), {}))
        busy = next(frames for is_busy, frames in threads if is_busy)
    else:
        tool = "py-spy"
        for ln in lines:
            if m := re.match(r"Thread \S+ \(([^)]*)\)", ln):
                threads.append((m.group(1), []))
            elif threads and (m := re.match(r" {4}(\S.*?) \(.*\)\s*$", ln)):
                threads[-1][1].append((m.group(1), {}))
            elif threads and threads[-1][1] and (m := re.match(r" {8,}(\w+): (.*)$", ln)):
                threads[-1][1][-1][1][m.group(1)] = m.group(2).strip()
        active = [t for t in threads if "active" in t[0]]
        busy = next((f for s, f in active if "gil" in s), active[0][1] if active else [])
    names = [f.split(".")[-1] for f, _ in busy]
    step = request_id = None
    if "handle_completion" in names:
        i = names.index("handle_completion")
        step = names[i - 1] if i > 0 else None
        rid = busy[i][1].get("request_id")
        request_id = int(rid) if rid is not None and rid.lstrip("-").isdigit() else None
    return {"tool": tool, "function": names[0], "request_step": step, "request_id": request_id}
    # END SOLUTION


# %%
found = read_stack_dump(caught.text)
print(found)
print(read_stack_dump(fallback.text))

# %% [markdown]
# Grade it (the checks catch the server again in a fresh process; the fix checks fail until
# you write `configure_frontend` in section 4):

# %%
from labsupport import check, hint  # noqa: F401  (hint: `hint("292", 1, "read_stack_dump")`)

check("292")

# %% [markdown] tags=["reveal"]
# ### What the dump was telling you
#
# The event loop's only thread was inside the tokenizer, in `_byte_pair_merge`, on behalf of
# one request, reached from the handler's step your variant uses (the prompt, a stop sequence,
# or the token budget's count). While it runs, nothing else on that loop runs: no other
# request is parsed, no engine step is launched (GPU 0 %), no token is sent. One core at 100 %
# is the tokenizer.
#
# Why is tokenizing slow here and fast elsewhere? A byte-level BPE tokenizer (GPT-2's,
# tiktoken's, this server's) first splits text with a regular expression into *pieces* - a
# word with its leading space, a number, a run of punctuation - then merges each piece: start
# from single bytes, merge the adjacent pair of lowest rank, repeat until no pair is in the
# vocabulary. Each merge pass scans the whole piece, and a piece of n characters needs up to n
# merges: **quadratic in the piece's length**. Normal text has short pieces (white space cuts
# them), so nobody notices. A text with no white space - letters that lost their spaces, a
# line of dashes, a run of dots - is one huge piece. The regular expression is not the problem
# (Python's `re` splits in linear time here); the merge loop is. The cell below measures it.

# %%
import time

from labsupport import bpe
from labsupport.scenarios.cpu_pegged_gpu_idle import traffic

tok = bpe.load()
unit = traffic.long_text(variant, 8000)
for n in (1000, 2000, 4000, 8000):
    t = time.perf_counter()
    ids = tok.encode(unit[:n])
    print(f"{n:>5} characters of the variant's text: {len(ids):>5} tokens in "
          f"{(time.perf_counter() - t) * 1e3:7.1f} ms")  # fmt: skip
text = "The quick brown fox jumps over the lazy dog. " * 178
t = time.perf_counter()
ids = tok.encode(text)
print(f"{len(text):>5} characters of ordinary text: {len(ids):>5} tokens in "
      f"{(time.perf_counter() - t) * 1e3:7.1f} ms")  # fmt: skip

# %% [markdown] tags=["reveal"]
# Twice the characters, about four times the time: quadratic. Ordinary text of the same length
# is linear and takes a few ms. Rust tokenizers are faster per step but had the same curve:
# tiktoken's `_byte_pair_merge` scans the piece on every merge (tiktoken#195: `"a" * 100000`
# is very slow) and now switches to a heap for pieces of 100 bytes or more
# (`_byte_pair_merge_large`); js-tiktoken's pure-JS merge is still quadratic (dqbd/tiktoken
# PR #156). HF `tokenizers` uses a heap as well, but transformers#28629 shows whole
# documents still growing faster than linearly. Whatever the library, *where* it runs
# decides who waits.

# %% [markdown]
# ## 4. Fix
#
# Two fixes, both needed:
#
# - **Cap characters before tokenizing.** A token covers at most
#   `server.tokenizer.longest_token_chars` characters, so a text longer than
#   `max_model_len x longest_token_chars` cannot fit, whatever it is: refuse it with a 400
#   (`server.reject(message)`) without tokenizing. A smaller cap (4 characters per token,
#   "on average") refuses prompts that fit; a cap in *tokens* needs the tokenizing it was
#   meant to avoid.
# - **Tokenize off the event loop, in a process pool.** Everything under the cap can still
#   take hundreds of ms. In a `concurrent.futures.ProcessPoolExecutor`, the loop awaits the
#   result (`loop.run_in_executor(pool, tok.encode, text)`) and keeps stepping the engine.
#   Not a thread pool: this tokenizer is Python and holds the GIL, so a thread only takes
#   turns with the loop (every 5 ms, `sys.getswitchinterval()`), and the engine's step rate
#   halves. Size the pool so one long text cannot make every short prompt wait behind it,
#   and shut it down when the server stops.
#
# vLLM does both in its own way: its V1 engine runs in a separate process (`EngineCore`) from
# the API server that tokenizes, and `--api-server-count` scales the tokenizing front end over
# several processes.
#
# **Exercise 2 (graded).** Write `configure_frontend(server)`. The server calls it once at
# start-up. The checks run your variant's server as shipped and with your code on the same
# schedule, and require: the loop's longest stall 5x shorter, the engine's step rate kept (70
# %) while a long text under the cap is tokenized, the long request refused at once, every
# other request tokenized exactly as before and served, no process left behind.

# %% tags=["exercise"]
import asyncio
import concurrent.futures
import multiprocessing


def configure_frontend(server) -> None:
    """Called once at start-up with the server's front end.

    server.tokenizer: the model's tokenizer (.encode(text) -> ids, .longest_token_chars;
    it pickles as its vocabulary). server.max_model_len: the most tokens a request may have.
    server.tokenize: the coroutine function the server awaits for every text it tokenizes
    (`async def tokenize(text) -> list[int]`; as shipped it calls tokenizer.encode on the
    loop); replace it. server.reject(message): raise it to answer 400.
    server.on_shutdown(fn): fn() is called when the server stops.
    """
    # BEGIN SOLUTION
    tok = server.tokenizer
    cap_chars = server.max_model_len * tok.longest_token_chars  # more cannot fit
    pool = concurrent.futures.ProcessPoolExecutor(
        max_workers=2, mp_context=multiprocessing.get_context("spawn")
    )
    server.on_shutdown(lambda: pool.shutdown(wait=True, cancel_futures=True))
    for warm in [pool.submit(tok.encode, "warm up") for _ in range(2)]:
        warm.result()  # both workers started and holding the vocabulary before traffic

    async def tokenize(text: str) -> list[int]:
        if len(text) > cap_chars:
            server.reject(
                f"{len(text)} characters cannot fit in {server.max_model_len} tokens "
                f"(at most {cap_chars} characters)"
            )
        return await asyncio.get_running_loop().run_in_executor(pool, tok.encode, text)

    server.tokenize = tokenize
    # END SOLUTION


# %%
check("292")

# %% [markdown]
# ## 5. Verify
#
# Your start-up code on the same variant and schedule, in a fresh process, next to the run of
# section 2:

# %%
result = scenario.compare_arms(configure_frontend, variant=variant, scale=scale, shipped=shipped)
print(result.table())
print(f"\nlongest stall of the event loop, as shipped / fixed: {result.ratio:.0f}x")
for r in result.fixed.requests:
    if r.role != "chat":
        print(f"fixed, request {r.request_id}: {r.prompt_chars} characters, answered "
              f"{r.status} after {(r.finish_s - r.arrival_s) * 1e3:.0f} ms")  # fmt: skip

# %%
_ = plots.show(figures.comparison(result.shipped, result.fixed))
_ = plots.show(figures.dashboard(result.fixed))

# %%
from labsupport import headline

headline.record(
    "292",
    metric="longest event-loop stall",
    before=result.shipped.max_lag_ms,
    after=result.fixed.max_lag_ms,
    unit="ms",
    device=result.fixed.device,
    request_step=found["request_step"],
    longest_step_gap_ms_shipped=round(result.shipped.longest_step_gap_ms, 1),
    longest_step_gap_ms_fixed=round(result.fixed.longest_step_gap_ms, 1),
)

# %% [markdown]
# ## 6. Debrief
#
# **Interview question.** A worker process sits at 100 % CPU while its GPU is at 0 %. Where is
# it usually stuck: an infinite loop, lock contention?
#
# **Model answer.** Do not guess: take a stack dump of the live process. `py-spy dump --pid`
# (add `--locals` for the request, `--native` for C/Rust frames; `py-spy top` for where time
# goes over a while) needs ptrace: `SYS_PTRACE` in a container, Yama's `ptrace_scope` on the
# host. Without it, `faulthandler.register(SIGUSR1, all_threads=True)` set at start-up
# (or `python -X faulthandler`), and from Python 3.14 `sys.remote_exec` (PEP 768) /
# 3.15's `python -m profiling.sampling` attach without a restart. "CPU high, GPU idle" says the
# busy thread runs Python that is not the model: most often the front end - tokenizing,
# detokenizing, rendering a chat template, compiling a JSON-schema grammar for structured
# output - or CPU threads oversubscribed under a cgroup quota (torch's intra-op threads sized
# to the host's cores, `OMP_NUM_THREADS`). When that thread is the event loop that also drives
# the engine, one request stops every stream. Here: one piece of text with no white space
# made the BPE merge loop quadratic. Fix it twice: refuse what cannot fit by characters before
# tokenizing, and tokenize in other processes (vLLM: API servers apart from the `EngineCore`
# process, `--api-server-count`); alert on the loop's lag, not only on CPU.
#
# **Where the classic answer is outdated or wrong.**
#
# - "Regex catastrophic backtracking in the tokenizer": rarely. Tokenizers' split patterns are
#   linear (Rust's `regex`, `fancy-regex` on these patterns); the super-linear part is BPE's
#   merge on one huge piece (tiktoken#195, harmony#79, transformers#28629).
# - "GIL contention between threads doing logs or metrics": possible, but then py-spy shows
#   several active threads taking turns (`--gil` shows who holds it), not one thread pinned.
# - "A big list concatenation in post-processing": possible, and the same dump tells you in a
#   minute. The dump is the answer, not the list of usual suspects.
# - A thread pool does not fix a pure-Python tokenizer (the GIL); it helps only where the
#   library releases it (Rust tokenizers releasing the GIL in `encode_batch`).
#
# **Follow-up questions an interviewer asks.**
#
# - py-spy says "Permission denied" in a Kubernetes Pod. What do you change, and what does it
#   cost in security? (`SYS_PTRACE` in the container's capabilities, or an ephemeral debug
#   container sharing the process namespace: `kubectl debug -it POD --target=CONTAINER`.)
# - Why did GPU utilisation read 0 % and not "a bit lower"? (The engine's steps are launched
#   from the same loop; no step, no kernel.)
# - How would you find this without a dump, from metrics alone? (Event-loop lag, time between
#   engine steps, per-request tokenize time histograms, prompt characters vs tokens.)
# - What cap do you choose, and why not in tokens? (Characters: max_model_len x the longest
#   token is the bound that never refuses a prompt that fits.)
# - Why a pool of two workers and not one? (With one, every short prompt waits behind the
#   long one; size for concurrency, or send only long texts to the pool.)
# - Fork or spawn for the pool? (Spawn or forkserver: a fork after CUDA or threads started
#   copies their state; Python 3.14 made forkserver the Linux default.)
#
# **References.**
#
# - py-spy (dump, --locals, Docker/Kubernetes and ptrace): https://github.com/benfred/py-spy
# - Yama ptrace_scope: https://www.kernel.org/doc/html/latest/admin-guide/LSM/Yama.html
# - faulthandler: https://docs.python.org/3/library/faulthandler.html ; remote debugging
#   attach, PEP 768: https://peps.python.org/pep-0768/
# - tiktoken, "Very slow for inputs like 'a' * 100000":
#   https://github.com/openai/tiktoken/issues/195 ; its `_byte_pair_merge` and
#   `_byte_pair_merge_large`: https://github.com/openai/tiktoken/blob/main/src/lib.rs
# - js-tiktoken's quadratic merge: https://github.com/dqbd/tiktoken/pull/156
# - transformers#28629 (fast tokenizer not linear):
#   https://github.com/huggingface/transformers/issues/28629
# - asyncio, running blocking code:
#   https://docs.python.org/3/library/asyncio-dev.html#running-blocking-code and
#   `loop.run_in_executor`:
#   https://docs.python.org/3/library/asyncio-eventloop.html#asyncio.loop.run_in_executor
# - vLLM's processes (API server, EngineCore): https://docs.vllm.ai/en/latest/design/arch_overview/
#   and https://docs.vllm.ai/en/latest/design/multiprocessing/
