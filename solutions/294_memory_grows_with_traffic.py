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
# # Lab 294 - GPU memory grows with traffic
#
# Since the release that compiled the model, the prefill server's GPU memory climbs with
# traffic, a step at a time, and some requests take a second instead of ten milliseconds.
# Nothing leaks that anyone can find: the model's tensors are the same size as yesterday.
# You will reproduce it with the real `torch.compile`, read the log and the memory dashboard
# to find what holds the memory and what the latency spikes are, fix the server so that it
# compiles once and then only replays, and prove it by measurement. About 40 minutes; the
# code runs in about 2 minutes.

# %%
from labsupport import device, progress, session
from labsupport.scenarios import memory_grows_with_traffic as scenario

SEED = 0  # which variant of the incident: `srelab start/interview --seed S` sets it
session.begin("294", seed=SEED)
variant = scenario.variant(SEED)
SCALE = session.scale()  # "full"; the test suite runs a shorter "suite" scale
_ = device.banner(
    gpu="real",
    stand_in="Dynamo itself (guards, recompiles, recompile_limit, stances, TORCH_LOGS) on the "
    "CPU, with a stand-in backend (labsupport.compiler) for mode='reduce-overhead': it keeps "
    "the CUDA graphs' books, one recording per input size with the memory its private pool "
    "would reserve by the caching allocator's rules, but records no real graph, so a replay "
    "saves no time here",
)

# %% [markdown]
# ## 1. Incident
#
# > **PAGE - SEV3 - llm-prefill: GPU memory at 85 % and climbing** (16:20 UTC)
# >
# > | panel | value |
# > |---|---|
# > | `nvidia-smi` memory of the server | 21 GiB at the 14:00 deploy, **68 GiB** now, in steps |
# > | `torch.cuda.memory_allocated` (sampled) | flat between requests |
# > | prefill latency p50 / p99 | 12 ms / **1.4 s** (before the deploy: 15 ms / 40 ms) |
# > | errors, OOMs, restarts | none yet |
# > | traffic | normal for a Tuesday |
# >
# > What changed: the 14:00 release wraps the model in
# > `torch.compile(model, mode="reduce-overhead")`; the benchmark that approved it showed 20 %
# > more throughput (it sends one request shape, over and over). The deployment also sets
# > `dynamic` and `torch._dynamo.config.recompile_limit` (see the variant below).
#
# Memory that the model's tensors do not account for, growing with traffic, and a latency
# tail that was not there yesterday. Leak? Fragmentation? The compiler? This lab's deployment:

# %%
print(
    f"torch.compile(model, mode='reduce-overhead', dynamic={variant.dynamic}); "
    f"torch._dynamo.config.recompile_limit = {variant.recompile_limit}"
)
print(f"batches of {variant.batch[0]}-{variant.batch[1]} prompts of "
      f"{variant.length[0]}-{variant.length[1]} tokens")  # fmt: skip

# %% [markdown]
# ## 2. Reproduce
#
# `scenario.run` starts the server in a fresh process: the serving labs' transformer
# (`labsupport.serving.model`), run over a batch of prompts at once (logits for every
# position: a prefill step), compiled as the deployment does. It serves the variant's
# traffic one batch at a time and logs a line per request; the process runs with
# `TORCH_LOGS=recompiles`, so torch's own log lines land in the same log, in order. The
# dashboard samples, after every request, the memory reserved by the process
# (`torch.cuda.memory_reserved()`; on the CPU, the stand-in's weights plus what its recordings
# keep) and the request's latency. About 20 to 40 s on 2 cores:

# %%
from labsupport import plots
from labsupport.scenarios.memory_grows_with_traffic import figures

deployed = scenario.run(variant, scale=SCALE, echo=progress.echo("as deployed"))
latencies = sorted(r.latency_ms for r in deployed.requests)
p99_ms = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
print(
    f"{len(deployed.requests)} requests on {deployed.device} (torch {deployed.torch_version}): "
    f"memory reserved {deployed.warmed_reserved_bytes / scenario.MiB:.0f} MiB before the "
    f"first request, {deployed.final_reserved_bytes / scenario.MiB:.0f} MiB after the last; "
    f"latency p50 {latencies[len(latencies) // 2]:.0f} ms, p99 {p99_ms:.0f} ms"
)
_ = plots.show(figures.timeline(deployed))

# %% [markdown]
# Before you read on: does memory grow with every request, or with some? Do the slow
# requests and the memory steps coincide? Does either stop at some point?

# %% [markdown]
# ## 3. Diagnose
#
# The evidence on-call has: the server's log (with torch's lines) and the dashboard, as
# `evidence = {"log": [...], "baseline_reserved_mib": ..., "requests": [...]}`. The first
# lines of the log, then every warning torch wrote:

# %%
evidence = scenario.evidence(deployed)
print("\n".join(line[:200] for line in evidence["log"][:24]))
print("...")
warnings = [line for line in evidence["log"] if line.startswith("W")]
print(f"{len(warnings)} warning lines; the first ones:")
print("\n".join(line[:240] for line in warnings[:8]))

# %%
print("request  batch  length  latency_ms  reserved_mib")
for row in evidence["requests"][:16]:
    print(
        f"{row['request']:>7}  {row['batch']:>5}  {row['length']:>6}  "
        f"{row['latency_ms']:>10.1f}  {row['reserved_mib']:>12.1f}"
    )

# %% [markdown]
# Two mechanisms of `torch.compile(mode="reduce-overhead")` can grow memory with traffic, and
# the log and the dashboard tell them apart:
#
# - **"compiles"**: each new request shape fails the guards of every graph compiled so far,
#   and Dynamo compiles the model again (a `Recompiling function` entry in the log), with a
#   new CUDA graph for it.
# - **"recordings"**: Dynamo compiles once more, with a size that may vary, and that one graph
#   records a new CUDA graph for each distinct size it meets, without any recompile.
#
# Either way, every CUDA graph keeps memory of its own (its private pool) for as long as it
# lives.
#
# **Exercise 1 (graded).** Write `explain_growth(evidence)`: which mechanism, which
# dimension of the requests drives it, and the numbers of this run. Stuck?
# `hint("294", 1, "explain_growth")` (up to 3) gives a hint and notes it in your transcript.

# %% tags=["exercise"]
import re


def explain_growth(evidence: dict) -> dict:
    """What grows the server's memory, from its log and its dashboard.

    evidence: {"log": [lines], "baseline_reserved_mib": float, "requests": [{"request",
    "batch", "length", "latency_ms", "reserved_mib"}]}. The server writes
    "request N: batch B x L tokens" before it calls the model for request N; torch's lines
    follow, in the order torch wrote them. reserved_mib is sampled after each request.

    Return a dict:
    - "cause": "compiles" (a recompile per new shape) or "recordings" (one graph recording a
      new CUDA graph for each new size, without recompiling);
    - "dimension": "batch" or "length", the dimension of the requests whose new values did it;
    - "recompiles": how many "Recompiling function" entries the log holds;
    - "graphs": how many CUDA graphs were recorded: each one steps reserved memory up, so
      count the requests after which reserved_mib grew;
    - "fallback_request": the request during which Dynamo gave up compiling (it logs
      "hit config.recompile_limit"), from which new shapes run as plain eager code; None if
      it never did;
    - "graph_mib": MiB reserved after the last request beyond baseline_reserved_mib.
    """
    # BEGIN SOLUTION
    log, requests = evidence["log"], evidence["requests"]
    recompiles = sum("Recompiling function" in line for line in log)
    fallback = current = None
    for line in log:
        found = re.search(r"\] request (\d+): batch", line)
        if found:
            current = int(found.group(1))
        if "hit config.recompile_limit" in line and fallback is None:
            fallback = current
    base = evidence["baseline_reserved_mib"]
    graphs, level = 0, base
    for row in requests:
        if row["reserved_mib"] > level:
            graphs += 1
        level = max(level, row["reserved_mib"])
    batches = {row["batch"] for row in requests}
    lengths = {row["length"] for row in requests}
    return {
        "cause": "recordings" if graphs > recompiles + 1 else "compiles",
        "dimension": "batch" if len(batches) > len(lengths) else "length",
        "recompiles": recompiles,
        "graphs": graphs,
        "fallback_request": fallback,
        "graph_mib": requests[-1]["reserved_mib"] - base,
    }
    # END SOLUTION


# %%
explain_growth(evidence)

# %% [markdown]
# Grade the diagnosis: the check compares your function with made-up incidents of both kinds
# and with this variant's own run, measured while it runs (the fix checks fail until you
# write section 4):

# %%
from labsupport import check

check("294")

# %% [markdown] tags=["reveal"]
# **What happened.** The same run, each request coloured by what ran: a compile (Dynamo
# traced the model again and a new graph was recorded), a recording (an existing graph
# recorded a CUDA graph for a new size), a replay, or plain eager code:

# %% tags=["reveal"]
_ = plots.show(figures.timeline(deployed, by_path=True, title="the deployed server, by path"))
print(deployed.paths(), "| graphs compiled:", deployed.compiled_graphs,
      "| CUDA graphs recorded:", len(deployed.recordings))  # fmt: skip

# %% [markdown] tags=["reveal"]
# - **`dynamic=False`** (the "compiles" variants) tells Dynamo to specialise on every size:
#   its guards check `ids.size()` exactly, so each new shape fails them all (`size mismatch
#   at index 0` for the batch, `index 1` for the length) and Dynamo compiles the model again.
#   Each compile costs a stall (Inductor and CUDA-graph capture on a GPU: seconds) and its
#   CUDA graph keeps a private pool. At `recompile_limit` (8 by default; the old name is
#   `cache_size_limit`) Dynamo logs one warning and gives up on this function: every new
#   shape from then on runs as eager code, with no error and no more memory, just slower on
#   a GPU (every kernel launched one by one again). Raising the limit only buys more
#   compiles and more pools.
# - **torch's default `dynamic=None`** ("recordings"): the second shape makes Dynamo mark the
#   size dynamic and compile once more; from then on one graph serves every size, but
#   `reduce-overhead`'s CUDA graphs cannot: a CUDA graph is fixed to the shapes and addresses
#   it was captured with, so CUDA graph trees record a new graph for each distinct size
#   (torch warns past `cudagraph_dynamic_shape_warn_limit`, 8). No recompiles, a memory step
#   per new size, and no limit at all.
# - `memory_allocated` stays flat because a recording's intermediates are freed back into its
#   private pool: the pool stays reserved (`memory_reserved`, and what `nvidia-smi` shows),
#   and only `torch.cuda.memory_summary()`/`memory_stats()` show it as reserved but
#   unallocated. Nothing leaks in the Python sense: every graph is reachable and reused when
#   its shape comes back.

# %% [markdown]
# ## 4. Fix
#
# **Exercise 2 (graded).** Make the compiled model meet only a few shapes, all of them
# before traffic, and make any new one after that an error you see, not a silent recompile:
#
# - `capture_shapes(seen, max_batch, max_length)`: the shapes to compile and record, given
#   the shapes of yesterday's traffic (`seen`, with repeats) and the server's limits;
# - `serve(step, ids, shapes)`: serve one request through the compiled model `step` so that
#   only those shapes reach it, returning exactly the logits the model gives for `ids`;
# - `warm_up(step, shapes)`: run once before traffic.
#
# `hint("294", 1, "capture_shapes")`, `"serve"`, `"warm_up"` if you want one.

# %% [markdown] tags=["reveal"]
# What people reach for, and what each costs:
#
# - **Pad to a few capture sizes** (what vLLM does: `cudagraph_capture_sizes`, each batch
#   padded up to the next captured size): a handful of graphs, all recorded at start-up;
#   the price is the padding's wasted compute, small with sizes that double.
# - **`torch._dynamo.mark_dynamic` / `dynamic=True`**: ends the recompiles, not the
#   recordings: under `reduce-overhead` a graph with a dynamic size still records a CUDA
#   graph per size it meets.
# - **`torch._inductor.config.triton.cudagraph_skip_dynamic_graphs = True`**: no CUDA graphs
#   for dynamic graphs at all: memory bounded, and the launch overhead that
#   `reduce-overhead` was for is back.
# - **A bigger `recompile_limit`**: postpones the fallback and keeps every pool.
# - **`torch.compiler.set_stance("fail_on_recompile")`** after warm-up: not a fix on its own,
#   a guard rail. A recompile after warm-up raises instead of silently compiling (or, past
#   the limit, silently running eager); `"eager_on_recompile"` would hide it instead.

# %% tags=["exercise"]
import torch


def capture_shapes(seen: list, max_batch: int, max_length: int) -> list:
    """The (batch, length) shapes the compiled model will ever see, as a list of pairs.

    seen: the (batch, length) of each request of yesterday's traffic, with repeats. The
    server never sends more than max_batch prompts of more than max_length tokens, so one of
    your shapes must hold (max_batch, max_length), and none may be larger. At most 8 shapes
    (the deployment's recompile limit, and every shape keeps memory). Padding every request
    of `seen` up to the smallest shape that holds it may make the model compute at most
    1.6x the tokens it was asked for.
    """

    # BEGIN SOLUTION
    def ladder(values: list, top: int) -> list:
        if min(values) >= top:  # a dimension the server already fixes
            return [top]
        sizes, size = [], 1
        while size < min(values):
            size *= 2
        while size < top:
            sizes.append(size)
            size *= 2
        return sizes + [top]

    batches = ladder([b for b, _ in seen], max_batch)
    lengths = ladder([n for _, n in seen], max_length)
    return [(b, n) for b in batches for n in lengths]
    # END SOLUTION


def serve(step, ids: torch.Tensor, shapes: list) -> torch.Tensor:
    """Serve one request: `ids` is (batch, length) token ids on the model's device; return
    logits (batch, length, vocab) equal to those the model gives for `ids` itself.

    step: the compiled model (call it on a (B, L) tensor of token ids, get (B, L, vocab)).
    Only shapes from `shapes` may reach it. The model is causal: the logits of a position
    depend on that position and the ones before it in the same prompt, and on nothing else.
    """
    # BEGIN SOLUTION
    b, n = ids.shape
    fits = [s for s in shapes if s[0] >= b and s[1] >= n]
    rows, cols = min(fits, key=lambda s: s[0] * s[1])
    padded = ids.new_zeros((rows, cols))
    padded[:b, :n] = ids  # new rows at the end, new positions after each prompt
    return step(padded)[:b, :n]
    # END SOLUTION


def warm_up(step, shapes: list) -> None:
    """Called once before the first request, with the compiled model and your shapes.

    Make every shape compile and record now, not under traffic, and make sure that a
    recompile later on is an error rather than a silent slowdown. The model's device is
    next(step.parameters()).device.
    """
    # BEGIN SOLUTION
    on = next(step.parameters()).device
    # more than once: a shape met before Dynamo made the size dynamic is recorded again by the
    # graph with the dynamic size, which answers first from then on; and on a GPU, CUDA graph
    # trees run a new shape once (their warm-up) before they record it
    for _ in range(3):
        for b, n in shapes:
            step(torch.zeros((b, n), dtype=torch.long, device=on))
    torch.compiler.set_stance("fail_on_recompile")
    # END SOLUTION


# %% [markdown]
# Run the same traffic through your fix, in a fresh process (the server calls
# `capture_shapes` with the traffic it served, then `warm_up`, then `serve` per request):

# %%
fix = (capture_shapes, serve, warm_up)
fixed = scenario.run(variant, scale=SCALE, fix=fix, echo=progress.echo("fixed"))
if fixed.error:
    print("your fix failed:", fixed.error)
print(
    f"shapes {fixed.shapes}; after warm-up {fixed.warmed_reserved_bytes / scenario.MiB:.0f} "
    f"MiB, after the last request {fixed.final_reserved_bytes / scenario.MiB:.0f} MiB; "
    f"stance {fixed.stance!r}; {fixed.paths()}"
)
_ = plots.show(figures.timeline(fixed, by_path=True, title="the fixed server, by path"))

# %% [markdown]
# Grade the fix: the checks run your functions on traffic of other shapes, then serve this
# variant's traffic with them and compare every answer with the model's own logits:

# %%
check("294")

# %% [markdown]
# ## 5. Verify
#
# Both servers, same traffic, same run of this notebook: the memory the compiled model holds
# beyond its weights, and the p99 latency of the traffic.

# %%
_ = plots.show(figures.comparison(deployed, fixed))

# %%
from labsupport import headline


def grown_mib(run) -> float:
    return (run.final_reserved_bytes - run.baseline_reserved_bytes) / scenario.MiB


def p99(run) -> float:
    ordered = sorted(r.latency_ms for r in run.requests)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


_ = headline.record(
    "294",
    metric="memory reserved beyond the weights after the traffic",
    before=grown_mib(deployed),
    after=grown_mib(fixed),
    unit="MiB",
    seed=SEED,
    requests=len(deployed.requests),
    graphs_before=len(deployed.recordings),
    graphs_after=len(fixed.recordings),
    recompiles_before=sum("Recompiling function" in line for line in deployed.log),
    eager_requests_before=deployed.paths()["eager"],
    p99_ms_before=round(p99(deployed), 1),
    p99_ms_after=round(p99(fixed), 1),
    shapes=fixed.shapes,
    device=deployed.device,
)

# %% [markdown]
# ## 6. Debrief
#
# **Interview question.** Tell me about the hardest GPU memory leak you chased. Did
# `torch.cuda.memory_summary()` find it?
#
# **Model answer.** The hardest ones are not leaks: the memory is held on purpose by
# something nobody counts. After we turned on `torch.compile(mode="reduce-overhead")`, reserved
# memory grew in steps with traffic while `memory_allocated` stayed flat, and the p99 grew a
# tail of one-second requests. `memory_summary()` showed it as reserved, not allocated, which
# rules out a tensor leak but does not say who reserved it. `TORCH_LOGS=recompiles` did: with
# `dynamic=False` every new prompt length failed the guards (`size mismatch at index 1`) and
# Dynamo recompiled, each compile with its own CUDA graph and private memory pool, until
# `recompile_limit` (8) made it give up and run new shapes eagerly, silently slower. With the
# default dynamic shapes there are no recompiles, but CUDA graph trees still record one graph
# per distinct size. The fix was the one vLLM uses: pad every batch up to one of a handful of
# capture sizes (powers of two, padding at the end so causal attention never sees it, output
# cut back), compile and record all of them at start-up, then
# `torch.compiler.set_stance("fail_on_recompile")` so a new shape in production is an error in
# the logs instead of a silent compile. Memory flat after warm-up, p99 back, outputs identical.
#
# **Where the classic answer falls short.** "The graph cache grew because of dynamic shapes:
# bucket the inputs or limit the cache size":
#
# - **Limiting the cache does not bound memory the way people think.** `cache_size_limit` is
#   now `torch._dynamo.config.recompile_limit` (default 8, plus
#   `accumulated_recompile_limit`, 256). Hitting it is not an error: Dynamo logs one warning
#   and falls back to eager for that function, a performance cliff nobody pages on. Raising it
#   keeps compiling and keeps every graph's pool; `fullgraph=True` turns the limit into an
#   exception instead.
# - **It is CUDA graphs, not kernels, that hold the memory.** Compiled kernels are small;
#   each CUDA graph's private pool holds its static inputs, outputs and intermediates.
#   CUDA graph trees share one pool between graphs that are not live at once, so a GPU
#   reserves less per graph than this lab's stand-in (which gives each its own pool), but the
#   growth per distinct size is the same shape.
# - **`mark_dynamic` / `dynamic=True` is half a fix.** It stops recompiles; under
#   `reduce-overhead` a dynamic graph still records a CUDA graph per size
#   (`cudagraph_skip_dynamic_graphs` turns those graphs off, and with them the speed-up).
# - **Find it with the right tools.** `TORCH_LOGS=recompiles` (or `recompiles_verbose`,
#   `graph_breaks`), `torch._dynamo.utils.counters`, tlparse for a whole run;
#   `memory_stats()` and `torch.cuda.memory._snapshot()` show segments in private pools.
#
# **Follow-up questions an interviewer asks.**
#
# - Why pad at the end and not at the start? (Positions: a prompt shifted right gets other
#   position embeddings; with causal attention, tokens after the prompt never affect it.)
# - What does padding cost, and how do you choose the sizes? (Wasted compute on the pad;
#   sizes that double waste under half of any request; vLLM captures 1, 2, 4, 8, then steps
#   of 8 up to `max_num_seqs`, and pads the decode batch to the next one.)
# - What happens on your server if a request longer than the largest shape arrives after
#   warm-up? (Nothing fits: reject it at the API with a clear error, or split it; with
#   `fail_on_recompile`, calling the model with it raises instead of compiling.)
# - Why did the benchmark not show this? (One request shape: one compile, one graph.)
# - How would you alert on it? (Recompile counters or log lines after warm-up; reserved
#   memory growing while allocated is flat; requests served outside the captured sizes.)
#
# **References.**
#
# - `torch.compile` (torch 2.13: "Multiple compiled results can be associated with a frame up
#   to torch._dynamo.config.recompile_limit, which defaults to 8; at which point we will fall
#   back to eager"): https://docs.pytorch.org/docs/2.13/generated/torch.compile.html
# - Dynamo recompilation (the page torch's own limit warning links to):
#   https://docs.pytorch.org/docs/main/user_guide/torch_compiler/compile/programming_model.recompilation.html
# - `torch.compiler.set_stance`:
#   https://docs.pytorch.org/docs/stable/generated/torch.compiler.set_stance.html
# - CUDA graph trees (one graph per distinct size, the shared private pool):
#   https://docs.pytorch.org/docs/stable/user_guide/torch_compiler/torch.compiler_cudagraph_trees.html
# - torch 2.13's warning and its limit: `maybe_warning_due_to_dynamic_shape` in
#   `torch/_inductor/cudagraph_utils.py`, `cudagraph_dynamic_shape_warn_limit` and
#   `cudagraph_skip_dynamic_graphs` in `torch/_inductor/config.py`:
#   https://github.com/pytorch/pytorch
# - Inductor config reference: https://docs.pytorch.org/docs/main/torch.compiler.config.html
# - vLLM pads each batch to a captured size (`cudagraph_capture_sizes` in
#   `vllm/config/compilation.py`; the padding table `_bs_to_padded_graph_size` in
#   `vllm/v1/cudagraph_dispatcher.py`, on `CompilationConfig` in older releases):
#   https://github.com/vllm-project/vllm
