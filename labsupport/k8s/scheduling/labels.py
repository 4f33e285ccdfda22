"""Label selectors as the scheduler evaluates them: node selectors, node affinity terms.

    >>> from labsupport.k8s.scheduling.labels import Requirement, Term, matches_terms
    >>> h100 = Requirement("nvidia.com/gpu.product", "In", ("NVIDIA-H100-80GB-HBM3",))
    >>> term = Term(expressions=(h100,))
    >>> matches_terms([term], {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}, "gpu-a1")
    True
    >>> Requirement("kernel-version", "Gt", ("0204",)).matches({"kernel-version": "0206"})
    True

Semantics from k8s.io/apimachinery/pkg/labels (selector.go: `NewRequirement`, `Matches`) and
k8s.io/component-helpers/scheduling/corev1/nodeaffinity (nodeaffinity.go): the terms of a node
selector are ORed and a term's requirements ANDed; an empty term matches nothing; a term whose
requirements do not parse (an invalid value, a Gt with two values) matches nothing either;
`NotIn` and `DoesNotExist` match a node without the key; `Gt`/`Lt` compare integers and fail on a
label that is not one. `matchFields` supports `metadata.name` with `In`/`NotIn` and one value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt")
_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)


def label_value_errors(value: str) -> list[str]:
    """Why `value` is not a valid label value ([] if it is), validation.IsValidLabelValue."""
    errors = []
    if len(value) > 63:
        errors.append("must be no more than 63 characters")
    if value and not _NAME.match(value):
        errors.append(
            "a valid label must be an empty string or consist of alphanumeric characters, "
            "'-', '_' or '.', and must start and end with an alphanumeric character"
        )
    return errors


def qualified_name_errors(key: str) -> list[str]:
    """Why `key` is not a valid label key ([] if it is), validation.IsQualifiedName."""
    prefix, _, name = key.rpartition("/")
    errors = []
    if "/" in name or key.count("/") > 1:
        return ["a qualified name must consist of alphanumeric characters, '-', '_' or '.'"]
    if not name:
        errors.append("name part must be non-empty")
    elif len(name) > 63:
        errors.append("name part must be no more than 63 characters")
    elif not _NAME.match(name):
        errors.append(
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must "
            "start and end with an alphanumeric character"
        )
    if key.count("/") == 1 and (len(prefix) > 253 or not _DNS1123_SUBDOMAIN.match(prefix)):
        errors.append("prefix part must be a lowercase RFC 1123 subdomain")
    return errors


@dataclass(frozen=True)
class Requirement:
    """One `matchExpressions` (or `matchFields`) entry."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    def parse_error(self) -> str | None:
        """Why labels.NewRequirement refuses it, or None."""
        if qualified_name_errors(self.key):
            return f"key {self.key!r}: {qualified_name_errors(self.key)[0]}"
        if self.operator not in OPERATORS:
            return f"{self.operator!r} is not a valid node selector operator"
        if self.operator in ("In", "NotIn") and not self.values:
            return "for 'in', 'notin' operators, values set can't be empty"
        if self.operator in ("Exists", "DoesNotExist") and self.values:
            return "values set must be empty for exists and does not exist"
        if self.operator in ("Gt", "Lt"):
            if len(self.values) != 1:
                return "for 'Gt', 'Lt' operators, exactly one value is required"
            try:
                int(self.values[0])
            except ValueError:
                return "for 'Gt', 'Lt' operators, the value must be an integer"
        for v in self.values if self.operator in ("In", "NotIn") else ():
            if label_value_errors(v):
                return f"values[{v!r}]: {label_value_errors(v)[0]}"
        return None

    def matches(self, labels: dict[str, str]) -> bool:
        has = self.key in labels
        if self.operator == "In":
            return has and labels[self.key] in self.values
        if self.operator == "NotIn":
            return not has or labels[self.key] not in self.values
        if self.operator == "Exists":
            return has
        if self.operator == "DoesNotExist":
            return not has
        if not has:
            return False
        try:
            mine, theirs = int(labels[self.key]), int(self.values[0])
        except ValueError:
            return False
        return mine > theirs if self.operator == "Gt" else mine < theirs


@dataclass(frozen=True)
class Term:
    """A NodeSelectorTerm: expressions on labels and fields on the node's name, ANDed."""

    expressions: tuple[Requirement, ...] = ()
    fields: tuple[Requirement, ...] = ()

    def parse_error(self) -> str | None:
        for r in self.expressions:
            if r.parse_error():
                return r.parse_error()
        for r in self.fields:
            if r.key != "metadata.name" or r.operator not in ("In", "NotIn"):
                return f"{r.operator!r} is not a valid node field selector operator"
            if len(r.values) != 1:
                return (
                    f"unexpected number of value ({len(r.values)}) for node field selector "
                    f"operator {r.operator!r}"
                )
        return None

    def matches(self, labels: dict[str, str], node_name: str) -> bool:
        if not self.expressions and not self.fields:
            return False  # nil or empty term selects no objects
        if self.parse_error():
            return False
        if not all(r.matches(labels) for r in self.expressions):
            return False
        for r in self.fields:
            equal = node_name == r.values[0]
            if not node_name:  # a node without a name has no fields to refuse
                continue
            if equal != (r.operator == "In"):
                return False
        return True


def matches_terms(terms, labels: dict[str, str], node_name: str) -> bool:
    """A required node affinity: the terms ORed (no terms: nothing matches)."""
    return any(t.matches(labels, node_name) for t in terms)


def matches_selector(selector: dict[str, str], labels: dict[str, str]) -> bool:
    """A pod's `nodeSelector` (labels.SelectorFromSet): every key equal."""
    return all(k in labels and labels[k] == v for k, v in selector.items())


def term_from_dict(raw: dict) -> Term:
    """A NodeSelectorTerm from its manifest form."""

    def reqs(items):
        return tuple(
            Requirement(
                r.get("key", ""), r.get("operator", ""), tuple(map(str, r.get("values") or ()))
            )
            for r in items or ()
        )

    return Term(reqs(raw.get("matchExpressions")), reqs(raw.get("matchFields")))
