"""`srelab gateway`: the gateway as a real process on a loopback port.

    $ python -m labsupport.gateway.cli --port 0 --config pickle:BASE64
    listening on http://127.0.0.1:41877

The config is a pickled `GatewayConfig`, written by `launcher.gateway_subprocess` (never by a
learner). When it carries learner code (a routing policy from an exercise) the process
re-executes itself contained (`labsupport.contain`: same pid, the network shared, the files
read-only) before loading it. SIGTERM or SIGINT stops it: requests in flight are cut, the
upstream connections and the Redis client are closed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="srelab gateway", description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, default=0, help="0 = pick a free port")
    p.add_argument("--config", required=True, help="pickle:BASE64 of a GatewayConfig")
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"], default="warning")
    return p


def _contain_learner_code(spec: str) -> None:
    from labsupport import contain, isolate
    from labsupport.serving.shutdown import decode_spec

    if isolate.carries_learner_code(decode_spec(spec)):
        contain.reexec_contained(
            [sys.executable, "-m", "labsupport.gateway.cli", *sys.argv[1:]], contain.Limits()
        )


async def _serve(config, sock: socket.socket, log_level: str) -> None:
    import uvicorn

    from labsupport.gateway.app import create_app

    class _Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self):  # ours: SIGTERM ends the serve loop below
            yield

    app = create_app(config)
    state = app.state.gateway
    await state.start()
    server = _Server(uvicorn.Config(app, log_level=log_level, access_log=False, lifespan="off",
                                    timeout_graceful_shutdown=1))  # fmt: skip
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, setattr, server, "should_exit", True)

    async def announce() -> None:
        while not server.started:
            await asyncio.sleep(0.01)
        print(f"listening on http://127.0.0.1:{sock.getsockname()[1]}", flush=True)

    announcer = loop.create_task(announce())
    try:
        await server.serve(sockets=[sock])
    finally:
        announcer.cancel()
        await state.stop()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if argv is None:
        _contain_learner_code(args.config)
    from labsupport.serving.shutdown import decode_spec

    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    config = decode_spec(args.config)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", args.port))
        asyncio.run(_serve(config, sock, args.log_level))
    except Exception as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        sock.close()
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
