"""Lab 280's reference answers: which bits matter, which GPU slowed and why, the rubric.

    >>> from tests.labs.truth import gpu_running_hot as truth
    >>> truth.decode(0x88)
    ['HW_SLOWDOWN', 'HW_POWER_BRAKE']
    >>> truth.triage(truth.TINY)["gpu"], truth.triage(truth.TINY)["cause"]
    ('1', 'power')

Never part of the package: a candidate with `labsupport` installed cannot import the judgement
that grades them. The checks of tests/labs/test_280_gpu_running_hot.py compare `decode_reasons`
with `decode` on masks built to separate neighbours, `triage` with `triage` on nodes built so
that the usual shortcuts (the hottest GPU, the slowest clock, the first problem bit) name the
wrong GPU, and run `alert_rules` in promtool over `fix_cases(seed)`.
"""

from __future__ import annotations

import random
import statistics

from labsupport.scenarios import gpu_running_hot as scenario
from labsupport.scenarios.gpu_running_hot import node
from labsupport.telemetry.reasons import BY_NAME, TABLE
from labsupport.telemetry.trace import Card

# The card says its clocks are held down for a reason a human must act on: heat, or the
# hardware (external power brake, fast-trigger power protection). GPU_IDLE and SW_POWER_CAP
# are its normal power management; CLOCKS_SETTING, SYNC_BOOST, DISPLAY_CLOCKS are settings.
PROBLEM = ("HW_SLOWDOWN", "SW_THERMAL", "HW_THERMAL", "HW_POWER_BRAKE")
PROBLEM_MASK = sum(BY_NAME[name].bit for name in PROBLEM)  # 0xe8
THERMAL_MASK = BY_NAME["SW_THERMAL"].bit | BY_NAME["HW_THERMAL"].bit
CLOCK_TOLERANCE_MHZ = 10.0
TEMP_TOLERANCE_C = 0.5
REASONS = "DCGM_FI_DEV_CLOCKS_EVENT_REASONS"


def decode(mask: int) -> list[str]:
    """Names of the set bits, lowest first; undocumented bits as UNKNOWN_0x..."""
    mask = int(mask)
    names = [row.name for row in TABLE if mask & row.bit]
    bit = 0x200
    while bit <= mask:
        if mask & bit:
            names.append(f"UNKNOWN_0x{bit:x}")
        bit <<= 1
    return names


def _sustained(masks: list[float]) -> list[int]:
    """Indices of scrapes with a problem bit that belong to a run of two or more."""
    flagged = [int(m) & PROBLEM_MASK != 0 for m in masks]
    out = []
    for i, on in enumerate(flagged):
        if on and ((i and flagged[i - 1]) or (i + 1 < len(flagged) and flagged[i + 1])):
            out.append(i)
    return out


def triage(evidence: dict) -> dict:
    """The graded diagnosis of a node's evidence."""
    gpus = evidence["gpus"]
    counts = {gpu: len(_sustained(g["series"][REASONS])) for gpu, g in gpus.items()}
    victim = max(counts, key=lambda g: (counts[g], -int(g)))
    if counts[victim] == 0:
        raise ValueError("no GPU of this node has a sustained problem bit")
    series = gpus[victim]["series"]
    flagged = _sustained(series[REASONS])
    masks = [int(series[REASONS][i]) for i in flagged]
    seen_problem = sorted(
        {n for m in masks for n in decode(m & PROBLEM_MASK)}, key=lambda n: BY_NAME[n].bit
    )
    normal = {
        name
        for g in gpus.values()
        for m in g["series"][REASONS]
        for name in decode(int(m) & ~PROBLEM_MASK & 0x1FF)
    }
    clocks = series["DCGM_FI_DEV_SM_CLOCK"]
    return {
        "gpu": victim,
        "cause": "thermal" if any(m & THERMAL_MASK for m in masks) else "power",
        "problem_bits": seen_problem,
        "normal_bits": sorted(normal, key=lambda n: BY_NAME[n].bit),
        "sm_clock_mhz_before": float(statistics.median(clocks[: flagged[0]])),
        "sm_clock_mhz_during": float(statistics.median(clocks[i] for i in flagged)),
        "max_temp_c": float(max(series["DCGM_FI_DEV_GPU_TEMP"])),
    }


def near_misses(evidence: dict) -> dict[str, str]:
    """The GPU each usual shortcut names, for the hint."""
    gpus = evidence["gpus"]

    def first(pred):
        return next((g for g, s in gpus.items() if pred(s["series"])), None)

    return {
        "the hottest GPU": max(gpus, key=lambda g: max(gpus[g]["series"]["DCGM_FI_DEV_GPU_TEMP"])),
        "the GPU with the lowest SM clock": min(
            gpus, key=lambda g: statistics.median(gpus[g]["series"]["DCGM_FI_DEV_SM_CLOCK"])
        ),
        "the first GPU with a problem bit in any one scrape": first(
            lambda s: any(int(m) & PROBLEM_MASK for m in s[REASONS])
        ),
        "the first GPU with a non-zero mask": first(lambda s: any(s[REASONS])),
    }


# ---- evidence built to separate the answer from its near misses ------------------------------
def _tiny() -> dict:
    """Two GPUs, eight scrapes: gpu 0 idle (0x1, one 0x8 blip, the lowest clock), gpu 1 at work
    (0x4) then braked (0x88) for three scrapes at a lower temperature."""
    t = list(range(0, 120, 15))
    idle = {
        REASONS: [1, 1, 9, 1, 1, 1, 1, 1],
        "DCGM_FI_DEV_SM_CLOCK": [345.0] * 8,
        "DCGM_FI_DEV_GPU_TEMP": [40.0] * 8,
    }
    braked = {
        REASONS: [4, 4, 4, 4, 0x88, 0x88, 0x88, 4],
        "DCGM_FI_DEV_SM_CLOCK": [1350, 1365, 1335, 1350, 540, 555, 530, 1350],
        "DCGM_FI_DEV_GPU_TEMP": [74.0, 75, 75, 74, 70, 66, 63, 66],
    }
    limits = {"DCGM_FI_DEV_SLOWDOWN_TEMP": 89.0, "DCGM_FI_DEV_GPU_MAX_OP_TEMP": 87.0}
    gpus = {
        g: {"model": "NVIDIA H100 80GB HBM3", "limits": limits, "series": s}
        for g, s in (("0", idle), ("1", braked))
    }
    return {"hostname": "tiny", "interval_s": 15, "t_s": t, "gpus": gpus}


TINY = _tiny()
OTHER_CARD = Card(  # a made-up card type whose own limits are higher than the H100's
    name="a made-up card type",
    slowdown_c=95,
    shutdown_c=100,
    gpu_max_op_c=92,
    power_limit_w=700.0,
    max_sm_mhz=1980,
)


def _spec(seed: int, kind: str | None, *, card=None, busy_c=node.BUSY_C, blip_first=True):
    rng = random.Random(f"280-truth-{seed}-{kind}")
    victim = rng.randrange(2, scenario.GPUS)
    roles, blipper = scenario.layout(rng, victim)
    if blip_first and blipper > victim:  # put the blip before the victim, as on-call reads
        roles = list(roles)
        roles[blipper], roles[0] = roles[0], roles[blipper]
        blipper = 0 if roles[0] == "bursty" else blipper
        roles = tuple(roles)
    blips = ((blipper, float(rng.randrange(300, 2400, 15))),)
    event = None
    if kind == "thermal":
        event = node.Event(victim, kind, start_s=float(rng.randrange(240, 600, 15)))
    elif kind is not None:
        start = float(rng.randrange(900, 1800, 15))
        event = node.Event(victim, kind, start, end_s=start + rng.randrange(480, 840, 15))
    return node.NodeSpec(
        roles=roles, seed=10_000 + seed, event=event, blips=blips, card=card, busy_c=busy_c
    )


def other_kind(seed: int) -> str:
    mine = scenario.variant(seed).spec.event.kind
    return "thermal" if mine != "thermal" else ("brake", "fast_trigger")[seed % 2]


def diagnosis_nodes(seed: int) -> dict[str, node.Node]:
    """The graded nodes: this incident's, one of the other cause, one built against shortcuts."""
    out = {f"this incident's node (seed {seed})": scenario.variant(seed).node()}
    out["a node where the other cause is at work"] = node.build(_spec(seed, other_kind(seed)))
    out["a node where the GPU that slowed is neither the hottest nor the first to blip"] = (
        node.build(_spec(seed + 1, ("brake", "fast_trigger")[seed % 2]))
    )
    return out


def fix_cases(seed: int) -> dict[str, node.Node]:
    """Nodes the rules must page right on: slowdowns of every kind, and healthy nodes (a warm
    slot, blips, a card type whose own limits differ from the H100's)."""
    out = diagnosis_nodes(seed)
    kinds = {"thermal", "brake", "fast_trigger"} - {
        scenario.variant(seed).spec.event.kind,
        other_kind(seed),
    }
    for kind in sorted(kinds):
        out[f"a node with a {kind.replace('_', ' ')} event"] = node.build(_spec(seed + 2, kind))
    out["a healthy node: recorded idle and GEMM samples, a warm slot, blips"] = node.build(
        _spec(seed + 3, None)
    )
    out["a healthy node of another card type (its own thresholds are higher)"] = node.build(
        _spec(seed + 4, None, card=OTHER_CARD, busy_c=83.0)
    )
    return out


# ---- interviewer material -------------------------------------------------------------------
def answer_key(seed: int) -> dict:
    v = scenario.variant(seed)
    found = triage(v.node().evidence())
    return {
        "gpu": found["gpu"],
        "cause": found["cause"],
        "problem_bits": found["problem_bits"],
        "event_kind": v.spec.event.kind,
        "normal_bits": found["normal_bits"],
        "sm_clock_mhz": (found["sm_clock_mhz_before"], found["sm_clock_mhz_during"]),
        "max_temp_c": found["max_temp_c"],
    }


def expected(seed: int) -> dict:
    """What the interviewer should see in variant `seed` (the same on any machine)."""
    v = scenario.variant(seed)
    key = answer_key(seed)
    kind = v.spec.event.kind
    story = {
        "brake": "HW_POWER_BRAKE with HW_SLOWDOWN (0x88) at a normal temperature: the system "
        "asserted the external power brake (a PSU or the rack's power)",
        "fast_trigger": "HW_SLOWDOWN alone (0x8), sustained, at a normal temperature: fast-trigger "
        "power protection (power excursions) or a PSU problem",
        "thermal": "temperature climbing for ~10 minutes, then SW_THERMAL (0x20) at the card's "
        "max operating temperature, then HW_THERMAL+HW_SLOWDOWN (0x68) at its slowdown "
        "temperature: the cooling failed",
    }[kind]
    return {
        "the GPU that slowed": f"gpu {key['gpu']} ({v.spec.roles[int(key['gpu'])]} before it)",
        "what its bits say": story,
        "its clocks": f"median SM clock {key['sm_clock_mhz'][0]:.0f} MHz before, "
        f"{key['sm_clock_mhz'][1]:.0f} MHz during",
        "the noise": "idle GPUs show 0x1 (GPU_IDLE), busy ones 0x4 (SW_POWER_CAP at ~698 of "
        "700 W, SM ~1350 MHz), a warm slot sits at 82-84 C with 0x4 only, and one GPU shows a "
        "single 0x8 scrape at a clock change",
        "the team's rules": "GPUThrottling pages all 8 GPUs; GPUTooHot the warm slot (and the "
        "hot GPU in the thermal variant): one page in eight is real",
        "a passing fix": "page on bits 0x8/0x20/0x40/0x80 tested with floor()/% arithmetic, "
        "for: 30s-2m, gpu label kept; temperatures only against DCGM_FI_DEV_* thresholds",
    }


RUBRIC = {
    "diagnosis": {
        "strong": (
            "Decodes the masks bit by bit, says why GPU_IDLE and SW_POWER_CAP are the card's "
            "normal power management (698 of 700 W at 1350 MHz is the power limit at work), "
            "finds the one GPU whose problem bits persist, names thermal vs power from the bits "
            "and backs it with its clocks before/during and its temperature against its own "
            "thresholds; dismisses the one-scrape blip."
        ),
        "adequate": (
            "Finds the right GPU from the clock drop or the bits but cannot say which bits are "
            "normal, or calls a power brake thermal."
        ),
        "weak": (
            "Picks the hottest GPU or the lowest clock (an idle GPU), or treats any non-zero "
            "mask as throttling."
        ),
    },
    "fix": {
        "strong": (
            "Pages on SW_THERMAL, HW_THERMAL, HW_SLOWDOWN and HW_POWER_BRAKE with bit arithmetic, "
            "a short `for:` that lets a blip pass, the gpu label kept; optional temperature rules "
            "against DCGM_FI_DEV_GPU_MAX_OP_TEMP/SLOWDOWN_TEMP, never a constant; no page on the "
            "healthy nodes."
        ),
        "adequate": (
            "Right bits but `== 8`-style equality (misses combined masks), or a `for:` so long "
            "the page comes late, or the thermal violation counter alone (misses power events)."
        ),
        "weak": "Keeps `> 0` or `temp > 82`, or silences the alert.",
    },
    "reasoning": {
        "strong": (
            "Explains the rename (throttle reasons -> clocks event reasons, DCGM field 112), why "
            "a bitmask needs floor/% in PromQL, that DCGM_FI_DEV_CLOCKS_EVENT_REASONS and the "
            "violation counters are not in dcgm-exporter's default CSV, per-SKU thresholds, and "
            "what each event means for the runbook (cooling vs power delivery)."
        ),
        "adequate": "Knows which bits matter but not why, or not how to test a bit in PromQL.",
        "weak": "Cannot say what the mask means or why the old alert was silenced.",
    },
}
