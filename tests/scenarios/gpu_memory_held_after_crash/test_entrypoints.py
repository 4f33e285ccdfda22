"""Which container command lines the lab runs as PID 1."""

import pytest

from labsupport.scenarios.gpu_memory_held_after_crash import entrypoints

CMD = ["python", "-m", "sup", "--", "python", "-m", "srv", "--x", "1"]
SERVER = CMD[4:]


@pytest.mark.parametrize(
    "argv, init",
    [
        (["tini", "--", *SERVER], ["tini", "--"]),
        (["tini", "-g", "-p", "SIGTERM", "--", *CMD], ["tini", "-g", "-p", "SIGTERM", "--"]),
        (["/usr/bin/tini", "-s", "--", *SERVER], ["/usr/bin/tini", "-s", "--"]),
        (SERVER, []),
    ],
)
def test_an_init_around_an_offered_command_is_run(argv, init):
    assert entrypoints.split(argv, [CMD, SERVER]) == (init, argv[len(init) :])


@pytest.mark.parametrize(
    "argv, why",
    [
        (["sh", "-c", "python -m srv"], "neither one of the commands"),
        (["tini", "--", "python", "-m", "srv"], "exactly one of the commands"),
        (["tini", "--rm", "--", *SERVER], "not one the lab knows"),
        ("tini -- python", "list of strings"),
        ([], "empty"),
    ],
)
def test_anything_else_is_refused_with_the_reason(argv, why):
    with pytest.raises(ValueError, match=why):
        entrypoints.split(argv, [CMD, SERVER])
