"""The incident's cluster: every variant pending for its own reason, each fix scheduling."""

from __future__ import annotations

import pytest
import yaml

from labsupport.k8s import manifests
from labsupport.scenarios.pod_pending_gpu_idle import CAUSES, PRODUCT, cluster, variant

SEEDS = range(10)


def _fix(v) -> str:
    obj = yaml.safe_load(cluster.manifest(v))
    spec = obj["spec"]["template"]["spec"]
    if v.cause == "idle_pod":
        spec["priorityClassName"] = "llm-serving"
    elif v.cause == "untolerated_taint":
        spec["tolerations"][0]["value"] = v.taint_value
    elif v.cause == "selector_typo":
        spec["nodeSelector"]["nvidia.com/gpu.product"] = PRODUCT
    elif v.cause == "mig_resource_name":
        limits = spec["containers"][0]["resources"]["limits"]
        limits[v.mig_profile] = limits.pop("nvidia.com/gpu")
    else:
        spec["nodeSelector"]["pool"] = "burst"
        spec["tolerations"].append({"key": "pool", "value": "burst", "effect": "NoSchedule"})
    return yaml.safe_dump(obj)


def test_variants_cover_every_cause_and_differ():
    assert {variant(s).cause for s in range(len(CAUSES))} == set(CAUSES)
    assert len({variant(s) for s in (0, 1, 2)}) == 3
    with pytest.raises(ValueError):
        variant(-1)


def test_the_deployed_manifest_is_valid_kubernetes():
    for seed in SEEDS:
        assert manifests.schema_errors(yaml.safe_load(cluster.manifest(variant(seed)))) == []


@pytest.mark.parametrize("seed", SEEDS)
def test_the_new_replica_stays_pending(seed):
    incident = cluster.incident(variant(seed))
    assert incident.pod.node_name == ""
    assert incident.message.startswith("0/")
    assert incident.cluster.events_for(incident.pod)[-1].count == 6


def test_two_causes_print_the_same_reasons():
    idle, broken = cluster.incident(variant(5)), cluster.incident(variant(7))
    assert (variant(5).cause, variant(7).cause) == ("idle_pod", "unhealthy_device")
    assert idle.message == broken.message  # only the node evidence tells them apart


@pytest.mark.parametrize("seed", SEEDS)
def test_the_cause_specific_fix_schedules_and_evicts_only_the_idle_pod(seed):
    v = variant(seed)
    outcome = cluster.apply(v, _fix(v))
    assert outcome.errors == ()
    assert outcome.node is not None, outcome.message
    assert outcome.pool == ("burst" if v.cause == "unhealthy_device" else "serving")
    assert outcome.evicted == ((v.idle_pod,) if v.cause == "idle_pod" else ())


def test_applying_the_incident_manifest_changes_nothing():
    v = variant(1)
    outcome = cluster.apply(v, cluster.manifest(v))
    assert outcome.node is None and outcome.evicted == ()


def test_a_manifest_the_api_server_refuses_is_not_scheduled():
    v = variant(1)
    bad = cluster.manifest(v).replace("tolerations:", "toleration:")
    outcome = cluster.apply(v, bad)
    assert outcome.node is None and outcome.errors
    assert cluster.apply(v, "not: [yaml").errors
    pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c}]}\n"
    assert "Deployment" in cluster.apply(v, pod).errors[0]


def test_tolerating_everything_lands_on_the_burst_pool_when_it_is_free():
    v = variant(0)  # idle pod: no serving room, the burst node has room
    obj = yaml.safe_load(cluster.manifest(v))
    obj["spec"]["template"]["spec"]["tolerations"] = [{"operator": "Exists"}]
    outcome = cluster.apply(v, yaml.safe_dump(obj))
    assert outcome.pool == "burst"
