"""Wrong submissions for lab 296 (memory bandwidth nobody sees) that must fail a check they target.

Each is the solution with one exercise replaced: arithmetic that counts the wrong bytes or the
wrong peak, diagnoses read from the default run, the package or the utilisation readings, and
alerts that watch a utilisation, never fire, fire on everything or lose the gpu label.
"""

from tests.cheats.corpus import Cheat

GBPS = ("test_achieved_gbps_counts_bytes_read_and_written",)
BOUND = ("test_diagnosis_names_what_bounds_the_step_with_measured_shares",)
GAUGE = ("test_bandwidth_alert_watches_the_bandwidth_gauge",)
PAGES = ("test_bandwidth_alert_pages_when_memory_stays_at_its_ceiling",)
QUIET = ("test_bandwidth_alert_stays_quiet_on_gemm_copies_rest_and_loads",)


def _rule(expr: str, for_: str | None = "5m") -> tuple[str, ...]:
    body = f"  - alert: MemoryBandwidthSaturated\n    expr: {expr}\n"
    body += (f"    for: {for_}\n" if for_ else "") + "    labels: {severity: page}\n"
    return (
        'def bandwidth_alert_rules():\n    return """\\\ngroups:\n- name: bw\n  rules:\n'
        + body
        + '"""\n',
    )


def _diagnose(body: str) -> tuple[str, ...]:
    return ("_solution_diagnose = diagnose\n\n\ndef diagnose(evidence):\n" + body,)


CHEATS = [
    Cheat(
        296,
        "achieved bandwidth: the default run's copy peak, hard-coded",
        "hard-coded",
        ("def achieved_gbps(run):\n    return 8.33\n",),
        GBPS,
    ),
    Cheat(
        296,
        "diagnosis: the default run's answer, hard-coded",
        "hard-coded",
        _diagnose(
            "    return {'bound': 'memory bandwidth', 'achieved_gbps': 5.42, "
            "'share_of_peak_bandwidth': 0.65, 'share_of_peak_flops': 0.04}\n"
        ),
        BOUND,
    ),
    Cheat(
        296,
        "diagnosis: the bound read from the package's variant",
        "package helper",
        _diagnose(
            "    from labsupport.scenarios import bandwidth_blind_spot as sc\n\n"
            "    found = dict(_solution_diagnose(evidence))\n"
            "    found['bound'] = {'weights': 'memory bandwidth', 'batch': 'compute', "
            "'blocks': 'overhead'}[sc.variant(0).step]\n"
            "    return found\n"
        ),
        BOUND,
    ),
    Cheat(
        296,
        "diagnosis: the reference answer imported from the checks' truth module",
        "package helper",
        _diagnose(
            "    from tests.labs.truth import bandwidth_blind_spot as t\n\n"
            "    return t.diagnose(evidence)\n"
        ),
        BOUND,
    ),
    Cheat(
        296,
        "alert: the gauge at 0.95, which the card's copies never reach",
        "symptom hiding",
        _rule("DCGM_FI_PROF_DRAM_ACTIVE > 0.95"),
        PAGES,
    ),
    Cheat(
        296,
        "alert: the gauge, held for two hours",
        "symptom hiding",
        _rule("DCGM_FI_PROF_DRAM_ACTIVE > 0.72", for_="2h"),
        PAGES,
    ),
    Cheat(
        296,
        "alert: one pool-wide alert, the gpu label aggregated away",
        "symptom hiding",
        _rule("max by (hostname) (DCGM_FI_PROF_DRAM_ACTIVE) > 0.72"),
        QUIET,
    ),
    Cheat(
        296,
        "alert: the gauge with no `for:`, so every model load pages",
        "symptom hiding",
        _rule("DCGM_FI_PROF_DRAM_ACTIVE > 0.72", for_=None),
        QUIET,
    ),
    Cheat(
        296,
        "alert: the classic DCGM_FI_DEV_MEM_COPY_UTIL > 90",
        "debrief bypass",
        _rule("DCGM_FI_DEV_MEM_COPY_UTIL > 90"),
        GAUGE,
    ),
    Cheat(
        296,
        "alert: GPU utilisation as the saturation signal",
        "debrief bypass",
        _rule("DCGM_FI_DEV_GPU_UTIL > 90"),
        GAUGE,
    ),
    Cheat(
        296,
        "alert: the gauge at a low threshold that a GEMM crosses",
        "debrief bypass",
        _rule("DCGM_FI_PROF_DRAM_ACTIVE > 0.2"),
        QUIET,
    ),
    Cheat(
        296,
        "achieved bandwidth: only the bytes read",
        "debrief bypass",
        ("def achieved_gbps(run):\n    return run['bytes_read'] / run['seconds'] / 1e9\n",),
        GBPS,
    ),
    Cheat(
        296,
        "diagnosis: the utilisation readings taken for bandwidth",
        "debrief bypass",
        _diagnose(
            "    found = dict(_solution_diagnose(evidence))\n"
            "    busy = max(evidence['runs']['llm-serve step']['readings'].values())\n"
            "    found['bound'] = 'memory bandwidth' if busy >= 90 else 'overhead'\n"
            "    return found\n"
        ),
        BOUND,
    ),
    Cheat(
        296,
        "diagnosis: shares of the H100 datasheet's 3352 GB/s, not of the measured peak",
        "debrief bypass",
        _diagnose(
            "    found = dict(_solution_diagnose(evidence))\n"
            "    found['share_of_peak_bandwidth'] = found['achieved_gbps'] / 3352.0\n"
            "    return found\n"
        ),
        BOUND,
    ),
]
