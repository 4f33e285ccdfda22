"""Lab 285's hints, from a nudge to the mechanism (`hint("285", level, exercise)`)."""

HINTS = {
    "rerun_env": (
        "Read the whole error message the server logged, not only its first line: it says "
        "why the traceback may point at the wrong place, and what to do about it.",
        "A GPU runs kernels after the Python call that launched them has returned; an error "
        "inside one reaches Python at a later call. One environment variable makes every "
        "launch wait for its kernel.",
        'Return {"CUDA_LAUNCH_BLOCKING": "1"}: every kernel launch then blocks, so the call '
        "that launched the failing kernel raises, and the traceback names its line.",
    ),
    "diagnose": (
        "Start from the rerun's traceback: the innermost frame in labsupport/serving/ is the "
        "engine's line that failed. Which request field does that line read?",
        "Compare every id in that field of each request of the batch with the model's "
        "vocab_size (its config, not the tokenizer's): the one outside [0, vocab_size) is the "
        "id, its request the culprit. Then look at what happened to the next request in the "
        "same process.",
        "op: the text of the innermost 'File .../labsupport/serving/...' frame's source line "
        "(the line under it in the traceback). The model's embedding reads the prompt ids, "
        "the sampler's masks read allowed_token_ids and stop_token_ids (with min_tokens); a "
        "failed device-side assertion leaves the process unable to run anything on the "
        "device (recoverable False); an IndexError raised on the host does not.",
    ),
    "check_request": (
        "Which fields of a completion request carry token ids, and what range can the model take?",
        "prompt (a list of ids, or a list of such lists; strings are fine), stop_token_ids, "
        "allowed_token_ids and the keys of logit_bias (strings of ints). Each must be in "
        "[0, vocab_size), where vocab_size is the model's, not the tokenizer's.",
        'Return None when all are in range; else {"error": {"message": "token id 515 in '
        'prompt is out of vocabulary (vocab_size 512)", "type": "BadRequestError", "param": '
        '"prompt", "code": 400}}, naming the id and the field.',
    ),
    "device_alive": (
        "What does the broken server still do well, and what can it no longer do at all? "
        "Ask it to do the latter, cheaply.",
        "Run a tiny computation on `device` and read its result back to the host (a sync): "
        "in a poisoned process that raises. Do not catch the error and answer True anyway.",
        "try: x = torch.ones(4, device=device); return float((x * 2).sum().item()) == 8.0; "
        "except RuntimeError: return False. It must be cheap (microseconds): it runs on the "
        "server's own thread at every probe.",
    ),
}
