"""Hints of lab 276, from a nudge to the mechanism; the first never names the cause."""

HINTS = {
    "largest_free_block_mib": (
        "A tensor needs one piece of memory with no gap in it. Walk each segment's blocks in "
        "address order and ask which pieces could serve one request together.",
        "Only 'inactive' blocks are free now; 'active_pending_free' ones still wait for another "
        "stream. Neighbouring inactive blocks of one segment add up; anything else ends the run.",
        "Two segments are two cudaMalloc calls: a run never continues into the next segment, "
        "even when the addresses touch. Return the longest run, in MiB (bytes / 2**20).",
    ),
    "reserved_unallocated_mib": (
        "The OOM message prints this number; the snapshot lets you compute it for any moment.",
        "Reserved is every byte of every segment ('total_size'); allocated is what tensors hold "
        "right now.",
        "A block freed but still pending is no longer allocated: count only 'active_allocated' "
        "blocks, by their 'size' (not 'requested_size'), as allocated.",
    ),
    "diagnose": (
        "A request can be refused by two different limits: this process's budget, or the card "
        "itself. Find out how far each one was from the request.",
        "budget_left = the budget minus what this process reserved; card_free = what the card "
        "had left (evidence['card'] or the message's 'of which ... is free'). Compare each with "
        "the request, and the largest free block with it too.",
        "If the budget was the limit while the process held enough unused memory in pieces "
        "too small, the cause is 'allocator'. If the budget still had room but the card did "
        "not, the cause is 'card'.",
    ),
    "deployment": (
        "Change only what refused the request, and check your change against the numbers "
        "you returned from diagnose().",
        "For the allocator: the setting the OOM message recommends, in the worker's "
        "environment. For the card: the other process's share, so that both budgets fit.",
        "expandable_segments:True under PYTORCH_ALLOC_CONF, server utilization unchanged; or "
        "server utilization u with u x card >= the server's needs and u x card + the worker's "
        "budget + its CUDA context <= the card, worker environment unchanged.",
    ),
}
