"""Hints of lab 291, from a nudge to the mechanism (`hint("291", level, exercise)`).

    >>> from labsupport.scenarios.api_key_abuse.hints import HINTS
    >>> sorted(HINTS), [len(h) for h in HINTS.values()]
    (['admit_script', 'find_heavy_key', 'settle_script'], [3, 3, 3])

The first hint of each exercise never names the cause.
"""

HINTS = {
    "find_heavy_key": (
        "Every key is within its plan as the gateway counts. Look at what each key's requests "
        "cost the engine rather than how many there are: the tokens it generated for them, "
        "and how many of them were being served at the same moment.",
        "token_share: sum completion_tokens of the key's responses over everyone's. "
        "peak_streams: sort the key's 200s' start and end times into one list of events "
        "(+1 at a start, -1 at an end, ends first when times tie) and keep the running "
        "maximum. The key with the most requests is not necessarily the one that hurts.",
        "key = the largest token_share. how = 'streams' when its peak_streams is at least 5 "
        "times the largest peak of any other key, else 'max_tokens' (a few requests, each "
        "asking for nearly the whole context: each holds KV cache for its whole answer).",
    ),
    "admit_script": (
        "The deployed script already keeps one refilling bucket per key. What else does a "
        "request consume on the engine while it is served, and for how long?",
        "Keep a second bucket for tokens (tpm, charged the request's whole possible cost at "
        "admission, since the answer's length is unknown until it ends) and two counters for "
        "responses in flight (KEYS[3] for the key, KEYS[4] for everyone). Decide on all four "
        "first, then charge all four: a refused request must change nothing.",
        "level(key, size) = min(size, saved + (now - at) * size / 60000), saved defaulting to "
        "size. Refuse when requests < 1, tokens < cost, streams >= max_streams or everyone >= "
        "max_global; retry_after_ms = the longest bucket wait ((1 - requests) * 60000 / rpm, "
        "(cost - tokens) * 60000 / tpm), at least 1000 when a stream limit refused. Otherwise "
        "HSET both buckets (level minus the charge, at = now), INCR both counters.",
    ),
    "settle_script": (
        "The request is over: what did admit take that the request did not use, and what "
        "does it hold that it no longer needs?",
        "Give back tokens - used (ARGV[6] - ARGV[7]) to the key's token bucket, refilled up "
        "to now first and never above tpm; and decrement both in-flight counters (never "
        "below zero).",
        "Read the token bucket as admit does, level = min(tpm, level + max(0, reserved - "
        "used)), HSET level and at = now, then DECR KEYS[3] and KEYS[4] if they are above 0.",
    ),
}
