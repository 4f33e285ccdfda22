"""Node selector requirements: parse errors, operators, terms ORed and requirements ANDed."""

from __future__ import annotations

import pytest

from labsupport.k8s.scheduling.labels import (
    Requirement,
    Term,
    label_value_errors,
    matches_selector,
    matches_terms,
    qualified_name_errors,
    term_from_dict,
)


@pytest.mark.parametrize(
    "req,labels,want",
    [
        (Requirement("a", "In", ("x", "y")), {"a": "y"}, True),
        (Requirement("a", "In", ("x",)), {}, False),
        (Requirement("a", "NotIn", ("x",)), {}, True),  # absent key: NotIn matches
        (Requirement("a", "NotIn", ("x",)), {"a": "x"}, False),
        (Requirement("a", "Exists"), {"a": ""}, True),
        (Requirement("a", "DoesNotExist"), {"a": ""}, False),
        (Requirement("a", "Gt", ("3",)), {"a": "10"}, True),
        (Requirement("a", "Lt", ("3",)), {"a": "10"}, False),
        (Requirement("a", "Gt", ("3",)), {"a": "ten"}, False),  # not an integer
        (Requirement("a", "Gt", ("3",)), {}, False),
    ],
)
def test_requirement_matches(req, labels, want):
    assert req.matches(labels) is want


@pytest.mark.parametrize(
    "req",
    [
        Requirement("a", "In", ()),
        Requirement("a", "Exists", ("x",)),
        Requirement("a", "Gt", ("1", "2")),
        Requirement("a", "Gt", ("x",)),
        Requirement("a", "Equals", ("x",)),
        Requirement("bad key!", "Exists"),
        Requirement("a", "In", ("not valid!",)),
    ],
)
def test_a_requirement_that_does_not_parse_makes_its_term_match_nothing(req):
    assert req.parse_error()
    assert not Term((req,)).matches({"a": "1"}, "n")


def test_terms_are_ored_and_an_empty_list_matches_nothing():
    t1, t2 = Term((Requirement("a", "In", ("1",)),)), Term((Requirement("b", "Exists"),))
    assert matches_terms([t1, t2], {"b": "x"}, "n")
    assert not matches_terms([], {"b": "x"}, "n")


def test_node_selector_needs_every_key_equal():
    assert matches_selector({"a": "1", "b": "2"}, {"a": "1", "b": "2", "c": "3"})
    assert not matches_selector({"a": "1"}, {"a": "10"})
    assert not matches_selector({"nvidia.com/gpu.product": "H100"}, {})


def test_names_and_values_are_validated_as_the_api_does():
    assert qualified_name_errors("nvidia.com/gpu.product") == []
    assert qualified_name_errors("Nvidia.com/gpu")  # the prefix must be lowercase
    assert qualified_name_errors("a/b/c")
    assert label_value_errors("NVIDIA-H100-80GB-HBM3") == []
    assert label_value_errors("-x") and label_value_errors("x" * 64)


def test_term_from_dict_reads_expressions_and_fields():
    term = term_from_dict({
        "matchExpressions": [{"key": "gpu", "operator": "In", "values": ["h100"]}],
        "matchFields": [{"key": "metadata.name", "operator": "In", "values": ["gpu-a1"]}],
    })  # fmt: skip
    assert term.matches({"gpu": "h100"}, "gpu-a1")
    assert not term.matches({"gpu": "h100"}, "gpu-a2")
