"""A small real LLM serving stack for the labs: tiny model, paged KV cache, engine, HTTP API.

    >>> from labsupport.serving.launcher import serve_subprocess
    >>> from labsupport.serving.loadgen import run_load_sync
    >>> with serve_subprocess("--fault", "no_cancel_on_disconnect") as srv:
    ...     report = run_load_sync(srv.base_url, num_requests=4, disconnect_after_tokens=2)
    >>> report.summary["by_status"]
    {'client_disconnect': 4}

Modules, one concern each: `model` (tiny transformer, tokenizer), `weights` (safetensors
checkpoints, timed loading), `kv_cache` (block allocator, paged storage), `requests` (what flows
through the engine), `engine` (continuous batching in its own thread), `metrics` (Prometheus,
vLLM names), `protocol` (OpenAI request validation and bodies), `faults` (injected faults),
`shutdown` (SIGTERM handlers), `server` (FastAPI routes), `serve_cli` (`srelab serve`),
`launcher` (run the server as a subprocess), `loadgen` (load generator for any OpenAI server).
Importing this package imports none of them (no torch, no threads).
"""
