"""The page cache, per file, without root: drop a file's pages, see how much of it is cached.

    >>> import os, tempfile
    >>> from labsupport import pagecache
    >>> with tempfile.NamedTemporaryFile(dir="/var/tmp") as f:
    ...     _ = f.write(b"x" * 65536); f.flush(); os.fsync(f.fileno())
    ...     pagecache.drop(f.name)
    ...     before = pagecache.resident_fraction(f.name)
    ...     _ = open(f.name, "rb").read()
    ...     round(pagecache.resident_fraction(f.name), 1) >= before
    True
    >>> sorted(pagecache.io_counters())[:2]
    ['cancelled_write_bytes', 'rchar']

- `drop(*paths)`: `posix_fadvise(POSIX_FADV_DONTNEED)` on each file. The kernel drops the file's
  clean pages from the page cache (dirty ones are written first: `fsync` a file you just
  wrote); no root needed, unlike `echo 1 > /proc/sys/vm/drop_caches`, which drops every file's.
  Pages a process still maps stay. A file on tmpfs has no other copy: nothing is dropped there.
- `resident_fraction(path)`: the share of the file's pages in the page cache, from `mincore`
  on a mapping of it (what `fincore` from util-linux and `vmtouch` print).
- `io_counters(pid)`: `/proc/PID/io`. `read_bytes` counts what the process made the kernel fetch
  from storage (a page-cache hit adds nothing; an mmap page fault counts); `rchar` counts
  what read() calls returned, cached or not, and nothing read through a mapping.
"""

from __future__ import annotations

import ctypes
import mmap
import os

PAGE = mmap.PAGESIZE


def drop(*paths) -> None:
    """Drop the page-cache pages of each file (clean pages only: fsync after writing)."""
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def resident_fraction(path) -> float:
    """Share (0..1) of the file's pages that are in the page cache now (mincore)."""
    size = os.path.getsize(path)
    if size == 0:
        return 1.0
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long]  # fmt: skip
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    pages = (size + PAGE - 1) // PAGE
    fd = os.open(path, os.O_RDONLY)
    try:
        addr = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        if addr in (None, ctypes.c_void_p(-1).value):
            raise OSError(ctypes.get_errno(), f"mmap {path}")
        try:
            vec = ctypes.create_string_buffer(pages)
            if libc.mincore(addr, size, vec) != 0:
                raise OSError(ctypes.get_errno(), f"mincore {path}")
            return sum(b & 1 for b in vec.raw) / pages
        finally:
            libc.munmap(addr, size)
    finally:
        os.close(fd)


def io_counters(pid: int | str = "self") -> dict[str, int]:
    """/proc/PID/io as numbers (rchar, wchar, syscr, syscw, read_bytes, write_bytes, ...)."""
    with open(f"/proc/{pid}/io") as f:
        return {k: int(v) for k, _, v in (line.partition(": ") for line in f.read().splitlines())}
