"""Score alert rules on series whose incidents are known: pages, false ones, missed and late.

    >>> from labsupport.telemetry import paging
    >>> case = paging.Case(series=[], keys=["0", "1"], episodes=[("1", 60, 120)], until_s=180)
    >>> fired = {t: ({"1"} if 75 <= t <= 135 else set()) for t in range(0, 181, 15)}
    >>> s = paging.score("unused", {"night": case}, timeline={"night": fired})
    >>> s.pages_total, s.pages_real, s.missed
    (1, 1, [])

A page is one stretch of consecutive evaluations in which an alert fires for a key (a GPU). It
is real when it overlaps one of that key's episodes (from the episode's start to `grace_s`
after its end), false otherwise. An episode is missed when nothing pages for its key while it
lasts (plus the grace), and late when the first page comes more than `max_delay_s` after its
start. Alerts that lost the key's label cannot say which card, and are counted apart. The rules
run in the real promtool (`labsupport.telemetry.promtool`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from labsupport.telemetry import promtool


@dataclass(frozen=True)
class Case:
    """Series to run rules on, the keys to read alerts for, and the known episodes."""

    series: list  # promtool.Series
    keys: list[str]
    episodes: list[tuple[str, float, float]]  # (key, first scrape, last scrape)
    until_s: int
    interval_s: int = 15


@dataclass(frozen=True)
class Page:
    case: str
    gpu: str
    start_s: int
    end_s: int
    real: bool


@dataclass
class Score:
    """What a rule file did on a set of cases."""

    pages: list[Page] = field(default_factory=list)
    missed: list[tuple[str, str, float]] = field(default_factory=list)  # case, key, start
    late: list[tuple[str, str, float]] = field(default_factory=list)  # paged, but too late
    unlabelled: list[tuple[str, int]] = field(default_factory=list)  # case, time

    @property
    def pages_total(self) -> int:
        return len(self.pages)

    @property
    def pages_real(self) -> int:
        return sum(p.real for p in self.pages)

    @property
    def false_pages(self) -> list[Page]:
        return [p for p in self.pages if not p.real]

    @property
    def precision(self) -> float:
        """Share of pages that were real (0 when nothing paged)."""
        return self.pages_real / self.pages_total if self.pages else 0.0

    def summary(self) -> str:
        text = (
            f"{self.pages_total} page(s), {self.pages_real} real, {len(self.false_pages)} false; "
            f"{len(self.missed)} incident(s) missed"
        )
        if self.late:
            text += f", {len(self.late)} paged late"
        if self.unlabelled:
            text += f"; {len(self.unlabelled)} evaluation(s) with alerts without a gpu label"
        return text


def fired(rules: str, cases: dict[str, Case], by: str = "gpu") -> dict[str, dict[int, set]]:
    """case -> evaluation time -> keys with a firing alert ("" for alerts without the label),
    one promtool run for all cases (they share the keys and the interval)."""
    keys = sorted({k for c in cases.values() for k in c.keys}, key=lambda k: (len(k), k))
    interval = {c.interval_s for c in cases.values()}
    if len(interval) != 1:
        raise ValueError(f"cases must share one scrape interval, got {sorted(interval)}")
    until = max(c.until_s for c in cases.values())
    series = {name: c.series for name, c in cases.items()}
    return promtool.firing_many(
        rules, series, keys=keys, interval_s=interval.pop(), until_s=until, by=by
    )


def score(
    rules: str,
    cases: dict[str, Case],
    *,
    max_delay_s: float = 180.0,
    grace_s: float = 300.0,
    timeline: dict | None = None,
) -> Score:
    """Pages, missed and late episodes of `rules` on `cases`."""
    timeline = timeline if timeline is not None else fired(rules, cases)
    out = Score()
    for name, case in cases.items():
        at = timeline[name]
        times = sorted(t for t in at if t <= case.until_s)
        out.unlabelled += [(name, t) for t in times if "" in at[t]]
        windows: dict[str, list[tuple[float, float]]] = {}
        for key, start, end in case.episodes:
            windows.setdefault(key, []).append((start, end + grace_s))
            paged = [t for t in times if start <= t <= end + grace_s and key in at[t]]
            if not paged:
                out.missed.append((name, key, start))
            elif paged[0] > start + max_delay_s:
                out.late.append((name, key, start))
        for key in case.keys:
            for first, last in _runs([t for t in times if key in at[t]], case.interval_s):
                real = any(first <= hi and last >= lo for lo, hi in windows.get(key, []))
                out.pages.append(Page(name, key, first, last, real))
    return out


def _runs(times: list[int], step: int) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for t in times:
        if runs and t - runs[-1][1] <= step:
            runs[-1] = (runs[-1][0], t)
        else:
            runs.append((t, t))
    return runs
