"""Lab 299's variants: what a seed changes, the production and staging manifests, the facts."""

from __future__ import annotations

import pytest

from labsupport.k8s import manifests
from labsupport.scenarios.errors_during_rollout import (
    LONGEST_ANSWER_S,
    Variant,
    incident_page,
    variant,
)
from labsupport.scenarios.errors_during_rollout import settings as rs


@pytest.mark.parametrize("seed", range(12))
def test_every_variant_has_valid_manifests_that_differ_in_termination(seed):
    v = variant(seed)
    assert v == variant(seed) and isinstance(v, Variant)
    assert v.replicas in (2, 3) and v.spare_gpus in (0, 1)
    assert v.longest_answer_s == LONGEST_ANSWER_S[v.max_tokens]
    prod, staging = rs.settings(v.production), rs.settings(v.staging)
    manifests.validate(v.production, require_command=False)
    assert prod["replicas"] == staging["replicas"] == v.replicas
    assert prod["pre_stop"] is None and staging["pre_stop"] is None
    assert (prod["drain_s"], prod["grace_s"]) == (v.server_budget_s, v.grace_s)
    assert (prod["drain_s"] == 0) != (staging["drain_s"] == 0)
    # production's strategy fits the node: a surge pod only where a GPU is free
    assert prod["max_surge"] <= v.spare_gpus and prod["max_surge"] + prod["max_unavailable"] > 0


def test_the_three_first_seeds_are_three_different_incidents():
    vs = [variant(s) for s in range(3)]
    assert len({(v.replicas, v.node_gpus, v.propagation_s, v.max_tokens) for v in vs}) == 3
    assert {v.server_budget_s == 0 for v in vs} == {True, False}
    assert {v.spare_gpus for v in vs} == {0, 1}


def test_bad_seeds_are_refused():
    for bad in (-1, 1.5, True, "0"):
        with pytest.raises(ValueError):
            variant(bad)


def test_the_incident_page_gives_facts_not_causes():
    v = variant(1)
    page = incident_page(v)
    assert f"{v.replicas} replicas" in page and f"{v.node_gpus} allocatable GPUs" in page
    assert f"takes {v.longest_answer_s} s" in page
    for word in ("preStop", "drain", "propagation", "grace"):
        assert word.lower() not in page.lower()
    assert v.facts()["node_gpus"] == v.node_gpus
