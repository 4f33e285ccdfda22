"""Wrong submissions for lab 286 (clients leave, the GPU keeps generating) that must fail.

Each is the solution with one exercise replaced. The diagnosis cheats fail on written evidence
(no workload); the handler cheats fail a probe of the real engine (one contained process per
cheat), and the ones that could look right there fail in the real server.
"""

from tests.cheats.corpus import Cheat

WRITTEN = "test_diagnosis_on_written_evidence"
ROUNDS = "test_diagnosis_on_this_runs_rounds"
CANCELLED = "test_fix_when_the_task_is_cancelled"
CLOSED = "test_fix_when_the_generator_is_closed"
STAYS = "test_fix_streams_everything_to_a_client_that_stays"
SERVER = "test_fix_on_the_real_server"


def _handler(body: str) -> tuple[str, ...]:
    return ("import asyncio\n\n\nasync def stream_outputs(handle):\n" + body,)


CHEATS = [
    Cheat(
        286,
        "the default incident's answer, typed in",
        "hard-coded",
        (
            "def diagnose(metrics_before, metrics_after, gateway_log):\n"
            "    return {'lost_at': 'server', 'clients_left': 9, 'tokens_for_nobody': 1980}\n",
        ),
        (WRITTEN, ROUNDS),
    ),
    Cheat(
        286,
        "the right numbers, always the same layer",
        "hard-coded",
        (
            "from labsupport.serving.metrics import metric_value\n\n\n"
            "def diagnose(metrics_before, metrics_after, gateway_log):\n"
            "    gained = (metric_value(metrics_after, 'vllm:generation_tokens_total') or 0) - (\n"
            "        metric_value(metrics_before, 'vllm:generation_tokens_total') or 0)\n"
            "    sent = sum(e['tokens_to_client'] for e in gateway_log)\n"
            "    left = sum(e['status'] == 499 for e in gateway_log)\n"
            "    return {'lost_at': 'server' if left else 'nowhere', 'clients_left': left,\n"
            "            'tokens_for_nobody': round(gained - sent)}\n",
        ),
        (WRITTEN, ROUNDS),
    ),
    Cheat(
        286,
        "the server's own counters, read through the package's Round",
        "package helper",
        (
            "from labsupport.scenarios.client_gone_gpu_still_busy.rounds import Round, Workload\n"
            "\n\n"
            "def diagnose(metrics_before, metrics_after, gateway_log):\n"
            "    r = Round('x', 'cpu', Workload(), '', metrics_before, metrics_after,\n"
            "              metrics_after, gateway_log, [], [], 0.0, 0.0)\n"
            "    wasted = int(r.delta('srelab:wasted_decode_steps_total'))\n"
            "    left = int(r.delta('srelab:client_disconnects_total'))\n"
            "    return {'lost_at': 'server' if wasted > left else 'nowhere',\n"
            "            'clients_left': left, 'tokens_for_nobody': wasted}\n",
        ),
        (WRITTEN, ROUNDS),
    ),
    Cheat(
        286,
        "a handler that ends quietly when the client leaves (no disconnect, no waste counted)",
        "symptom hiding",
        _handler(
            "    try:\n"
            "        async for out in handle.stream():\n"
            "            yield out\n"
            "    except (asyncio.CancelledError, GeneratorExit):\n"
            "        return\n"
        ),
        (CANCELLED, CLOSED, SERVER),
    ),
    Cheat(
        286,
        "every request cut after 48 tokens, whoever reads it",
        "symptom hiding",
        _handler(
            "    n = 0\n"
            "    try:\n"
            "        async for out in handle.stream():\n"
            "            yield out\n"
            "            n += 1\n"
            "            if n >= 48:\n"
            "                handle.abort()\n"
            "    except (asyncio.CancelledError, GeneratorExit):\n"
            "        handle.abort()\n"
            "        raise\n"
        ),
        (STAYS, SERVER),
    ),
    Cheat(
        286,
        "the engine's work ended a while after the client left",
        "symptom hiding",
        _handler(
            "    try:\n"
            "        async for out in handle.stream():\n"
            "            yield out\n"
            "    except (asyncio.CancelledError, GeneratorExit):\n"
            "        await asyncio.sleep(0.4)\n"
            "        handle.abort()\n"
            "        raise\n"
        ),
        (CANCELLED, CLOSED, SERVER),
    ),
    Cheat(
        286,
        "except Exception (misses CancelledError and GeneratorExit)",
        "debrief bypass",
        _handler(
            "    try:\n"
            "        async for out in handle.stream():\n"
            "            yield out\n"
            "    except Exception:\n"
            "        handle.abort()\n"
            "        raise\n"
        ),
        (CANCELLED, CLOSED, SERVER),
    ),
    Cheat(
        286,
        "only CancelledError caught (the GeneratorExit path forgotten)",
        "debrief bypass",
        _handler(
            "    try:\n"
            "        async for out in handle.stream():\n"
            "            yield out\n"
            "    except asyncio.CancelledError:\n"
            "        handle.abort()\n"
            "        raise\n"
        ),
        (CLOSED, SERVER),
    ),
    Cheat(
        286,
        "a relay task in between that keeps reading the engine (a proxy inside the handler)",
        "debrief bypass",
        _handler(
            "    queue = asyncio.Queue()\n"
            "\n"
            "    async def relay():\n"
            "        async for out in handle.stream():\n"
            "            await queue.put(out)\n"
            "\n"
            "    task = asyncio.ensure_future(relay())\n"
            "    try:\n"
            "        while True:\n"
            "            out = await queue.get()\n"
            "            yield out\n"
            "            if out.finished:\n"
            "                return\n"
            "    except (asyncio.CancelledError, GeneratorExit):\n"
            "        raise  # the relay task outlives the request and reads on\n"
        ),
        (CANCELLED, CLOSED, SERVER),
    ),
]
