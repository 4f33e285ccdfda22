import pytest

from labsupport import hints, labs


@pytest.mark.parametrize("lab", labs.done(), ids=lambda lab: lab.slug)
def test_hint_levels_are_shown_and_bounded(lab, capsys):
    table = hints.table(lab)
    name, ladder = next(iter(table.items()))
    assert hints.hint(lab, 1, name) == ladder[0]
    assert f"Hint 1/{len(ladder)}" in capsys.readouterr().out
    with pytest.raises(ValueError):
        hints.hint(lab, len(ladder) + 1, name)
    with pytest.raises(LookupError):
        hints.hint(lab, 1, "no_such_exercise")


def test_a_lab_without_hints_says_so():
    with pytest.raises(LookupError, match="no hints"):
        hints.hint(300, 1)
