"""Hints for lab 290's exercises, from a nudge to the mechanism (`hint("290", level, name)`).

>>> from labsupport.scenarios.p99_spikes.hints import HINTS
>>> sorted(HINTS)
['after_warmup', 'explain_slow_requests']
"""

HINTS = {
    "explain_slow_requests": (
        "Line the slow requests up against each log on the same time axis: which log has an "
        "entry covering almost every slow request's wait, and which of those entries are only "
        "slow because something else happened inside them?",
        "A step's duration includes whatever ran inside it (the interpreter's work as well as "
        "the model's), and the step after a stall is slow too, catching up on the queue "
        "(look at its prefill_tokens). The engine's own callbacks in the asyncio log are its "
        "steps. Find the log whose entries start the stall, not the ones that inherit it.",
        "Attribute each slow request in order: a collection of 20 ms or more over its wait; "
        "else a slow callback of a task other than 'engine'; else a step of 20 ms or more. "
        "The cause is the most common attribution; count that log's stalls and the slow "
        "requests whose wait intersects one of them.",
    ),
    "after_warmup": (
        "Fix what your diagnosis found, on the server as it is: keep its state, its request "
        "log's durability and its settings' purpose; the check re-runs your variant.",
        "Collections: make them cheap for what lives for ever (gc has a call for exactly this; "
        "collect first). A blocking callback: keep the work, but not on the loop "
        "(asyncio.to_thread). A slow step: limit how much of one prompt a step may compute "
        "(server.scheduler).",
        "gc.collect(); gc.freeze() - or `async def f(log): await asyncio.to_thread(log.flush)` "
        "then server.flush_request_log = f - or "
        "server.scheduler.long_prefill_token_threshold = 512 (lowering max_num_batched_tokens "
        "alone does not help: the document's next chunk is scheduled first).",
    ),
}
