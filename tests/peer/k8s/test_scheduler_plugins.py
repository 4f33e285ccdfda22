"""Peer cases: kube-scheduler's filter plugins, ported from their own unit-test tables.

Run against `labsupport.k8s.scheduling.plugins`. Sources (kubernetes/kubernetes):
- pkg/scheduler/framework/plugins/tainttoleration/taint_toleration_test.go
  @ cb6ff2d8ce3595f88570f82c7d0e6d98910afd3c: TestTaintTolerationFilter, TestTaintTolerationScore.
  At that commit the reason named the taint ("node(s) had untolerated taint {dedicated: user1}");
  the current taint_toleration.go (index copy, after kubernetes#134740) says
  "node(s) had untolerated taint(s)", which is what the model writes and what is asserted here.
- pkg/scheduler/framework/plugins/nodeunschedulable/node_unschedulable_test.go
  @ b574b11f6b28f06e17333bb110e9374db3259bad: TestNodeUnschedulable.
- pkg/scheduler/framework/plugins/nodeaffinity/node_affinity_test.go
  @ 17bae91f207a5f2b101e581c90f7a72fc9adef96: TestNodeAffinity (the first 20 cases: node
  selectors, matchExpressions, matchFields and the PreFilter's node names).
- pkg/scheduler/framework/plugins/noderesources/fit_test.go
  @ 24fbb13eafec665e6f4b64961930774babd8b6d1: TestEnoughRequests (cpu, memory, init containers,
  extended resources). That table predates the `Unresolvable` flag of fit.go: a request above the
  node's allocatable is UnschedulableAndUnresolvable in the current fit.go (index copy,
  `Unresolvable: podRequest.X > nodeInfo.GetAllocatable().X`), so the code asserted follows it.
"""

from __future__ import annotations

import pytest

from labsupport.k8s.scheduling.labels import Requirement, Term
from labsupport.k8s.scheduling.objects import Container, Node, Pod, Taint, Toleration
from labsupport.k8s.scheduling.plugins import (
    UNRESOLVABLE,
    UNSCHEDULABLE,
    NodeInfo,
    _normalize,
    _taint_score,
    node_affinity,
    node_resources_fit,
    node_unschedulable,
    taint_toleration,
)
from labsupport.k8s.scheduling.scheduler import prefilter_node_names

TAINT_REASON = "node(s) had untolerated taint(s)"
AFFINITY_REASON = "node(s) didn't match Pod's node affinity/selector"


def _tol(key, value="", effect="", operator="Equal"):
    return Toleration(key, operator, value, effect)


# ---- TaintToleration ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "tolerations,taints,fails",
    [
        pytest.param([], [Taint("dedicated", "user1", "NoSchedule")], True, id="no-tolerations"),
        pytest.param(
            [_tol("dedicated", "user1", "NoSchedule")],
            [Taint("dedicated", "user1", "NoSchedule")],
            False,
            id="dedicated-user1",
        ),
        pytest.param(
            [_tol("dedicated", "user2", "NoSchedule")],
            [Taint("dedicated", "user1", "NoSchedule")],
            True,
            id="dedicated-user2-vs-user1",
        ),
        pytest.param(
            [_tol("foo", "", "NoSchedule", "Exists")],
            [Taint("foo", "bar", "NoSchedule")],
            False,
            id="exists",
        ),
        pytest.param(
            [_tol("dedicated", "user2", "NoSchedule"), _tol("foo", "", "NoSchedule", "Exists")],
            [Taint("dedicated", "user2", "NoSchedule"), Taint("foo", "bar", "NoSchedule")],
            False,
            id="multiple-all-tolerated",
        ),
        pytest.param(
            [_tol("foo", "bar", "PreferNoSchedule")],
            [Taint("foo", "bar", "NoSchedule")],
            True,
            id="effect-mismatch",
        ),
        pytest.param(
            [_tol("foo", "bar")], [Taint("foo", "bar", "NoSchedule")], False, id="empty-effect"
        ),
        pytest.param(
            [_tol("dedicated", "user2", "NoSchedule")],
            [Taint("dedicated", "user1", "PreferNoSchedule")],
            False,
            id="prefer-no-schedule-ignored",
        ),
        pytest.param(
            [], [Taint("dedicated", "user1", "PreferNoSchedule")], False, id="no-tol-prefer"
        ),
    ],
)
def test_taint_toleration_filter(tolerations, taints, fails):
    """TestTaintTolerationFilter (taint_toleration_test.go @ cb6ff2d8)."""
    pod = Pod("pod1", tolerations=tuple(tolerations))
    status = taint_toleration(pod, NodeInfo(Node("nodeA", taints=taints)))
    if fails:
        assert (status.code, status.reasons) == (UNRESOLVABLE, (TAINT_REASON,))
    else:
        assert status.ok


def _prefer(key, value):
    return Taint(key, value, "PreferNoSchedule")


@pytest.mark.parametrize(
    "tolerations,nodes,want",
    [
        pytest.param(
            [_tol("foo", "bar", "PreferNoSchedule")],
            {"nodeA": [_prefer("foo", "bar")], "nodeB": [_prefer("foo", "blah")]},
            {"nodeA": 100, "nodeB": 0},
            id="tolerated-scores-higher",
        ),
        pytest.param(
            [
                _tol("cpu-type", "arm64", "PreferNoSchedule"),
                _tol("disk-type", "ssd", "PreferNoSchedule"),
            ],
            {
                "nodeA": [],
                "nodeB": [_prefer("cpu-type", "arm64")],
                "nodeC": [_prefer("cpu-type", "arm64"), _prefer("disk-type", "ssd")],
            },
            {"nodeA": 100, "nodeB": 100, "nodeC": 100},
            id="tolerated-count-does-not-matter",
        ),
        pytest.param(
            [_tol("foo", "bar", "PreferNoSchedule")],
            {
                "nodeA": [],
                "nodeB": [_prefer("cpu-type", "arm64")],
                "nodeC": [_prefer("cpu-type", "arm64"), _prefer("disk-type", "ssd")],
            },
            {"nodeA": 100, "nodeB": 50, "nodeC": 0},
            id="more-intolerable-lower",
        ),
        pytest.param(
            [_tol("cpu-type", "arm64", "NoSchedule"), _tol("disk-type", "ssd", "NoSchedule")],
            {
                "nodeA": [],
                "nodeB": [Taint("cpu-type", "arm64", "NoSchedule")],
                "nodeC": [_prefer("cpu-type", "arm64"), _prefer("disk-type", "ssd")],
            },
            {"nodeA": 100, "nodeB": 100, "nodeC": 0},
            id="only-prefer-no-schedule-counts",
        ),
        pytest.param(
            [],
            {"nodeA": [], "nodeB": [_prefer("cpu-type", "arm64")]},
            {"nodeA": 100, "nodeB": 0},
            id="default-no-taints",
        ),
    ],
)
def test_taint_toleration_score(tolerations, nodes, want):
    """TestTaintTolerationScore (taint_toleration_test.go @ cb6ff2d8): raw count of
    intolerable PreferNoSchedule taints, normalized in reverse (DefaultNormalizeScore)."""
    pod = Pod("pod1", tolerations=tuple(tolerations))
    raw = {name: _taint_score(pod, Node(name, taints=taints)) for name, taints in nodes.items()}
    assert _normalize(raw, reverse=True) == want


# ---- NodeUnschedulable --------------------------------------------------------------------
@pytest.mark.parametrize(
    "unschedulable,tolerations,fails",
    [
        pytest.param(True, (), True, id="unschedulable-node"),
        pytest.param(False, (), False, id="normal-node"),
        pytest.param(
            True,
            (_tol("node.kubernetes.io/unschedulable", "", "NoSchedule"),),
            False,
            id="tolerated",
        ),
    ],
)
def test_node_unschedulable(unschedulable, tolerations, fails):
    """TestNodeUnschedulable (node_unschedulable_test.go @ b574b11f)."""
    pod = Pod("p", tolerations=tolerations)
    status = node_unschedulable(pod, NodeInfo(Node("n", unschedulable=unschedulable)))
    if fails:
        assert (status.code, status.reasons) == (UNRESOLVABLE, ("node(s) were unschedulable",))
    else:
        assert status.ok


# ---- NodeAffinity -------------------------------------------------------------------------
def _term(*exprs, fields=()):
    return Term(tuple(Requirement(k, op, tuple(v)) for k, op, v in exprs),
                tuple(Requirement(k, op, tuple(v)) for k, op, v in fields))  # fmt: skip


NAME = "metadata.name"


@pytest.mark.parametrize(
    "selector,terms,labels,node,fits,prefilter",
    [
        pytest.param({"foo": "bar"}, None, {}, "", False, None, id="missing-labels"),
        pytest.param({"foo": "bar"}, None, {"foo": "bar"}, "", True, None, id="same-labels"),
        pytest.param(
            {"foo": "bar"},
            None,
            {"foo": "bar", "baz": "blah"},
            "",
            True,
            None,
            id="labels-superset",
        ),  # fmt: skip
        pytest.param(
            {"foo": "bar", "baz": "blah"}, None, {"foo": "bar"}, "", False, None, id="labels-subset"
        ),  # fmt: skip
        pytest.param(
            {},
            [_term(("foo", "In", ["bar", "value2"]))],
            {"foo": "bar"},
            "",
            True,
            None,
            id="in-matches",
        ),  # fmt: skip
        pytest.param(
            {},
            [_term(("kernel-version", "Gt", ["0204"]))],
            {"kernel-version": "0206"},
            "",
            True,
            None,
            id="gt-matches",
        ),  # fmt: skip
        pytest.param(
            {},
            [_term(("mem-type", "NotIn", ["DDR", "DDR2"]))],
            {"mem-type": "DDR3"},
            "",
            True,
            None,
            id="notin-matches",
        ),  # fmt: skip
        pytest.param(
            {},
            [_term(("GPU", "Exists", []))],
            {"GPU": "NVIDIA-GRID-K1"},
            "",
            True,
            None,
            id="exists-matches",
        ),  # fmt: skip
        pytest.param(
            {},
            [_term(("foo", "In", ["value1", "value2"]))],
            {"foo": "bar"},
            "",
            False,
            None,
            id="in-does-not-match",
        ),  # fmt: skip
        pytest.param({}, [_term()], {"foo": "bar"}, "", False, None, id="empty-term"),
        pytest.param({}, None, {"foo": "bar"}, "", True, None, id="no-affinity"),
        pytest.param(
            {},
            [_term(("GPU", "Exists", []), ("GPU", "NotIn", ["AMD", "INTER"]))],
            {"GPU": "NVIDIA-GRID-K1"},
            "",
            True,
            None,
            id="anded-match",
        ),  # fmt: skip
        pytest.param(
            {},
            [_term(("GPU", "Exists", []), ("GPU", "In", ["AMD", "INTER"]))],
            {"GPU": "NVIDIA-GRID-K1"},
            "",
            False,
            None,
            id="anded-no-match",
        ),  # fmt: skip
        pytest.param(
            {},
            [
                _term(("foo", "In", ["bar", "value2"])),
                _term(("diffkey", "In", ["wrong", "value2"])),
            ],
            {"foo": "bar"},
            "",
            True,
            None,
            id="ored-terms",
        ),  # fmt: skip
        pytest.param(
            {"foo": "bar"},
            [_term(("foo", "Exists", []))],
            {"foo": "bar"},
            "",
            True,
            None,
            id="affinity-and-selector",
        ),  # fmt: skip
        pytest.param(
            {"foo": "bar"},
            [_term(("foo", "Exists", []))],
            {"foo": "barrrrrr"},
            "",
            False,
            None,
            id="affinity-but-not-selector",
        ),  # fmt: skip
        pytest.param(
            {},
            [_term(("foo", "NotIn", ["invalid value: ___@#$%^"]))],
            {"foo": "bar"},
            "",
            False,
            None,
            id="invalid-value",
        ),  # fmt: skip
        pytest.param(
            {},
            [_term(fields=[(NAME, "In", ["node1"])])],
            {},
            "node1",
            True,
            {"node1"},
            id="fields-in-matches",
        ),  # fmt: skip
        pytest.param(
            {},
            [_term(fields=[(NAME, "In", ["node1"])])],
            {},
            "node2",
            False,
            {"node1"},
            id="fields-in-does-not-match",
        ),  # fmt: skip
        pytest.param(
            {},
            [
                _term(fields=[(NAME, "In", ["node1"]), (NAME, "In", ["node2"])]),
                _term(("foo", "In", ["bar"])),
            ],
            {"foo": "bar"},
            "node2",
            True,
            None,
            id="two-terms-expressions-match",
        ),  # fmt: skip
    ],
)
def test_node_affinity(selector, terms, labels, node, fits, prefilter):
    """TestNodeAffinity (node_affinity_test.go @ 17bae91f), Filter and PreFilter result."""
    pod = Pod("p", node_selector=selector, required_terms=None if terms is None else tuple(terms))
    status = node_affinity(pod, NodeInfo(Node(node, labels=labels)))
    if fits:
        assert status.ok
    else:
        assert (status.code, status.reasons) == (UNRESOLVABLE, (AFFINITY_REASON,))
    assert prefilter_node_names(pod) == prefilter


# ---- NodeResourcesFit ---------------------------------------------------------------------
EXT_A = "example.com/aaa"
ALLOCATABLE = {
    "cpu": 10,
    "memory": 20,
    "pods": 32,
    EXT_A: 5,
    "ephemeral-storage": 20,
    "hugepages-2Mi": 5,
}  # fmt: skip  (makeAllocatableResources(10, 20, 32, 5, 20, 5))


def _c(cpu=0, mem=0, a=0):
    """A container requesting cpu (millicores), memory and `a` of example.com/aaa."""
    requests = {"cpu": cpu, "memory": mem, EXT_A: a}
    return Container("c", requests={r: v for r, v in requests.items() if v})


def _pod(containers=(), init=()):
    return Pod("p", containers=list(containers), init_containers=list(init))


def _node_with(*containers):
    """framework.NewNodeInfo(newResourcePod(...)): one pod with these containers."""
    return NodeInfo(Node("n", allocatable=dict(ALLOCATABLE)), [_pod(containers)])


@pytest.mark.parametrize(
    "pod,used,code,reasons",
    [
        pytest.param(_pod(), [_c(10, 20)], None, (), id="no-requests-fits"),
        pytest.param(
            _pod([_c(1, 1)]),
            [_c(10, 20)],
            UNSCHEDULABLE,
            ("Insufficient cpu", "Insufficient memory"),
            id="too-many",
        ),  # fmt: skip
        pytest.param(
            _pod([_c(1, 1)], [_c(3, 1)]),
            [_c(8, 19)],
            UNSCHEDULABLE,
            ("Insufficient cpu",),
            id="init-container-cpu",
        ),  # fmt: skip
        pytest.param(
            _pod([_c(1, 1)], [_c(3, 1), _c(2, 1)]),
            [_c(8, 19)],
            UNSCHEDULABLE,
            ("Insufficient cpu",),
            id="highest-init-container-cpu",
        ),  # fmt: skip
        pytest.param(
            _pod([_c(1, 1)], [_c(1, 3)]),
            [_c(9, 19)],
            UNSCHEDULABLE,
            ("Insufficient memory",),
            id="init-container-memory",
        ),  # fmt: skip
        pytest.param(
            _pod([_c(1, 1)], [_c(1, 3), _c(1, 2)]),
            [_c(9, 19)],
            UNSCHEDULABLE,
            ("Insufficient memory",),
            id="highest-init-container-memory",
        ),  # fmt: skip
        pytest.param(
            _pod([_c(1, 1)], [_c(1, 1)]), [_c(9, 19)], None, (), id="init-max-not-sum"
        ),  # fmt: skip
        pytest.param(
            _pod([_c(1, 1)], [_c(1, 1), _c(1, 1)]),
            [_c(9, 19)],
            None,
            (),
            id="multiple-init-max-not-sum",
        ),  # fmt: skip
        pytest.param(_pod([_c(1, 1)]), [_c(5, 5)], None, (), id="both-fit"),
        pytest.param(
            _pod([_c(2, 1)]), [_c(9, 5)], UNSCHEDULABLE, ("Insufficient cpu",), id="memory-fits"
        ),  # fmt: skip
        pytest.param(
            _pod([_c(1, 2)]), [_c(5, 19)], UNSCHEDULABLE, ("Insufficient memory",), id="cpu-fits"
        ),  # fmt: skip
        pytest.param(_pod([_c(5, 1)]), [_c(5, 19)], None, (), id="equal-edge"),
        pytest.param(
            _pod([_c(4, 1)], [_c(5, 1)]), [_c(5, 19)], None, (), id="equal-edge-init"
        ),  # fmt: skip
        pytest.param(_pod([_c(a=1)]), [_c()], None, (), id="extended-fits"),
        pytest.param(_pod([], [_c(a=1)]), [_c()], None, (), id="extended-fits-init"),
        pytest.param(
            _pod([_c(1, 1, a=10)]),
            [_c()],
            UNRESOLVABLE,
            (f"Insufficient {EXT_A}",),
            id="extended-capacity-enforced",
        ),  # fmt: skip
        pytest.param(
            _pod([], [_c(1, 1, a=10)]),
            [_c()],
            UNRESOLVABLE,
            (f"Insufficient {EXT_A}",),
            id="extended-capacity-enforced-init",
        ),  # fmt: skip
        pytest.param(
            _pod([_c(1, 1, a=1)]),
            [_c(a=5)],
            UNSCHEDULABLE,
            (f"Insufficient {EXT_A}",),
            id="extended-allocatable-enforced",
        ),  # fmt: skip
        pytest.param(
            _pod([], [_c(1, 1, a=1)]),
            [_c(a=5)],
            UNSCHEDULABLE,
            (f"Insufficient {EXT_A}",),
            id="extended-allocatable-enforced-init",
        ),  # fmt: skip
        pytest.param(
            _pod([_c(1, 1, a=3), _c(1, 1, a=3)]),
            [_c(a=2)],
            UNRESOLVABLE,
            (f"Insufficient {EXT_A}",),
            id="extended-multiple-containers",
        ),  # fmt: skip
        pytest.param(
            _pod([], [_c(1, 1, a=3), _c(1, 1, a=3)]),
            [_c(a=2)],
            None,
            (),
            id="extended-admits-multiple-init",
        ),  # fmt: skip
    ],
)
def test_enough_requests(pod, used, code, reasons):
    """TestEnoughRequests (fit_test.go @ 24fbb13e); the code follows the current fit.go."""
    status = node_resources_fit(pod, _node_with(*used))
    if code is None:
        assert status.ok
    else:
        assert (status.code, status.reasons) == (code, reasons)
