"""A small real LLM serving stack for the labs: tiny model, paged KV cache, engine, HTTP API.

    >>> from labsupport.serving.launcher import serve_subprocess
    >>> from labsupport.serving.loadgen import run_load_sync
    >>> with serve_subprocess("--fault", "no_cancel_on_disconnect") as srv:
    ...     report = run_load_sync(srv.base_url, num_requests=4, disconnect_after_tokens=2)
    >>> report.summary["by_status"]
    {'client_disconnect': 4}

Modules, one concern each: `model` (tiny transformer, tokenizer), `weights` (safetensors
checkpoints, timed loading), `kv_cache` (block allocator, paged storage), `requests` (what flows
through the engine), `sampler` (vLLM's sampling parameters, logprobs), `stops` (stop strings and
tokens), `engine` (continuous batching in its own thread), `metrics` and `metrics_engine`
(Prometheus, vLLM's families), the API in vLLM's dialect - `sampling_fields`, `protocol`
(completions), `chat`, `responses`, `generation`, `streaming`, `state`, `server` (FastAPI
routes), `errors`, `bodies` (safe request reading) - `faults` (injected faults), `admin` (who
may inject them: the per-run token), `shutdown` (SIGTERM handlers), `serve_cli`
(`srelab serve`), `launcher` (run the server as a subprocess), `loadgen` (load generator for
any OpenAI server). Importing this package imports none of them (no torch, no threads).
"""
