import re

from labsupport import labs, readme_tables

README = (labs.REPO_ROOT / "README.md").read_text()


def _commands():
    return re.findall(r"```bash\n# \d\. [^\n]*\n([^\n]+)\n```", README)


def test_two_setup_commands_and_ci_runs_the_test_one():
    commands = _commands()
    assert len(commands) == 2, commands
    ci = (labs.REPO_ROOT / ".ci" / "run").read_text()
    assert commands[1] in ci, "`.ci/run` must run the README's test command verbatim"


def test_lab_table_matches_the_registry():
    for lab in labs.LABS:
        row = next((ln for ln in README.splitlines() if ln.startswith(f"| {lab.number} |")), "")
        assert row, f"lab {lab.number} missing from the README table"
        assert ("✅ ready" in row) == lab.done, f"README status of {lab.number} is stale"


def test_lab_table_is_the_generated_one():
    got = readme_tables.current(README, readme_tables.LAB_MARKERS)
    assert got == readme_tables.lab_table(), "run: python -m labsupport.readme_tables"


def test_figures_name_only_ready_labs():
    rows = readme_tables.current(README, readme_tables.FIGURE_MARKERS).splitlines()[2:]
    ready = {str(lab.number) for lab in labs.done()}
    assert rows and all(row.split(" | ")[0].lstrip("| ") in ready for row in rows)
