"""vLLM's `RemoteOpenAIServer` for our server: `srelab serve` in place of `vllm serve`.

The ported tests (see docs/peer_scope.md, vLLM section) start `srelab serve` through
`serve_subprocess` with vLLM's flags translated (`--max-model-len`, `--max-num-seqs`,
`--shutdown-timeout`, `--enable-prompt-tokens-details`); flags about dtypes, eager mode or GPU
memory have no meaning for the tiny CPU/GPU model and are dropped. The served model is
`srelab-tiny`, with a byte-level tokenizer: where vLLM's tests count a real tokenizer's
tokens, the ports count bytes (`tokenize`).

Every server the package needs starts at once, in parallel, the first time one is asked for
(`servers`): a server spends most of its start importing torch, and nine in a row would cost
more than the tests themselves. `shared` serves the modules that need no special flags; the
shutdown cases each get one of their own, since each ends its server.
"""

from __future__ import annotations

import concurrent.futures
import contextlib

import pytest

from labsupport.serving.launcher import serve_subprocess
from labsupport.serving.model import Tokenizer

from .openai_shim import AsyncOpenAI, OpenAI

MODEL_NAME = "srelab-tiny"
# vLLM's completion/basic/metrics modules: --max-model-len 2048/8192/1024, --max-num-seqs 128
SHARED_ARGS = ("--max-model-len", "2048", "--enable-prompt-tokens-details")


def tokenize(text: str) -> list[int]:
    return Tokenizer().encode(text)


def detokenize(ids: list[int]) -> str:
    return Tokenizer().decode(ids)


class RemoteOpenAIServer:
    """The part of vLLM's tests/utils.py RemoteOpenAIServer the ported tests use."""

    def __init__(self, srv):
        self.srv = srv
        self.proc = srv.proc
        self.url_root = srv.base_url

    def url_for(self, *parts: str) -> str:
        return "/".join([self.url_root, *parts])

    def get_client(self, timeout: float = 600.0) -> OpenAI:
        return OpenAI(base_url=self.url_for("v1"), timeout=timeout)

    def get_async_client(self, timeout: float = 600.0) -> AsyncOpenAI:
        return AsyncOpenAI(base_url=self.url_for("v1"), timeout=timeout)


@contextlib.contextmanager
def remote_server(*args: str, stop_timeout_s: float = 10.0):
    with serve_subprocess(*args, stop_timeout_s=stop_timeout_s) as srv:
        yield RemoteOpenAIServer(srv)


SHUTDOWN_BASE = ("--max-model-len", "256", "--max-num-seqs", "4")  # vLLM's test_shutdown.py
SERVERS = {
    "shared": SHARED_ARGS,
    "dead": ("--fault", "no_input_validation"),  # its engine is killed on purpose
    **{
        name: (*SHUTDOWN_BASE, "--shutdown-timeout", timeout)
        for name, timeout in [("failure", "0"), ("drain", "30"), ("reject", "30"),
                              ("abort_0", "0"), ("abort_2", "0"), ("short", "3"),
                              ("inflight", "0")]
    },
}  # fmt: skip


@pytest.fixture(scope="package")
def servers():
    def start(args):
        cm = remote_server(*args)
        return cm, cm.__enter__()

    with contextlib.ExitStack() as stack:
        with concurrent.futures.ThreadPoolExecutor(len(SERVERS)) as pool:
            started = {name: pool.submit(start, args) for name, args in SERVERS.items()}
        remotes = {}
        for name, future in started.items():
            if future.exception() is None:
                cm, remotes[name] = future.result()
                stack.push(cm.__exit__)
        for future in started.values():
            future.result()  # a server that did not start fails the tests, after cleanup
        yield remotes


@pytest.fixture
def server(servers):
    return servers["shared"]


@pytest.fixture
def client(server):
    c = server.get_client()
    yield c
    c.close()
