"""Go's text/tabwriter as kubectl uses it: cells padded per block of lines, the last never."""

from __future__ import annotations

from labsupport.k8s.scheduling.tabwriter import align


def test_columns_align_over_consecutive_lines_only():
    text = "Name:\tp\nNamespace:\tdefault\n\nA:\tx\n"
    assert align(text).split("\n") == ["Name:       p", "Namespace:  default", "", "A:  x", ""]


def test_the_text_after_the_last_tab_is_not_padded():
    out = align("Type\tReason\tMessage\n----\t------\t-------\nWarning\tFailedScheduling\t0/3\n")
    assert out.split("\n")[:3] == [
        "Type     Reason            Message",
        "----     ------            -------",
        "Warning  FailedScheduling  0/3",
    ]


def test_padding_and_minwidth():
    assert align("a\tb\n", padding=3) == "a   b\n"
    assert align("a\tb\n", padding=1, minwidth=4) == "a   b\n"
