"""Lab 277's hints, from a nudge to the mechanism (`hint("277", level, exercise)`)."""

HINTS = {
    "diagnose": (
        "Put two lists side by side: what ps says about each process (its STAT column, its "
        "parent) and what the card says each process holds. Which processes appear in both?",
        "STAT Z is a zombie: it has exited and freed everything, only its exit status waits to "
        "be collected; it can hold no device memory and kill -9 does nothing to it. A live "
        "process whose PPID is 1 lost its parent and was adopted by PID 1: an orphan. The "
        "holders are the live processes of this container that the card lists.",
        "zombies: stat starts with Z. orphans: not Z, ppid == 1, pid != 1. holders: the pids in "
        "evidence['gpu'] that are live rows of evidence['ps'] (pid None is another container's). "
        "held_mib: the sum of used_mib over the holders.",
    ),
    "worker_start": (
        "A SIGKILLed parent runs no code at all. Who can still tell its children that it died?",
        "The kernel can: prctl(PR_SET_PDEATHSIG, SIGKILL) in the child makes the kernel send it "
        "SIGKILL when its parent dies. Python has no os.prctl: ctypes.CDLL(None).prctl(1, 9, 0, "
        "0, 0). But if the parent died before the prctl, the signal never comes.",
        "libc.prctl(PR_SET_PDEATHSIG=1, signal.SIGKILL, 0, 0, 0); then if os.getppid() != "
        "parent_pid: os._exit(1) (re-parented already: the parent is gone). Raise if prctl "
        "returns -1.",
    ),
    "before_restart": (
        "The server is dead, but it was not alone in what the supervisor started. What do the "
        "workers it started still share with it?",
        "The supervisor started the server in a new session, so the server's PID is also its "
        "process group's ID, and the workers it started are in that group. A group outlives "
        "its leader. Signal the group, not one PID, and only that group.",
        "os.killpg(server_pgid, signal.SIGKILL), and treat ProcessLookupError (the group is "
        "already empty) as done.",
    ),
    "entrypoint": (
        "Two things the incident's PID 1 did not do: collect what it adopts, and act on "
        "SIGTERM. Which small program exists to be PID 1?",
        "tini (Debian's package, Docker's --init) as PID 1 reaps every zombie and forwards "
        "signals to its child. It does not kill orphans: keep no restart loop inside the "
        "container, so that the container ends with the server and takes everything with it.",
        "['tini', '--', *server_command] where server_command is the part of `command` after "
        "its '--' (add '-g' to signal the child's whole process group).",
    ),
}
