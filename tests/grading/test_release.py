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
