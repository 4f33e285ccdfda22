"""Lab 280's hints, from a nudge to the mechanism (`hint("280", level, exercise)`)."""

HINTS = {
    "decode_reasons": (
        "The mask is a sum of powers of two, one per reason. NVML's documentation (and pynvml's "
        "nvmlClocksEventReason* constants, or labsupport.telemetry.reasons.TABLE) gives each "
        "bit's value and name.",
        "Test each documented bit with `mask & bit`, lowest first, and name it with DCGM's "
        "suffix (the part after DCGM_CLOCKS_EVENT_REASON_). A bit nobody documents still "
        "deserves a name: UNKNOWN_0x...",
        "[row.name for row in TABLE if mask & row.bit], then one UNKNOWN_0x%x for each set bit "
        "above 0x100.",
    ),
    "triage": (
        "Every GPU of the node shows a non-zero mask at some point. Which bits does a GPU show "
        "when nothing is wrong, at rest and at work? Read NVIDIA's description of each bit: "
        "which ones mean the clocks are being held down by heat or by the hardware?",
        "Idle GPUs report GPU_IDLE and GPUs at their power limit report SW_POWER_CAP: both are "
        "the card's normal power management. SW_THERMAL, HW_THERMAL, HW_SLOWDOWN and "
        "HW_POWER_BRAKE are not. A single scrape of HW_SLOWDOWN during a clock change is not an "
        "episode: look for problem bits that persist.",
        "Victim: the GPU with the most scrapes carrying a problem bit in runs of two or more "
        "scrapes. Cause: 'thermal' when SW_THERMAL or HW_THERMAL is among them, else 'power'. "
        "Clocks: the median SM clock of that GPU before its first problem scrape, and over its "
        "problem scrapes. Temperature: its highest reading.",
    ),
    "alert_rules": (
        "An alert that fires on every GPU is an alert nobody reads. Which readings of the card "
        "say its clocks are held down for a reason a human must fix, and for how long must they "
        "say it before it is worth a page?",
        "PromQL has no bitwise AND: test a bit with arithmetic, e.g. "
        "floor(DCGM_FI_DEV_CLOCKS_EVENT_REASONS / 8) % 2 == 1 for 0x8. Page on the thermal, "
        "HW slowdown and power brake bits, not on GPU_IDLE or SW_POWER_CAP; compare temperatures "
        "with the card's own DCGM_FI_DEV_* thresholds, never a fixed number; use `for:` to let "
        "a one-scrape blip pass, short enough to page within 3 minutes.",
        "One rule: (floor(DCGM_FI_DEV_CLOCKS_EVENT_REASONS / 8) % 2 == 1) or "
        "(floor(DCGM_FI_DEV_CLOCKS_EVENT_REASONS / 32) % 8 > 0), for: 1m, labels {severity: "
        "page}. The expression keeps the series' labels, gpu included.",
    ),
}
