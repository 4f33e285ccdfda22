import pytest

from labsupport import labs


def test_twenty_five_labs_numbered_276_to_300():
    assert [lab.number for lab in labs.LABS] == list(range(276, 301))


def test_get_by_number_and_slug():
    assert labs.get(290).slug == "290_p99_spikes"
    assert labs.get("290_p99_spikes").number == 290


@pytest.mark.parametrize("bad", ["999", "abc", "290_wrong_name", ""])
def test_unknown_lab_is_a_clear_error(bad):
    with pytest.raises(labs.UnknownLab):
        labs.get(bad)


def test_gpu_needs_are_valid_and_titles_name_symptoms():
    for lab in labs.LABS:
        assert lab.gpu in ("real", "optional", "none")
        assert lab.symptom == lab.symptom.lower() and " " not in lab.symptom


def test_done_labs_have_all_their_files():
    for lab in labs.done():
        assert lab.solution_path.exists(), lab.solution_path
        assert lab.notebook_path.exists(), lab.notebook_path
        assert lab.test_path.exists(), lab.test_path
