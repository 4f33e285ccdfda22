"""Linux mechanisms the labs break and measure for real: mounts, processes, PID namespaces.

    >>> import os
    >>> from labsupport.linux import procs
    >>> procs.read(os.getpid()).state in ("R", "S")
    True

Modules: `mounts` (a private mount namespace with a small tmpfs, e.g. on /dev/shm, and what
is used in it), `procs` (the process table as /proc shows it: state, parent, group, the
namespaced PID, what a process maps, the ports it listens on) and `pidns` (a command run as
PID 1 of its own PID namespace, like a container's entrypoint, and everything it leaves taken
down with it). Nothing here is lab-specific.
"""
