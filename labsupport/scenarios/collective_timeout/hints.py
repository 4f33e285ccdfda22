"""Lab 297's hints, from a nudge to the mechanism (`hint("297", level, exercise)`)."""

HINTS = {
    "first_unfinished": (
        "Line the ranks up by collective_seq_id. Up to some number every rank ran the same "
        "collective and it finished everywhere. What is each rank doing at the first number "
        "where that stops being true - and what should it be doing there?",
        "Collectives match by their order on each rank, not by name. At the first sequence "
        "number not finished on every rank, the program runs whatever followed the previous "
        "collective in every earlier step. The rank whose entry there is another collective, "
        "or that has no entry at all, broke the order; if every rank entered it, name None.",
        "Parse each entry: seq = collective_seq_id, op = profiling_name after the ':', sizes = "
        "input_sizes, finished = retired or state == 'completed'. Start at the largest first "
        "seq any rank still holds; advance while every rank has a finished entry. Build "
        "'(op, sizes) -> the (op, sizes) at the next seq' from that agreed history; the "
        "expected op at seq is the successor of seq - 1. Return that op, that seq, and the "
        "first rank whose entry is missing or differs.",
    ),
    "decode_step": (
        "Read production's decode_step (job.decode_step) with the dumps beside it: which "
        "lines decide, on one rank only, whether that rank takes part in a collective?",
        "Every rank must call broadcast, all_reduce and all_gather in every step, in that "
        "order, whatever its own state. A rank that has nothing of its own still takes part, "
        "with a value that changes nothing: zeros added to a sum, FINISHED tokens in a gather, "
        "and every rank receives rank 0's batch.",
        "tokens = work.tokens on rank 0, else an empty int64 tensor of work.batch_shape; "
        "broadcast it from 0. hidden = work.expert_output(tokens) or zeros(work.hidden_shape); "
        "all_reduce it. mine = work.sample(hidden) if work.has_live_requests else a "
        "work.out_shape tensor full of job.FINISHED; all_gather it into world_size parts; "
        "return {'tokens': tokens, 'hidden': hidden, 'out': torch.cat(parts)}.",
    ),
    "job_settings": (
        "Two questions: how long can a healthy rank legitimately wait in a collective, and "
        "when this job stops again, what should it leave behind?",
        "Size the collective timeout from the slowest healthy wait with a margin (not from "
        "the 10 or 30 minute default, and not so short that a checkpoint trips it), and turn "
        "on the flight recorder with a dump on timeout so the ranks report what they ran.",
        "{'timeout_s': 3 * slowest_wait_s, 'env': {'TORCH_FR_BUFFER_SIZE': '2000', "
        "'TORCH_NCCL_DUMP_ON_TIMEOUT': '1'}}: between 1.5x and 5x the wait, a buffer of a few "
        "steps or more, no TORCH_DISTRIBUTED_DEBUG=DETAIL and no interface settings.",
    ),
}
