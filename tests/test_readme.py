import re

from labsupport import labs

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
