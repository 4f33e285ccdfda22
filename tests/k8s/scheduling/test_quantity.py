"""Resource quantities: parsed as the scheduler's framework.Resource keeps them, printed back."""

from __future__ import annotations

import pytest

from labsupport.k8s.scheduling.quantity import QuantityError, format_value, is_integer, parse


@pytest.mark.parametrize(
    "resource,value,want",
    [
        ("cpu", "1500m", 1500),
        ("cpu", "2", 2000),
        ("cpu", 0.5, 500),
        ("cpu", "0.0001", 1),  # MilliValue rounds up
        ("memory", "64Gi", 64 * 2**30),
        ("memory", "1G", 10**9),
        ("memory", "1e3", 1000),
        ("memory", "128974848", 128974848),
        ("nvidia.com/gpu", 2, 2),
        ("nvidia.com/gpu", "8", 8),
        ("nvidia.com/mig-1g.10gb", "7", 7),
        ("ephemeral-storage", "1.5Ki", 1536),
    ],
)
def test_parse(resource, value, want):
    assert parse(resource, value) == want


@pytest.mark.parametrize("bad", ["1 GB", "abc", "1.2.3", "Gi", "", True, "1gi"])
def test_parse_refuses_what_the_api_refuses(bad):
    with pytest.raises(QuantityError):
        parse("memory", bad)


def test_extended_resources_must_be_whole():
    assert is_integer("2") and is_integer(4)
    assert not is_integer("500m") and not is_integer(0.5)


@pytest.mark.parametrize(
    "resource,value,want",
    [
        ("cpu", 96000, "96"),
        ("cpu", 1500, "1500m"),
        ("memory", 2 * 2**30, "2Gi"),
        ("memory", 1536 * 2**20, "1536Mi"),
        ("memory", 1000, "1000"),
        ("nvidia.com/gpu", 8, "8"),
        ("pods", 110, "110"),
    ],
)
def test_format_value(resource, value, want):
    assert format_value(resource, value) == want
