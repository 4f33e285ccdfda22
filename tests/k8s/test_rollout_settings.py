"""Lab 299's manifest helpers: settings, sizing rules, the container command."""

from __future__ import annotations

import base64
import pickle

import pytest

from labsupport.k8s import manifests
from labsupport.k8s import rollout_settings as rs

FIXED = rs.manifest_with(pre_stop_s=10, grace_s=60, drain_s=40, max_unavailable=0)


def test_the_production_manifest_is_valid_and_every_rule_fails_on_it():
    manifests.validate(rs.DEFAULT_MANIFEST, require_command=False)
    problems = " | ".join(rs.sizing_problems(rs.DEFAULT_MANIFEST))
    for field in ("maxUnavailable", "preStop", "--shutdown-timeout"):
        assert field in problems, problems
    s = rs.settings(rs.DEFAULT_MANIFEST)
    assert (s["pre_stop_s"], s["drain_s"], s["grace_s"]) == (0, 0, 30)
    assert (s["max_surge"], s["max_unavailable"]) == (1, 0)  # 25% of 2, rounded


def test_the_fixed_manifest_passes():
    assert rs.sizing_problems(FIXED) == []
    assert rs.settings(FIXED)["pre_stop"] == "sleep"


@pytest.mark.parametrize(
    "changes,expected",
    [
        ({"pre_stop_s": 3}, "sleep at least 5 s"),
        ({"drain_s": 20}, "streams need up to 30 s"),
        ({"grace_s": 45}, "the grace period starts with the preStop hook"),
        ({"max_unavailable": 1}, "maxUnavailable"),
        ({"max_unavailable": "25%"}, "maxUnavailable"),
    ],
)
def test_each_rule_names_its_field(changes, expected):
    problems = rs.sizing_problems(rs.manifest_with(FIXED, **changes))
    assert any(expected in p for p in problems), problems


def test_schema_errors_and_exec_hooks_are_reported():
    typo = FIXED.replace("terminationGracePeriodSeconds", "terminationGracePeriodSecond")
    assert any("did you mean" in p for p in rs.sizing_problems(typo))
    obj = manifests.load(FIXED)
    obj["spec"]["template"]["spec"]["containers"][0]["lifecycle"] = {
        "preStop": {"exec": {"command": ["sleep", "10"]}}
    }
    assert any("native sleep action" in p for p in rs.sizing_problems(obj))
    pod = manifests.load(rs.DEFAULT_MANIFEST)
    pod["kind"], pod["apiVersion"] = "Pod", "v1"
    assert rs.sizing_problems(pod)  # not a Deployment (or not valid as a Pod)


def test_drain_seconds_reads_both_flag_forms():
    obj = manifests.load(FIXED)
    assert rs.drain_seconds(obj) == 40
    obj["spec"]["template"]["spec"]["containers"][0]["args"] = ["--shutdown-timeout=12"]
    assert rs.drain_seconds(obj) == 12
    obj["spec"]["template"]["spec"]["containers"][0]["args"] = []
    assert rs.drain_seconds(obj) == 0


def test_server_command_scales_the_drain_and_sends_the_handler():
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
