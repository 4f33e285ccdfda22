"""One node's eight GPUs over the incident window, as dcgm-exporter would have exported them.

    >>> from labsupport.scenarios.gpu_running_hot import node
    >>> spec = node.NodeSpec(roles=("idle", "busy"), seed=1)
    >>> n = node.build(spec)
    >>> len(n.t_s), sorted(n.gpus)
    (181, ['0', '1'])
    >>> int(n.gpus["1"]["DCGM_FI_DEV_SM_CLOCK"][60]) in range(1300, 1450)
    True

How the series are made, said plainly (the notebook says it too):
- **Recorded**: clocks, power and the clock event reasons of a GPU at work and at rest are drawn,
  scrape by scrape, from the samples of the H100 recording (`labsupport.telemetry.trace`): the
  steady part of its GEMM loop, and its idle stretches. The card's thresholds and power limit are
  the ones read on that card.
- **Modelled**: temperatures follow a first-order model (about 75 C at work, 39 C at rest) that
  fits the recording's rise and fall; the violation counters accrue the nanoseconds of the bits
  NVIDIA documents for them.
- **Constructed**: a slowdown on one GPU (`Event`), because no lab may heat, cap or re-clock a
  card: its bits, clocks and power follow NVIDIA's documentation of each bit (nvml.h,
  dcgm_fields.h), and a GPU that changes clocks may show one scrape of a bit (a "blip").
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from labsupport.telemetry import dcgm
from labsupport.telemetry.trace import Card, recorded

INTERVAL_S = 15  # dcgm-exporter collects every 30 s by default; this node's job scrapes every 15
WINDOW_S = 45 * 60
HOSTNAME = "gpu-node-07"
ROLES = ("idle", "busy", "warm", "bursty")
IDLE_C, BUSY_C, WARM_EXTRA_C = 39.0, 75.0, 8.0
TAU_S = 90.0  # how fast a GPU's temperature follows its load, at a 15 s scrape
THERMAL_RAMP_S = 900.0  # a failing fan or a blocked inlet: the cooling degrades over minutes


@dataclass(frozen=True)
class Event:
    """A slowdown on one GPU: `kind` is how NVIDIA's bits describe it, from `start_s` to `end_s`
    (None: still going at the end of the window)."""

    gpu: int
    kind: str  # "thermal" (cooling lost), "brake" (external power brake), "fast_trigger"
    start_s: float
    end_s: float | None = None


@dataclass(frozen=True)
class NodeSpec:
    """What each GPU did (a role per GPU index), the slowdown if any, blips, the card."""

    roles: tuple[str, ...]
    seed: int = 0
    event: Event | None = None
    blips: tuple[tuple[int, float], ...] = ()  # (gpu, time): one scrape of a bit at a clock change
    card: Card | None = None  # None: the recorded H100's
    busy_c: float = BUSY_C
    hostname: str = HOSTNAME
    window_s: int = WINDOW_S


@dataclass
class Node:
    """The series of every GPU at the scrape times `t_s`, and what made them (for scoring)."""

    spec: NodeSpec
    card: Card
    t_s: list[int]
    gpus: dict[str, dict[str, list[float]]]  # gpu -> DCGM metric -> values at t_s
    episodes: list[tuple[str, float, float]] = field(default_factory=list)  # gpu, start, end

    def evidence(self) -> dict:
        """What on-call can pull from Prometheus for the window: plain data, no labels."""
        limits = dcgm.card_fields(self.card)
        return {
            "hostname": self.spec.hostname,
            "interval_s": INTERVAL_S,
            "t_s": list(self.t_s),
            "gpus": {
                gpu: {
                    "model": self.card.name,
                    "limits": dict(limits),
                    "series": {k: list(v) for k, v in series.items() if k not in limits},
                }
                for gpu, series in self.gpus.items()
            },
        }


def _pools():
    t = recorded()
    busy = t.phase("gemm").active()
    rest = t.select((t["util_gpu"] == 0) & (t["reasons"] == 1) & (t["sm_mhz"] == 345))
    return t.card, busy, rest


def _temperature(start_c: float, targets: list[float]) -> list[float]:
    """First-order approach to each scrape's target temperature."""
    temp, out = start_c, []
    keep = math.exp(-INTERVAL_S / TAU_S)
    for target in targets:
        temp = target + (temp - target) * keep
        out.append(temp)
    return out


def _busy_plan(role: str, n: int, rng: random.Random) -> list[bool]:
    if role == "idle":
        return [False] * n
    if role != "bursty":
        return [True] * n
    plan, on = [], rng.random() < 0.5
    while len(plan) < n:
        plan += [on] * rng.randint(12, 28)  # 3 to 7 minutes at a time
        on = not on
    return plan[:n]


def build(spec: NodeSpec) -> Node:
    """The node's series, deterministic for a spec."""
    h100, busy_pool, rest_pool = _pools()
    card = spec.card or h100
    rng = random.Random(f"node-{spec.seed}")
    t_s = list(range(0, spec.window_s + 1, INTERVAL_S))
    n = len(t_s)
    gpus, episodes = {}, []
    for index, role in enumerate(spec.roles):
        if role not in ROLES:
            raise ValueError(f"role {role!r}: one of {ROLES}")
        plan = _busy_plan(role, n, rng)
        extra = WARM_EXTRA_C if role == "warm" else rng.uniform(-2.0, 2.0)
        pick_busy = [rng.randrange(len(busy_pool)) for _ in range(n)]
        pick_rest = [rng.randrange(len(rest_pool)) for _ in range(n)]
        sm = [
            busy_pool["sm_mhz"][b] if on else rest_pool["sm_mhz"][r]
            for on, b, r in zip(plan, pick_busy, pick_rest, strict=True)
        ]
        power = [
            busy_pool["power_w"][b] if on else rest_pool["power_w"][r]
            for on, b, r in zip(plan, pick_busy, pick_rest, strict=True)
        ]
        bits = [4 if on else 1 for on in plan]
        util = [
            float(busy_pool["util_gpu"][b]) if on else 0.0
            for on, b in zip(plan, pick_busy, strict=True)
        ]
        targets = [spec.busy_c + extra if on else IDLE_C + extra / 2 for on in plan]
        temps = _temperature(targets[0] + rng.uniform(-1.0, 1.0), targets)
        if spec.event is not None and spec.event.gpu == index:
            span = _apply_event(spec.event, card, t_s, temps, sm, power, bits, rng)
            episodes.append((str(index), *span))
        for gpu, at in spec.blips:
            if gpu == index:  # HW_SLOWDOWN "may be also reported during PState or clock change"
                bits[_clock_change(plan, t_s, at)] |= 0x8
        temp = [float(round(x + rng.gauss(0, 0.4))) for x in temps]
        gpus[str(index)] = _series(card, t_s, temp, sm, power, bits, util, rng)
    return Node(spec, card, t_s, gpus, episodes)


def _apply_event(event, card, t_s, temps, sm, power, bits, rng) -> tuple[float, float]:
    """Write the slowdown into one busy GPU's readings; its first and last problem scrape."""
    end = event.end_s if event.end_s is not None else math.inf
    during = [event.start_s <= t < end for t in t_s]
    keep = math.exp(-INTERVAL_S / TAU_S)
    temp, written = temps[0], []
    for i, on in enumerate(during):
        if not on:  # before: as it was; after: back to the load's own temperature, gradually
            temp = temps[i] if t_s[i] < event.start_s else _step(temp, temps[i], keep)
            temps[i] = temp
            continue
        if event.kind == "thermal":
            # the cooling fails more and more; trimmed clocks make less heat, for a while
            worse = min(1.0, (t_s[i] - event.start_s) / THERMAL_RAMP_S)
            heat = temps[i] + (card.gpu_max_op_c + 5.0 - temps[i]) * worse
            trimmed = bits[i - 1] & 0x20 if i else 0
            temp = _step(temp, heat - 2.0 if trimmed else heat, keep)
            if temp >= card.slowdown_c:  # HW thermal slowdown: clocks cut by 2x or more
                bits[i], sm[i], power[i] = 0x68, rng.uniform(560, 650), rng.uniform(300, 340)
                temp = min(temp, card.slowdown_c + 1.0)
                written.append(t_s[i])
            elif temp >= card.gpu_max_op_c:  # SW thermal: clocks trimmed to hold max operating
                bits[i], sm[i], power[i] = 0x20, rng.uniform(1040, 1140), rng.uniform(540, 580)
                written.append(t_s[i])
        else:  # a power event at normal temperature: a third of the power, clocks halved
            bits[i] = 0x80 | 0x08 if event.kind == "brake" else 0x08
            sm[i] = rng.uniform(480, 600) if event.kind == "brake" else rng.uniform(620, 700)
            power[i] = rng.uniform(270, 330)
            temp = _step(temp, temps[i] - 12.0, keep)
            written.append(t_s[i])
        temps[i] = temp
    if not written:
        raise ValueError(f"{event}: the event changed no scrape (does the window reach it?)")
    return written[0], written[-1]


def _clock_change(plan: list[bool], t_s: list[int], at: float) -> int:
    """The first scrape at or after `at` where the GPU starts or stops work (else nearest)."""
    for i in range(1, len(plan)):
        if t_s[i] >= at and plan[i] != plan[i - 1]:
            return i
    return min(range(len(t_s)), key=lambda k: abs(t_s[k] - at))


def _step(temp: float, target: float, keep: float) -> float:
    return target + (temp - target) * keep


def _series(card, t_s, temp, sm, power, bits, util, rng) -> dict[str, list[float]]:
    n = len(t_s)
    thermal = _accrue([b & 0x60 for b in bits], rng.randrange(10**12, 10**13))
    powered = _accrue([b & 0x04 for b in bits], rng.randrange(10**13, 10**14))
    out = {
        "DCGM_FI_DEV_GPU_TEMP": [float(x) for x in temp],
        "DCGM_FI_DEV_SM_CLOCK": [float(round(x)) for x in sm],
        "DCGM_FI_DEV_POWER_USAGE": [round(float(x), 3) for x in power],
        "DCGM_FI_DEV_CLOCKS_EVENT_REASONS": [float(b) for b in bits],
        "DCGM_FI_DEV_GPU_UTIL": [float(u) for u in util],
        "DCGM_FI_DEV_THERMAL_VIOLATION": thermal,
        "DCGM_FI_DEV_POWER_VIOLATION": powered,
    }
    for name, value in dcgm.card_fields(card).items():
        out[name] = [value] * n
    return out


def _accrue(active: list[int], offset: int) -> list[float]:
    """A violation counter (ns since boot): one interval per scrape where its bits are set."""
    total, out = offset, []
    for on in active:
        total += INTERVAL_S * 10**9 if on else 0
        out.append(float(total))
    return out


def series_for_promtool(node: Node):
    """The node's series with dcgm-exporter's labels, for `labsupport.telemetry.promtool`."""
    from labsupport.telemetry.promtool import Series

    out = []
    for gpu, metrics in node.gpus.items():
        labels = dcgm.labels(gpu=gpu, card=node.card, hostname=node.spec.hostname)
        out += [Series(name, labels, values) for name, values in metrics.items()]
    return out
