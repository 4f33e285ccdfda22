"""The container crashed on purpose: orphans hold, zombies stay, restarts fail; and the fixes."""

import pytest

from labsupport.linux import pidns
from labsupport.scenarios import gpu_memory_held_after_crash as scenario
from labsupport.scenarios.gpu_memory_held_after_crash import incident

V = scenario.variant(1)  # one worker exits with its pipe, one computes on


@pytest.fixture(scope="module")
def runs():
    ok, why = pidns.available()
    if not ok:
        pytest.skip(f"no PID namespaces here: {why}")
    cmd = incident.command(V)
    server = incident.server_part(cmd)
    return {
        "incident": incident.run(V, command=cmd),
        "tini": incident.run(V, command=cmd, entrypoint=["tini", "--", *server]),
        "stop production": incident.run(V, command=cmd, action="stop"),
        "stop tini": incident.run(V, command=cmd, entrypoint=["tini", "-g", "--", *server],
                                  action="stop"),
    }  # fmt: skip


def test_after_the_crash_an_orphan_holds_the_card_and_a_zombie_holds_nothing(runs):
    r = runs["incident"]
    ev = r.evidence()
    by_name = {row["name"]: row for row in ev["ps"]}
    assert by_name["entrypoint"]["pid"] == 1 and "llm-server" not in by_name
    w0, w1 = by_name["engine-w0"], by_name["engine-w1"]
    assert w0["stat"] == "Z" and w0["ppid"] == 1 and w0["rss_kib"] == 0
    assert w1["stat"] != "Z" and w1["ppid"] == 1
    assert ev["gpu"] == [{"pid": w1["pid"], "used_mib": V.worker_bytes / 2**20}]
    assert ev["listening"] == [{"pid": w1["pid"], "port": 29501}]
    assert r.held_after_bytes == V.worker_bytes
    assert any("less than desired GPU memory utilization" in ln for ln in ev["log"])


def test_tini_running_the_server_leaves_nothing_and_stops_on_sigterm(runs):
    assert runs["tini"].exited_at_s is not None and runs["tini"].held_after_bytes == 0
    assert runs["stop tini"].stop_s is not None and runs["stop tini"].stop_s < 3
    assert runs["stop production"].stop_ignored


def test_an_entrypoint_the_lab_does_not_know_is_never_run():
    with pytest.raises(ValueError):
        incident.run(V, entrypoint=["sh", "-c", "echo hi"])
    with pytest.raises(ValueError):
        incident.run(V, action="restart")
