"""Lab 288's server sizes, the incident's manifest and measured debug starts."""

from __future__ import annotations

import pytest

from labsupport.k8s import manifests
from labsupport.scenarios import killed_while_loading as scenario
from labsupport.scenarios.killed_while_loading import starts
from tests.labs.truth import killed_while_loading as truth

pytestmark = pytest.mark.timeout(60)


def test_the_incident_manifest_is_valid_kubernetes_with_liveness_only():
    size = starts.ServerSize(192, 3.5)
    obj = manifests.validate(starts.incident_manifest(size))
    container = obj["spec"]["containers"][0]
    assert "startupProbe" not in container and "livenessProbe" in container
    assert container["args"] == ["--port", "$(PORT)", *size.args()], "it runs that server"


def test_server_size_command_leaves_the_port_to_the_supervisor():
    argv = starts.ServerSize(128, 1.5).command()
    assert argv[argv.index("--port") + 1] == "$(PORT)"
    assert argv[-4:] == ["--weights-mb", "128", "--fault", "slow_start=1.5"]


def test_timestamps_are_written_as_kubernetes_writes_them():
    t = 1_795_615_331_500_000_000  # 2026-11-25T14:02:11.5Z
    assert starts.rfc3339_nano(t) == "2026-11-25T14:02:11.5Z"
    assert starts.rfc3339_nano(t - 500_000_000) == "2026-11-25T14:02:11Z"
    assert starts.rfc3339_nano_fixed(t + 7) == "2026-11-25T14:02:11.500000007Z"
    assert truth.ns(starts.rfc3339_nano(t + 7)) == t + 7


def test_phases_of_reads_the_servers_own_timers():
    assert starts.phases_of(["x", 'startup {"total_s": 3.5}']) == {"total_s": 3.5}
    assert starts.phases_of(["startup {broken"]) == {}
    assert starts.phases_of([]) == {}


def test_variants_differ_and_every_server_outlasts_the_incidents_liveness():
    variants = [scenario.variant(s) for s in range(6)]
    assert len({(v.server, v.hang_after_ready_s) for v in variants[:3]}) == 3
    for v in variants:
        assert v.server.compile_s >= 2.8, "slower than the 25 s (2.5 real s) liveness kill"
        graded = v.graded_sizes()
        assert len(graded) == 2 and all(g.compile_s < v.server.compile_s for g in graded)
        assert abs(graded[0].compile_s - graded[1].compile_s) >= 0.7, "one is clearly slower"
    slowest_first = [v.graded[0].compile_s > v.graded[1].compile_s for v in variants[:3]]
    assert set(slowest_first) == {True, False}, "the slowest is not always in one place"
    assert scenario.variant(0).debug_sizes("suite") == [scenario.variant(0).server]
    assert scenario.variant(0).debug_sizes() == [scenario.variant(0).server] * 3
    with pytest.raises(ValueError, match="non-negative"):
        scenario.variant(-1)


def test_debug_starts_give_timestamped_evidence_and_the_truth():
    small, smaller = starts.ServerSize(64, 1.0), starts.ServerSize(16, 0.2)
    records = starts.debug_starts([small, smaller])
    assert [r.size for r in records] == [small, smaller]
    for start in records:
        began = truth.ns(start.started_at)
        stamps = [(truth.ns(line.split(" ", 1)[0]), line.split(" ", 1)[1]) for line in start.logs]
        assert all(len(line.split(" ", 1)[0]) == 30 for line in start.logs), "nine digits"
        assert stamps == sorted(stamps, key=lambda s: s[0]) and stamps[0][0] >= began
        assert abs(truth.start_duration_s(start.evidence()) - start.port_open_s) < 0.25
        # the server's own timers start after the interpreter and torch are up: they miss that
        assert start.phases["slow_start_s"] == start.size.compile_s
        assert start.port_open_s > start.phases["total_s"] + 0.2
        assert not any("SIGTERM" in line for line in start.logs), "logs end when it served"
        assert set(start.evidence()) == {"startedAt", "logs"}


def test_debug_start_that_does_not_come_up_in_time_says_so():
    with pytest.raises(RuntimeError, match="was not up in 0.3 s"):
        starts.debug_start(starts.ServerSize(64, 1.0), timeout_s=0.3)
