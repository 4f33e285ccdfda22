"""Hints of lab 286, from a nudge to the mechanism (`hint("286", level, exercise)`).

    >>> from labsupport.scenarios.client_gone_gpu_still_busy.hints import HINTS
    >>> sorted(HINTS), [len(h) for h in HINTS.values()]
    (['diagnose', 'stream_outputs'], [3, 3])

The first hint of each exercise never names the cause.
"""

HINTS = {
    "diagnose": (
        "Follow the clients that left through each layer, between the two scrapes: what the "
        "gateway's log says about them, what the server counted, what the engine kept running "
        "and generating. Counters are cumulative: only their increase says anything about "
        "this round.",
        "clients_left is what the gateway saw (status 499). tokens_for_nobody is the increase "
        "of vllm:generation_tokens_total minus every token the gateway wrote to a client. For "
        "the layer: did srelab:client_disconnects_total grow by as many clients as left? Did "
        "the gateway read far more tokens from the server than it wrote to those clients? Did "
        "their requests end early, or at max_tokens?",
        "No 499 at all: 'nowhere'. The server counted fewer clients leaving than the gateway "
        "logged: 'gateway' (it kept reading their answers, so the server never knew). The "
        'server counted them all but no request ended with finished_reason="abort" '
        "(vllm:request_success_total): 'server'. Otherwise 'nowhere'.",
    ),
    "stream_outputs": (
        "What does this generator experience when nobody reads it any more, and what does the "
        "engine know about that?",
        "The server stops reading in one of two ways: it cancels the task that iterates the "
        "generator (asyncio.CancelledError at the `await` for the next output), or it closes "
        "the generator between two outputs (GeneratorExit at the `yield`). Both are "
        "BaseExceptions: `except Exception` catches neither.",
        "try: async for out in handle.stream(): yield out — except (asyncio.CancelledError, "
        "GeneratorExit): handle.abort(); raise. This is what vLLM's AsyncLLM.generate() does; "
        "the abort frees the request's KV blocks at the next engine step.",
    ),
}
