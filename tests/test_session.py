import pytest

from labsupport import session


def test_begin_sets_the_variant_for_that_lab_only():
    s = session.begin("290", seed=4, record=False)
    assert s.seed == 4 and session.current() is s
    assert session.seed_for(290) == 4
    assert session.seed_for(276) == 0  # another lab: its default


def test_bad_seeds_and_scales_are_refused(monkeypatch):
    with pytest.raises(ValueError, match="non-negative integer"):
        session.begin("290", seed=-1, record=False)
    with pytest.raises(ValueError, match="non-negative integer"):
        session.begin("290", seed="7", record=False)
    monkeypatch.setenv("SRELAB_SCALE", "huge")
    with pytest.raises(ValueError, match="SRELAB_SCALE"):
        session.scale()
    monkeypatch.setenv("SRELAB_SCALE", "suite")
    assert session.scale() == "suite"
