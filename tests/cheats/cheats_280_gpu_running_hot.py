"""Wrong submissions for lab 280 (GPU running hot) that must fail a check they target.

Each is the solution with one exercise replaced: diagnoses that read the default node, the
package or a shortcut instead of the bits, and rule files that page on the wrong readings, too
late, without the gpu label, or never.
"""

from tests.cheats.corpus import Cheat

DECODE = ("test_decode_reasons_names_every_set_bit",)
WHO = ("test_triage_names_the_gpu_and_the_cause",)
NUMBERS = ("test_triage_backs_it_with_this_nodes_numbers",)
PAGES = ("test_alert_rules_page_on_every_slowdown",)
QUIET = ("test_alert_rules_stay_quiet_on_healthy_gpus",)
VALID = ("test_alert_rules_are_a_valid_rule_file",)


def _rules(*rules: str) -> tuple[str, ...]:
    body = "".join(rules)
    return (
        'def alert_rules():\n    return """\\\ngroups:\n- name: gpu\n  rules:\n' + body + '"""\n',
    )


def _rule(expr: str, for_: str | None = "1m") -> str:
    out = f"  - alert: GPUSlow\n    expr: {expr}\n"
    return out + (f"    for: {for_}\n" if for_ else "") + "    labels: {severity: page}\n"


BITS = (
    "(floor(DCGM_FI_DEV_CLOCKS_EVENT_REASONS / 8) % 2 == 1) or "
    "(floor(DCGM_FI_DEV_CLOCKS_EVENT_REASONS / 32) % 8 > 0)"
)

CHEATS = [
    Cheat(
        280,
        "triage: the default node's answer, hard-coded",
        "hard-coded",
        (
            "def triage(evidence):\n"
            "    return {'gpu': '4', 'cause': 'power', 'problem_bits': ['HW_SLOWDOWN', "
            "'HW_POWER_BRAKE'], 'normal_bits': ['GPU_IDLE', 'SW_POWER_CAP'], "
            "'sm_clock_mhz_before': 1350.0, 'sm_clock_mhz_during': 550.0, 'max_temp_c': 77.0}\n",
        ),
        WHO + NUMBERS,
    ),
    Cheat(
        280,
        "alert rules: the default node's slowed GPU, by its gpu label",
        "hard-coded",
        _rules(_rule('DCGM_FI_DEV_CLOCKS_EVENT_REASONS{gpu="4"} > 4')),
        PAGES,
    ),
    Cheat(
        280,
        "alert rules: the bits, and the H100's 87 C written as a number",
        "hard-coded",
        _rules(_rule(BITS), _rule("DCGM_FI_DEV_GPU_TEMP >= 87").replace("GPUSlow", "GPUHot")),
        QUIET,
    ),
    Cheat(
        280,
        "triage: the slowed GPU read from the package's variant, not from the evidence",
        "package helper",
        (
            "_solution_triage = triage\n\n\n"
            "def triage(evidence):\n"
            "    from labsupport.scenarios import gpu_running_hot as sc\n\n"
            "    v = sc.variant(0)\n"
            "    answer = dict(_solution_triage(evidence))\n"
            "    answer['gpu'] = str(v.spec.event.gpu)\n"
            "    return answer\n",
        ),
        WHO,
    ),
    Cheat(
        280,
        "triage: the reference answer imported from the checks' truth module",
        "package helper",
        (
            "def triage(evidence):\n"
            "    from tests.labs.truth import gpu_running_hot as t\n\n"
            "    return t.triage(evidence)\n",
        ),
        WHO,
    ),
    Cheat(
        280,
        "decode: the package's table, highest bit first and no unknown bits",
        "package helper",
        (
            "from labsupport.telemetry.reasons import TABLE\n\n\n"
            "def decode_reasons(mask):\n"
            "    return [r.name for r in reversed(TABLE) if int(mask) & r.bit]\n",
        ),
        DECODE,
    ),
    Cheat(
        280,
        "alert rules: right bits, but `for: 30m` so nothing ever pages in time",
        "symptom hiding",
        _rules(_rule(BITS, for_="30m")),
        PAGES,
    ),
    Cheat(
        280,
        "alert rules: an alert that can never fire",
        "symptom hiding",
        _rules(_rule("vector(0) > 1")),
        PAGES,
    ),
    Cheat(
        280,
        "alert rules: one node-wide alert, the gpu label aggregated away",
        "symptom hiding",
        _rules(_rule("max by (hostname) (floor(DCGM_FI_DEV_CLOCKS_EVENT_REASONS / 8) % 32) > 0")),
        QUIET,
    ),
    Cheat(
        280,
        "alert rules: the classic `reasons > 0` and `temperature > 82`",
        "debrief bypass",
        _rules(
            _rule("DCGM_FI_DEV_CLOCKS_EVENT_REASONS > 0", for_=None),
            _rule("DCGM_FI_DEV_GPU_TEMP > 82", for_=None).replace("GPUSlow", "GPUTooHot"),
        ),
        QUIET,
    ),
    Cheat(
        280,
        "alert rules: a temperature threshold against the card's own limit, and nothing else",
        "debrief bypass",
        _rules(_rule("DCGM_FI_DEV_GPU_TEMP >= DCGM_FI_DEV_GPU_MAX_OP_TEMP")),
        PAGES,
    ),
    Cheat(
        280,
        "alert rules: the thermal violation counter alone",
        "debrief bypass",
        _rules(_rule("rate(DCGM_FI_DEV_THERMAL_VIOLATION[2m]) > 0")),
        PAGES,
    ),
    Cheat(
        280,
        "alert rules: exact masks (== 8, == 32, == 64, == 128) instead of bit tests",
        "debrief bypass",
        _rules(
            _rule(
                "DCGM_FI_DEV_CLOCKS_EVENT_REASONS == 8 or DCGM_FI_DEV_CLOCKS_EVENT_REASONS == 32"
                " or DCGM_FI_DEV_CLOCKS_EVENT_REASONS == 64 or DCGM_FI_DEV_CLOCKS_EVENT_REASONS"
                " == 128"
            )
        ),
        PAGES,
    ),
    Cheat(
        280,
        "alert rules: the right bits with no `for:`, so a one-scrape blip pages",
        "debrief bypass",
        _rules(_rule(BITS, for_=None)),
        QUIET,
    ),
    Cheat(
        280,
        "triage: the hottest GPU is the one that slowed",
        "debrief bypass",
        (
            "_solution_triage = triage\n\n\n"
            "def triage(evidence):\n"
            "    answer = dict(_solution_triage(evidence))\n"
            "    gpus = evidence['gpus']\n"
            "    answer['gpu'] = max(gpus, key=lambda g: max(gpus[g]['series']"
            "['DCGM_FI_DEV_GPU_TEMP']))\n"
            "    return answer\n",
        ),
        WHO,
    ),
    Cheat(
        280,
        "alert rules: the power violation counter, which grows on every busy GPU",
        "debrief bypass",
        _rules(
            _rule(BITS),
            _rule("rate(DCGM_FI_DEV_POWER_VIOLATION[2m]) > 0").replace("GPUSlow", "GPUPower"),
        ),
        QUIET,
    ),
    Cheat(
        280,
        "alert rules: not YAML promtool can read",
        "symptom hiding",
        ("def alert_rules():\n    return 'alert: GPUSlow\\nexpr: DCGM_FI_DEV_GPU_TEMP > 90'\n",),
        VALID,
    ),
]
