"""Lab 288, killed while loading: the slow model server, its pods and their timelines.

    >>> from labsupport.scenarios import killed_while_loading as scenario
    >>> v = scenario.variant(0)
    >>> v.server, v.hang_after_ready_s
    (ServerSize(weights_mb=256, compile_s=3.0), 5.0)
    >>> [(size.weights_mb, size.compile_s) for size in v.graded_sizes()]
    [(64, 1.0), (24, 0.3)]

Modules: `starts` (server sizes, the incident's manifest, debug starts measured with their
evidence and the truth), `pods` (a manifest run under the lab's kubelet, what it did),
`timeline` (plots), `hints`. `variant(seed)` says what a seed changes: how big the server
is (weights written and loaded, the compile stand-in: so how long a start takes), the two
smaller servers whose starts the diagnosis is graded on (which of them is slower, and which
starts first), and when, after the pod got ready, the server hangs.
"""

from __future__ import annotations

from dataclasses import dataclass

from labsupport.scenarios.killed_while_loading.starts import (
    TIME_SCALE,
    ServerSize,
    incident_manifest,
)

# (weights MB, compile stand-in s): every start outlasts the incident's 25 s liveness limit
# (2.5 real seconds) by a margin on a fast machine too
SERVERS = ((256, 3.0), (192, 3.6), (320, 2.8), (128, 4.2), (224, 3.3))
# the diagnosis is graded on fresh starts of two small servers (quick to measure), in this order
GRADED = (((64, 1.0), (24, 0.3)), ((32, 0.3), (96, 1.2)), ((80, 1.4), (40, 0.4)))
HANGS_AFTER_READY_S = (5.0, 20.0, 35.0)  # manifest seconds


@dataclass(frozen=True)
class Variant:
    """One incident: the server the pod runs and when it hangs once it serves."""

    seed: int
    server: ServerSize  # the image the incident's pod runs
    graded: tuple[ServerSize, ...]  # the debug starts the diagnosis check measures, in order
    hang_after_ready_s: float  # manifest seconds between the pod getting ready and the hang

    @property
    def manifest(self) -> str:
        """The incident's manifest, running this variant's server."""
        return incident_manifest(self.server)

    def graded_sizes(self) -> list[ServerSize]:
        """The servers of the debug starts the diagnosis check measures, in order."""
        return list(self.graded)

    def debug_sizes(self, scale: str = "full") -> list[ServerSize]:
        """The notebook's debug starts: the incident's server, three times (once in the suite)."""
        return [self.server] * (3 if scale == "full" else 1)


def variant(seed: int) -> Variant:
    """The incident of `seed` (0 is the solution notebook's)."""
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    weights_mb, compile_s = SERVERS[seed % len(SERVERS)]
    return Variant(
        seed=seed,
        server=ServerSize(weights_mb, compile_s),
        graded=tuple(ServerSize(mb, s) for mb, s in GRADED[seed % len(GRADED)]),
        hang_after_ready_s=HANGS_AFTER_READY_S[seed % len(HANGS_AFTER_READY_S)],
    )


__all__ = ["TIME_SCALE", "ServerSize", "Variant", "variant"]
