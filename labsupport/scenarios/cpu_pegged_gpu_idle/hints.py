"""Hints for lab 292's exercises, from a nudge to the mechanism (`hint("292", level, name)`).

>>> from labsupport.scenarios.cpu_pegged_gpu_idle.hints import HINTS
>>> sorted(HINTS)
['configure_frontend', 'read_stack_dump']
"""

HINTS = {
    "read_stack_dump": (
        "Find the one thread that is running; the others are parked in a wait. Then read its "
        "stack from the innermost frame outwards until you reach the request handler.",
        "py-spy prints 'Thread N (active+gil): \"name\"' for the thread on the CPU, then one "
        "frame per line, innermost first, 'function (file:line)', with 'Locals:' under a frame "
        "when --locals was given. faulthandler prints 'Current thread 0x...' for it, innermost "
        "first too, 'File \"...\", line N in function', and no locals.",
        "function: the busy thread's first frame, without 'Class.'; request_step: the frame "
        "printed just before handle_completion's; request_id: the 'request_id: N' line under "
        "handle_completion's frame (None in a faulthandler dump).",
    ),
    "configure_frontend": (
        "Two things went wrong at once: the work is expensive for some texts, and it runs "
        "where it stops everything else. Fix both, without refusing prompts that fit.",
        "A prompt of N characters needs at least N / (the longest token's characters) tokens: "
        "above server.max_model_len x that, refuse with server.reject(...) before tokenizing. "
        "Tokenize the rest somewhere other than the event loop - and not a thread: this "
        "tokenizer is Python and holds the interpreter lock.",
        "pool = concurrent.futures.ProcessPoolExecutor(2); server.on_shutdown(pool.shutdown); "
        "async def tokenize(text): check the length, then "
        "`return await asyncio.get_running_loop().run_in_executor(pool, tok.encode, text)`; "
        "server.tokenize = tokenize (the tokenizer pickles as its vocabulary).",
    ),
}
