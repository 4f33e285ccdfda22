"""Kubernetes resource quantities: parsed into integers the scheduler compares, printed back.

    >>> from labsupport.k8s.scheduling.quantity import parse, format_value
    >>> parse("cpu", "1500m"), parse("memory", "64Gi"), parse("nvidia.com/gpu", 2)
    (1500, 68719476736, 2)
    >>> format_value("cpu", 96000), format_value("memory", 2 * 2**30), format_value("pods", 110)
    ('96', '2Gi', '110')

CPU is kept in millicores (`Quantity.MilliValue()`, rounded up), everything else in whole units
(`Quantity.Value()`, rounded up), as the scheduler's `framework.Resource` keeps them. The
suffixes are the API's (k8s.io/apimachinery/pkg/api/resource/quantity.go): decimal m, k, M, G,
T, P, E and binary Ki, Mi, Gi, Ti, Pi, Ei, and decimal exponents (`1e3`). `format_value`
prints a quantity the way kubectl does for the usual cases: cores or millicores, bytes in the
largest binary unit that divides them.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

_SUFFIX = {
    "": Fraction(1),
    "m": Fraction(1, 1000),
    "k": Fraction(10**3),
    "M": Fraction(10**6),
    "G": Fraction(10**9),
    "T": Fraction(10**12),
    "P": Fraction(10**15),
    "E": Fraction(10**18),
    **{s: Fraction(1024**i) for i, s in enumerate(("Ki", "Mi", "Gi", "Ti", "Pi", "Ei"), 1)},
}
_QUANTITY = re.compile(
    r"^([+-]?(?:\d+\.?\d*|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|[mkMGTPE]))?$"
)
_BINARY = (("Ei", 1024**6), ("Pi", 1024**5), ("Ti", 1024**4), ("Gi", 1024**3), ("Mi", 1024**2),
           ("Ki", 1024))  # fmt: skip


class QuantityError(ValueError):
    pass


def amount(value) -> Fraction:
    """The exact amount a quantity (string or number) stands for."""
    if isinstance(value, bool):
        raise QuantityError(f"quantities must match the regular expression, got {value!r}")
    if isinstance(value, int):
        return Fraction(value)
    if isinstance(value, float):
        return Fraction(str(value))
    m = _QUANTITY.match(str(value).strip()) if isinstance(value, str) else None
    if not m:
        raise QuantityError(
            f"quantities must match the regular expression "
            f"'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$', got {value!r}"
        )
    number, exponent, suffix = m.groups()
    scale = Fraction(10) ** int(exponent[1:]) if exponent else _SUFFIX[suffix or ""]
    return Fraction(number) * scale


def parse(resource: str, value) -> int:
    """The integer the scheduler keeps: millicores for cpu, whole units for the rest."""
    exact = amount(value)
    return math.ceil(exact * 1000) if resource == "cpu" else math.ceil(exact)


def is_integer(value) -> bool:
    """Whether the quantity is a whole number (extended resources must be)."""
    return amount(value).denominator == 1


def format_value(resource: str, value: int) -> str:
    """A scheduler integer printed as kubectl prints the quantity."""
    if resource == "cpu":
        return str(value // 1000) if value % 1000 == 0 else f"{value}m"
    if resource in ("memory", "ephemeral-storage") or resource.startswith("hugepages-"):
        for suffix, size in _BINARY:
            if value and value % size == 0:
                return f"{value // size}{suffix}"
    return str(value)
