"""Wrong submissions for lab 292 that must fail a check (see tests/cheats/corpus.py)."""

from tests.cheats.corpus import Cheat

HARD_CODED = """
def read_stack_dump(text):
    # what the default variant's dump showed once
    return {"tool": "py-spy", "function": "_byte_pair_merge", "request_step": "admit_prompt",
            "request_id": 20}
"""

PACKAGE_HELPER = """
from labsupport.scenarios.cpu_pegged_gpu_idle import incident, variant


def read_stack_dump(text):
    # the package's own schedule says which request is long and where it travels
    v = variant(0)
    big = next(r for r in incident.incident_requests(v) if r.role == "big")
    step = {"prompt": "admit_prompt", "stop": "encode_stop_sequences",
            "usage": "count_usage_tokens"}[v.path]
    tool = "faulthandler" if "Current thread" in text else "py-spy"
    return {"tool": tool, "function": "_byte_pair_merge", "request_step": step,
            "request_id": big.request_id if tool == "py-spy" else None}
"""

CAP_ONLY = """
def configure_frontend(server):
    cap = server.max_model_len * server.tokenizer.longest_token_chars
    tok = server.tokenizer

    async def tokenize(text):
        if len(text) > cap:
            server.reject("too long")
        return tok.encode(text)  # still on the loop

    server.tokenize = tokenize
"""

THREADS = """
import asyncio


def configure_frontend(server):
    cap = server.max_model_len * server.tokenizer.longest_token_chars
    tok = server.tokenizer

    async def tokenize(text):
        if len(text) > cap:
            server.reject("too long")
        return await asyncio.to_thread(tok.encode, text)  # the classic: "run it in a thread"

    server.tokenize = tokenize
"""

POOL_ONLY = """
import asyncio
import concurrent.futures
import multiprocessing


def configure_frontend(server):
    tok = server.tokenizer
    spawn = multiprocessing.get_context("spawn")
    pool = concurrent.futures.ProcessPoolExecutor(2, mp_context=spawn)
    server.on_shutdown(lambda: pool.shutdown(wait=True, cancel_futures=True))

    async def tokenize(text):  # no cap: the long text is tokenized, in a worker, then refused
        return await asyncio.get_running_loop().run_in_executor(pool, tok.encode, text)

    server.tokenize = tokenize
"""

AVERAGE_CAP = """
import asyncio
import concurrent.futures
import multiprocessing


def configure_frontend(server):
    tok = server.tokenizer
    cap = 4 * server.max_model_len  # "a token is about 4 characters"
    spawn = multiprocessing.get_context("spawn")
    pool = concurrent.futures.ProcessPoolExecutor(2, mp_context=spawn)
    server.on_shutdown(lambda: pool.shutdown(wait=True, cancel_futures=True))

    async def tokenize(text):
        if len(text) > cap:
            server.reject("too long")
        return await asyncio.get_running_loop().run_in_executor(pool, tok.encode, text)

    server.tokenize = tokenize
"""

FIXED_CAP = """
import asyncio
import concurrent.futures
import multiprocessing


def configure_frontend(server):
    tok = server.tokenizer
    spawn = multiprocessing.get_context("spawn")
    pool = concurrent.futures.ProcessPoolExecutor(2, mp_context=spawn)
    server.on_shutdown(lambda: pool.shutdown(wait=True, cancel_futures=True))

    async def tokenize(text):
        if len(text) > 6336:  # the default variant's cap, copied
            server.reject("too long")
        return await asyncio.get_running_loop().run_in_executor(pool, tok.encode, text)

    server.tokenize = tokenize
"""

DIAGNOSIS = ("test_diagnosis_reads_the_stuck_thread",)
LOOP = ("test_fix_keeps_the_loop_and_the_engine_running",)
REFUSE = ("test_fix_refuses_what_cannot_fit_and_serves_the_rest",)

CHEATS = [
    Cheat(292, "the default dump's reading, hard-coded", "hard-coded", (HARD_CODED,), DIAGNOSIS),
    Cheat(
        292,
        "the answer from the package's schedule",
        "package helper",
        (PACKAGE_HELPER,),
        DIAGNOSIS,
    ),  # fmt: skip
    Cheat(
        292, "a character cap, still tokenizing on the loop", "symptom hiding", (CAP_ONLY,), LOOP
    ),  # fmt: skip
    Cheat(
        292,
        "asyncio.to_thread for a tokenizer that holds the GIL",
        "debrief bypass",
        (THREADS,),
        LOOP,
    ),  # fmt: skip
    Cheat(292, "a process pool without a cap", "symptom hiding", (POOL_ONLY,), REFUSE),
    Cheat(292, "a cap of 4 characters per token", "debrief bypass", (AVERAGE_CAP,), REFUSE),
    Cheat(292, "the default variant's cap, copied", "hard-coded", (FIXED_CAP,), REFUSE),
]
