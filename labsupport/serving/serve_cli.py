"""`srelab serve`: the tiny engine behind an OpenAI-compatible API, as a real process.

    $ python -m labsupport.serving.serve_cli --port 0 --weights-mb 64
    startup {"generate_s": 0.31, "read_s": 0.05, ...}
    listening on http://127.0.0.1:41237

Start-up goes as vLLM's does: load weights, warm up, and only then bind the port, so a probe
sees "connection refused" while loading. `--port 0` picks a free port; the `listening on` line
tells a parent which. SIGTERM runs the shutdown handler (`--shutdown-timeout 0`, vLLM's
default: abort in-flight requests; `> 0`: drain for up to that many seconds;
`--sigterm-handler module:function` for your own), then the process exits leaving no thread,
socket or file behind. `--stream-handler module:function` streams every response through your
async generator (`fn(handle)`, see `server`), which then owns cancellation on disconnect.
`--livez-handler` / `--readyz-handler module:function` serve `GET /livez` and `GET /readyz` with
your logic over scrapes of the server's own /metrics (see `own_probes`).
`--setup module:function` is called once with the server's state before it serves (after the
warm-up, before the engine thread starts); it may return a function that wraps the ASGI app
(a lab's extra routes, checks or engine policy).
SIGINT (Ctrl-C) aborts at once. SIGUSR1 dumps every thread's stack to
stderr (faulthandler), for when py-spy is not allowed.

The admin API (`/admin/fault`) takes the token in `SRELAB_ADMIN_TOKEN` from the environment
(the launcher sets a fresh one per run; read and removed from the environment at start, never
printed); without it the admin API is off, and the server says how to switch it on.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import faulthandler
import json
import logging
import os
import signal
import socket
import sys
import time

from labsupport.serving.admin import TOKEN_ENV, TOKEN_HEADER

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="srelab serve", description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1", help="loopback only (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="0 = pick a free port")
    p.add_argument("--device", choices=["auto", "cuda", "cpu"], default="auto")
    p.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="NAME[=VALUE]",
        help="inject a fault at start (repeatable); see serving.faults",
    )
    p.add_argument("--weights-mb", type=float, default=0.0, help="padding added to the checkpoint")
    p.add_argument(
        "--weights-path",
        default=None,
        help="keep the checkpoint here (written if missing); default: a file that "
        "exists only while loading",
    )
    p.add_argument("--model-name", default="srelab-tiny")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-model-len", type=int, default=1024)
    p.add_argument("--num-kv-blocks", type=int, default=256)
    p.add_argument("--block-size", type=int, default=16)
    p.add_argument("--max-num-seqs", type=int, default=32)
    p.add_argument(
        "--min-step-ms",
        type=float,
        default=0.0,
        help="each engine step takes at least this long (stand-in for GPU time)",
    )
    p.add_argument(
        "--shutdown-timeout",
        type=float,
        default=0.0,
        help="on SIGTERM: 0 = abort in-flight requests (vLLM's default), "
        ">0 = drain for up to this many seconds",
    )
    p.add_argument(
        "--sigterm-handler",
        default=None,
        help="abort | drain | module:function | pickle:BASE64 (gets a ShutdownContext)",
    )
    p.add_argument(
        "--stream-handler",
        default=None,
        help="module:function | pickle:BASE64: an async generator fn(handle) of TokenOutputs "
        "that every stream iterates; it must abort the request when its client leaves",
    )
    for endpoint in ("livez", "readyz"):
        p.add_argument(
            f"--{endpoint}-handler",
            default=None,
            help=f"module:function | pickle:BASE64: GET /{endpoint} answers 200 when "
            "fn(previous, current) is True, given Scrapes of this server's /metrics (own_probes)",
        )
    p.add_argument(
        "--setup",
        default=None,
        help="module:function | pickle:BASE64: fn(state) called once before serving; it may "
        "return a function app -> app that wraps the ASGI app",
    )
    p.add_argument(
        "--torch-threads", type=int, default=1, help="torch CPU threads (0: torch's default)"
    )
    p.add_argument(
        "--enable-prompt-tokens-details",
        action="store_true",
        help="as vLLM's flag: usage.prompt_tokens_details (cached_tokens: always 0 here)",
    )
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"], default="info")
    return p


def _admin_help(token: str | None) -> str:
    if token:
        return (
            f"admin: /admin/fault takes the token in {TOKEN_ENV} (this server's environment) "
            f"in the {TOKEN_HEADER} header, with Content-Type: application/json"
        )
    return (
        f"admin: /admin/fault is off; to switch it on, start the server with {TOKEN_ENV} set, "
        f'e.g. export {TOKEN_ENV}=$(python -c "import secrets; print(secrets.token_urlsafe(32))")'
        f", then send it in the {TOKEN_HEADER} header"
    )


def _exit_on_signal(signum, frame):
    raise SystemExit(128 + signum)


def _contain_learner_handlers(args) -> None:
    """A learner's handler (an exercise ref or a notebook function) runs contained: this
    process re-executes itself under `labsupport.contain` (same pid) before loading it."""
    from labsupport import contain, isolate
    from labsupport.serving.shutdown import decode_spec

    given = (args.sigterm_handler, args.stream_handler, args.livez_handler, args.readyz_handler,
             args.setup)  # fmt: skip
    specs = [s for s in given if s]
    if any(isolate.carries_learner_code(decode_spec(s)) for s in specs):
        limits = contain.Limits(memory_bytes=None if _on_gpu() else contain.DEFAULT_MEMORY_BYTES)
        contain.reexec_contained(
            [sys.executable, "-m", "labsupport.serving.serve_cli", *sys.argv[1:]], limits
        )


def _on_gpu() -> bool:
    from labsupport import device

    return device.nvidia_driver_present()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if argv is None:
        _contain_learner_handlers(args)
    if args.host not in LOOPBACK:
        print(
            f"error: --host {args.host}: this server binds loopback only ({', '.join(LOOPBACK)})",
            file=sys.stderr,
        )
        return 2
    # Until the server runs, SIGTERM exits at once, through `finally` blocks (no temp files left).
    signal.signal(signal.SIGTERM, _exit_on_signal)
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        return _run(args)
    except KeyboardInterrupt:
        return 130
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1


def _run(args) -> int:
    from labsupport.serving.faults import FaultController
    from labsupport.serving.own_probes import OwnProbes
    from labsupport.serving.shutdown import resolve_handler

    # Bad options fail before the slow imports and the weights load.
    try:
        faults = FaultController.from_specs(args.fault)
        handler = resolve_handler(args.sigterm_handler)
        stream_handler = resolve_handler(args.stream_handler)
        own_probes = OwnProbes(
            livez=resolve_handler(args.livez_handler), readyz=resolve_handler(args.readyz_handler)
        )
        setup = resolve_handler(args.setup)
    except (ValueError, ImportError, AttributeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.num_kv_blocks * args.block_size < args.max_model_len:
        print("error: the KV cache must hold at least one max-length request", file=sys.stderr)
        return 2

    import torch

    from labsupport.serving.engine import Engine, EngineConfig
    from labsupport.serving.kv_cache import PagedKVCache
    from labsupport.serving.model import ModelConfig, Tokenizer
    from labsupport.serving.state import ServerState
    from labsupport.serving.weights import ephemeral_checkpoint, load_model, persistent_checkpoint

    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu" and args.torch_threads > 0:
        torch.set_num_threads(args.torch_threads)

    cfg = ModelConfig(max_model_len=args.max_model_len)
    if args.weights_path:
        checkpoint = persistent_checkpoint(
            args.weights_path, cfg, seed=args.seed, weights_mb=args.weights_mb
        )
    else:
        checkpoint = ephemeral_checkpoint(cfg, seed=args.seed, weights_mb=args.weights_mb)
    with checkpoint as ckpt:
        model, padding, timings = load_model(ckpt.path, device)
        timings.generate_s = ckpt.generate_s
    kv = PagedKVCache(model.cfg, args.num_kv_blocks, args.block_size, device=device)
    engine_cfg = EngineConfig(
        num_blocks=args.num_kv_blocks,
        block_size=args.block_size,
        max_num_seqs=args.max_num_seqs,
        min_step_s=args.min_step_ms / 1000.0,
        seed=args.seed,
    )
    engine = Engine(model, kv, Tokenizer(cfg.vocab_size), engine_cfg, faults=faults)
    t0 = time.perf_counter()
    engine.warm_up()
    timings.warmup_s = time.perf_counter() - t0
    phases = timings.as_dict()
    if faults.is_active("slow_start"):
        print(
            f"slow_start: loaded, sleeping {faults.value('slow_start')} s before binding",
            flush=True,
        )
        time.sleep(faults.value("slow_start"))  # the fault: a start-up that takes this much longer
        phases["slow_start_s"] = faults.value("slow_start")
        phases["total_s"] += phases["slow_start_s"]
    print("startup " + json.dumps(phases), flush=True)

    token = os.environ.pop(TOKEN_ENV, "") or None  # children (handlers) need not see it
    print(_admin_help(token), flush=True)
    state = ServerState(
        engine,
        faults=faults,
        model_name=args.model_name,
        stream_handler=stream_handler,
        own_probes=own_probes,
        admin_token=token,
        prompt_tokens_details=args.enable_prompt_tokens_details,
    )
    state.resident = padding  # the padding "weights" stay resident, as weights do
    wrap_app = setup(state) if setup is not None else None
    # /metrics names phases, not faults: the slow_start sleep stands in for compilation
    state.metrics.startup_phases = {
        ("compile" if k == "slow_start_s" else k[:-2]): v
        for k, v in phases.items()
        if k.endswith("_s")
    }
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP; without
    # it a JSON response (headers, then body) waits ~40 ms for the client's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((args.host, args.port))
        except OSError as exc:
            print(f"error: cannot bind {args.host}:{args.port}: {exc}", file=sys.stderr)
            return 1
        asyncio.run(_serve(state, sock, args, handler, wrap_app))
    finally:
        sock.close()
        faults.shutdown()
        engine.stop()
    print("server stopped", flush=True)
    return 0


async def _serve(state, sock: socket.socket, args, handler, wrap_app=None) -> None:
    import uvicorn

    from labsupport.serving.server import create_app
    from labsupport.serving.shutdown import ShutdownController

    class _Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self):  # our ShutdownController owns SIGTERM and SIGINT
            yield

    app = create_app(state)
    config = uvicorn.Config(
        app if wrap_app is None else wrap_app(app),
        log_level=args.log_level,
        access_log=args.log_level == "debug",
        lifespan="off",
        timeout_graceful_shutdown=2,
    )
    server = _Server(config)
    loop = asyncio.get_running_loop()
    shutdown = ShutdownController(state, server, handler, args.shutdown_timeout)
    shutdown.install(loop)
    state.engine.start()

    async def announce() -> None:
        while not server.started:
            await asyncio.sleep(0.01)
        host, port = sock.getsockname()[:2]
        host = f"[{host}]" if ":" in host else host
        print(f"listening on http://{host}:{port}", flush=True)
        state.faults.attach_loop(loop)  # loop-bound faults start once the server is up

    announcer = loop.create_task(announce())
    try:
        await server.serve(sockets=[sock])
    finally:
        announcer.cancel()
        shutdown.uninstall(loop)
        state.faults.shutdown()
        state.engine.stop()


if __name__ == "__main__":
    code = main()
    # A stopped server leaves at once: finalizing an interpreter that loaded torch takes ~2 s
    # (torch's teardown), which a pod's grace period would otherwise have to cover. Everything
    # was closed above, and the server keeps nothing that a SIGKILL would leave behind.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
