"""Lab 296's hints, from a nudge to the mechanism (`hint("296", level, exercise)`)."""

HINTS = {
    "achieved_gbps": (
        "Bandwidth is bytes moved per second. Which bytes did this workload move, and in which "
        "unit do memory datasheets count a GB?",
        "Count both directions: a copy reads every byte once and writes it once. Datasheets and "
        "nvidia-smi count decimal GB (1e9 bytes), not GiB.",
        "(run['bytes_read'] + run['bytes_written']) / run['seconds'] / 1e9",
    ),
    "diagnose": (
        "A step is limited by whatever it uses close to the most this machine can give. What is "
        "the most, measured here, for moving bytes, and for arithmetic? How close does "
        "llm-serve's step come to each?",
        "The measured bandwidth peak is the best achieved GB/s of the streaming copies (copy-*), "
        "the measured arithmetic peak the GEMM's FLOP/s. Divide the step's GB/s and FLOP/s by "
        "them. Utilisation readings say how much of the time something was busy, not how much "
        "of the bandwidth it used: leave them out.",
        "share_bw = step GB/s / max copy GB/s; share_flops = step FLOP/s / gemm FLOP/s; "
        "'memory bandwidth' if share_bw >= 0.5, else 'compute' if share_flops >= 0.5, else "
        "'overhead' (the time goes to calls, launches, Python: neither resource is near its "
        "limit).",
    ),
    "bandwidth_alert_rules": (
        "In the H100 table, which reading follows the bandwidth the copies achieved, and which "
        "reads 100 % before the memory is at its limit? Alert on the one that measures bytes, "
        "not time.",
        "DCGM_FI_PROF_DRAM_ACTIVE is the ratio of cycles the DRAM interface moves data (on "
        "Hopper, GPM's DRAM bandwidth utilisation): 0.90 when the copies moved 3017 of the "
        "theoretical 3352 GB/s, the most a copy reaches. DCGM_FI_DEV_MEM_COPY_UTIL and "
        "DCGM_FI_DEV_GPU_UTIL are shares of time.",
        "- alert: MemoryBandwidthSaturated, expr: DCGM_FI_PROF_DRAM_ACTIVE > 0.75 (about 80 % "
        "of the ceiling measured on the card), for: 5m (a 90 s model load must not page), "
        "labels: {severity: page}.",
    ),
}
