"""Which container command lines the lab will run as PID 1: an init program, then the command.

    >>> from labsupport.scenarios.gpu_memory_held_after_crash import entrypoints
    >>> entrypoints.split(["tini", "-g", "--", "python", "-m", "x"], [["python", "-m", "x"]])
    (['tini', '-g', '--'], ['python', '-m', 'x'])
    >>> entrypoints.split(["python", "-m", "x"], [["python", "-m", "x"]])
    ([], ['python', '-m', 'x'])

The lab runs a learner's container command as root in a container of its own, so it runs only
what a Dockerfile's ENTRYPOINT would sensibly hold: optionally one of the init programs below
(tini, Docker's `--init`; dumb-init) with its own options, then exactly one of the commands
the lab offers. `split(argv, commands)` returns (init part, command) or raises ValueError
saying what is not allowed.
"""

from __future__ import annotations

import os
import shutil

INITS = {"tini": "tini", "tini-static": "tini", "docker-init": "tini", "dumb-init": "dumb-init"}
FLAGS = {  # option -> takes a value
    "tini": {"-s": False, "-g": False, "-v": False, "-vv": False, "-vvv": False, "-w": False,
             "-l": False, "-p": True, "-e": True},
    "dumb-init": {"-c": False, "--single-child": False, "-v": False, "--verbose": False,
                  "-r": True, "--rewrite": True},
}  # fmt: skip


def split(argv, commands: list[list[str]]) -> tuple[list[str], list[str]]:
    """(init program and its options, the command) of `argv`; ValueError if not allowed."""
    if not isinstance(argv, (list, tuple)) or not all(isinstance(a, str) for a in argv):
        raise ValueError(f"the entrypoint must be a list of strings, got {argv!r}")
    argv = list(argv)
    if argv in commands:
        return [], argv
    if not argv:
        raise ValueError("the entrypoint is empty")
    kind = INITS.get(os.path.basename(argv[0]))
    if kind is None:
        raise ValueError(
            f"{argv[0]!r} is neither one of the commands offered nor an init program the lab "
            f"runs ({', '.join(sorted(INITS))})"
        )
    if shutil.which(argv[0]) is None:
        raise ValueError(f"{argv[0]!r} is not installed here (apt-get install tini)")
    i, flags = 1, FLAGS[kind]
    while i < len(argv) and argv[i] != "--":
        if argv[i] not in flags:
            if argv[i:] in commands:  # dumb-init needs no "--"
                return argv[:i], argv[i:]
            raise ValueError(f"{argv[0]} option {argv[i]!r} is not one the lab knows")
        i += 2 if flags[argv[i]] else 1
    rest = argv[i + 1 :] if i < len(argv) else []
    if rest not in commands:
        raise ValueError(
            f"after {' '.join(argv[: i + 1])!r} comes {' '.join(rest)[:80]!r}: it must be "
            "exactly one of the commands offered"
        )
    return argv[: i + 1], rest
