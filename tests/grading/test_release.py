import textwrap

import pytest

from labsupport.grading import release

SOLUTION = textwrap.dedent('''\
    # %% [markdown]
    # # 999 demo
    # %% tags=["exercise"]
    import math

    def area(r):
        """Area of a circle of radius r."""
        # BEGIN SOLUTION
        return math.pi * r * r
        # END SOLUTION
    # %%
    print(area(1))
    ''')


def test_region_becomes_a_stub_naming_the_exercise():
    out = release.strip_solutions(
        "def f():\n    # BEGIN SOLUTION\n    return 1\n    # END SOLUTION\n"
    )
    assert "return 1" not in out
    assert 'raise NotImplementedError("Exercise f:' in out


def test_nested_function_uses_the_innermost_enclosing_def():
    src = (
        "def outer():\n    def inner():\n        # BEGIN SOLUTION\n        pass\n"
        "        # END SOLUTION\n    return inner\n"
    )
    assert "Exercise inner" in release.strip_solutions(src)


@pytest.mark.parametrize(
    "src, why",
    [
        ("# BEGIN SOLUTION\nx = 1\n# END SOLUTION\n", "inside a function"),
        ("def f():\n    # BEGIN SOLUTION\n    pass\n", "without an END"),
        ("def f():\n    pass\n    # END SOLUTION\n", "without a BEGIN"),
    ],
)
def test_malformed_regions_are_refused(src, why):
    with pytest.raises(release.ReleaseError, match=why):
        release.strip_solutions(src)


def test_release_writes_check_detects_staleness_and_orphans(tmp_path):
    (tmp_path / "solutions").mkdir()
    sol = tmp_path / "solutions" / "999_demo.py"
    sol.write_text(SOLUTION)
    assert release.release(check=True, root=tmp_path) == [tmp_path / "labs" / "999_demo.ipynb"]
    written = release.release(root=tmp_path)
    nb_text = (tmp_path / "labs" / "999_demo.ipynb").read_text()
    assert written and "NotImplementedError" in nb_text and "math.pi * r" not in nb_text
    assert '"outputs": []' in nb_text
    assert release.release(check=True, root=tmp_path) == []  # deterministic: same bytes
    sol.write_text(SOLUTION.replace("radius r", "radius r (metres)"))
    assert release.release(check=True, root=tmp_path)
    release.release(root=tmp_path)
    (tmp_path / "labs" / "998_gone.ipynb").write_text("{}")
    assert release.release(check=True, root=tmp_path) == [tmp_path / "labs" / "998_gone.ipynb"]


def test_exercise_tag_survives_into_the_learner_notebook(tmp_path):
    sol = tmp_path / "999_demo.py"
    sol.write_text(SOLUTION)
    nb = release.learner_notebook(sol)
    tagged = [c for c in nb.cells if "exercise" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and "def area" in tagged[0].source


def test_release_refuses_to_overwrite_an_edited_notebook(tmp_path):
    (tmp_path / "solutions").mkdir()
    sol = tmp_path / "solutions" / "999_demo.py"
    sol.write_text(SOLUTION)
    release.release(root=tmp_path)
    nb = tmp_path / "labs" / "999_demo.ipynb"
    nb.write_text(nb.read_text().replace("NotImplementedError", "my answer"))
    assert release.edited(tmp_path / "labs") == [nb]
    sol.write_text(SOLUTION.replace("radius r", "radius r (metres)"))
    with pytest.raises(release.ReleaseError, match=r"labs/999_demo.ipynb was edited"):
        release.release(root=tmp_path)
    assert "my answer" in nb.read_text()  # kept
    release.release(root=tmp_path, force=True)
    assert "my answer" not in nb.read_text() and "(metres)" in nb.read_text()
    assert release.edited(tmp_path / "labs") == []


def test_seed_is_set_in_the_source_and_the_metadata():
    assert release.with_seed("a = 1\nSEED = 0  # variant\n", 7) == "a = 1\nSEED = 7  # variant\n"
    with pytest.raises(ValueError):
        release.with_seed("no seed here", 1)
    with pytest.raises(ValueError):
        release.with_seed("SEED = 0", -1)
    nb = {"cells": [{"cell_type": "code", "source": ["SEED = 0\n", "x"]}], "metadata": {}}
    release.set_seed(nb, 290, 5)
    assert nb["cells"][0]["source"] == "SEED = 5\nx" and nb["metadata"]["srelab"]["seed"] == 5
