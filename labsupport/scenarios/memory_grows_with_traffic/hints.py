"""Lab 294's hints, from a nudge to the mechanism (`hint("294", level, exercise)`)."""

HINTS = {
    "explain_growth": (
        "Put the two sources side by side: the dashboard says after which requests memory "
        "stepped up, the log says what torch did while each request ran (the server writes "
        "'request N: ...' before it calls the model). What do the requests with a step have "
        "in common, and does every step come with a line from torch?",
        "Count 'Recompiling function' entries, not the guard failures listed under each. Every "
        "CUDA graph recorded keeps a private pool: count the requests after which reserved "
        "memory grew. If there are many more of those than recompiles, one graph with a "
        "dynamic size is recording a new CUDA graph per size. 'hit config.recompile_limit' "
        "marks the request from which new shapes run eagerly.",
        "cause: 'recordings' if graphs > recompiles + 1 else 'compiles'; dimension: 'batch' "
        "if batch sizes vary more than lengths ('size mismatch at index 0' is the batch); "
        "fallback_request: the last 'request N:' line before the recompile_limit warning, "
        "None without one; graph_mib: last reserved_mib - baseline_reserved_mib.",
    ),
    "capture_shapes": (
        "Every shape the compiled model meets costs a compile or a recording, and memory that "
        "stays. How few shapes can serve every request up to the server's limits, without "
        "making the model compute much more than it was asked?",
        "Only the dimension that varies needs several sizes; keep the other at its one value. "
        "Powers of two up to the maximum waste less than half of each request at worst.",
        "For the varying dimension: powers of two from the smallest seen size up, then the "
        "maximum itself; for a dimension with one value, that value; return every "
        "combination (5 to 7 shapes here).",
    ),
    "serve": (
        "The model must only ever see one of your shapes, and the caller must get exactly the "
        "logits it would have got from the model on its own request.",
        "Pick the smallest shape that holds the request, copy the request into the top-left "
        "corner of a zero tensor of that shape (new rows at the end, new positions after each "
        "prompt: causal attention never lets a real position see them), run the model, and "
        "cut the result back.",
        "fits = [s for s in shapes if s[0] >= b and s[1] >= n]; (B, N) = the smallest; "
        "padded = ids.new_zeros((B, N)); padded[:b, :n] = ids; return step(padded)[:b, :n].",
    ),
    "warm_up": (
        "Pay for every compile and recording before the first request arrives, then make "
        "sure that anything new later is an error you hear about, not a silent slowdown.",
        "Call the model once per shape with zeros on its device (next(step.parameters())."
        "device), three times over: a shape met before Dynamo made the size dynamic is "
        "recorded again by the dynamic graph, and on a GPU a new shape runs once before it is "
        "recorded. Then change torch.compile's stance.",
        "for _ in range(3): for (b, n) in shapes: step(torch.zeros((b, n), dtype=torch.long, "
        "device=device)); then torch.compiler.set_stance('fail_on_recompile').",
    ),
}
