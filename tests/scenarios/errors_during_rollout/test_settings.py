"""Lab 299's manifest helpers: production manifests, edits, settings, the container command."""

from __future__ import annotations

import base64
import pickle

from labsupport.k8s import manifests
from labsupport.scenarios.errors_during_rollout import settings as rs


def test_the_production_manifest_is_valid_and_its_readiness_does_not_flap():
    text = rs.production_manifest()
    manifests.validate(text, require_command=False)
    s = rs.settings(text)
    assert (s["pre_stop_s"], s["drain_s"], s["grace_s"]) == (0, 0, 30)
    assert (s["max_surge"], s["max_unavailable"]) == (1, 0)  # 25% of 2, rounded
    assert s["readiness"]["failureThreshold"] >= 3  # one slow answer is not "not ready"
    assert s["gpus_per_pod"] == 1 and s["strategy"] == "RollingUpdate"


def test_production_without_a_spare_gpu_rolls_down_first_and_keeps_its_budget():
    s = rs.settings(rs.production_manifest(3, spare_gpus=0, server_budget_s=20, grace_s=4))
    assert (s["replicas"], s["max_surge"], s["max_unavailable"]) == (3, 0, 1)
    assert (s["drain_s"], s["grace_s"]) == (20, 4)


def test_manifest_with_replaces_the_budget_flag_in_either_form():
    obj = manifests.load(rs.production_manifest())
    obj["spec"]["template"]["spec"]["containers"][0]["args"] += ["--shutdown-timeout=12"]
    text = rs.manifest_with(obj, drain_s=40, pre_stop_s=6)
    parsed = manifests.load(text)
    assert rs.shutdown_flags(parsed) == [40] and rs.drain_seconds(parsed) == 40
    assert rs.settings(text)["pre_stop"] == "sleep" and rs.settings(text)["pre_stop_s"] == 6


def test_drain_seconds_reads_both_flag_forms_and_the_last_wins():
    obj = manifests.load(rs.production_manifest(server_budget_s=40))
    assert rs.drain_seconds(obj) == 40
    c = obj["spec"]["template"]["spec"]["containers"][0]
    c["args"] = ["--shutdown-timeout=12"]
    assert rs.drain_seconds(obj) == 12
    c["args"] = ["--shutdown-timeout", "5", "--shutdown-timeout=9"]
    assert rs.drain_seconds(obj) == 9 and rs.shutdown_flags(obj) == [5, 9]
    c["args"] = []
    assert rs.drain_seconds(obj) == 0


def test_server_command_scales_the_budget_and_sends_the_handler():
    argv = rs.server_command(30, "drain")
    assert argv[argv.index("--shutdown-timeout") + 1] == "3"
    assert argv[argv.index("--sigterm-handler") + 1] == "drain"
    argv = rs.server_command(0, len)  # an importable function goes by name
    assert argv[argv.index("--sigterm-handler") + 1] == "builtins:len"

    def local(ctx):  # a notebook-style function travels as code
        ctx.stop_accepting()

    spec = rs.server_command(0, local)[-1]
    assert spec.startswith("pickle:")
    assert callable(pickle.loads(base64.b64decode(spec[7:])).load())
    assert "--sigterm-handler" not in rs.server_command(0)
