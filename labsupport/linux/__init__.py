"""Linux mechanisms the labs break and measure for real: private mounts and their usage.

    >>> from labsupport.linux import mounts
    >>> mounts.usage("/tmp").size_bytes > 0
    True

Modules: `mounts` (a private mount namespace with a small tmpfs, e.g. on /dev/shm, and what
is used in it). Nothing here is lab-specific.
"""
