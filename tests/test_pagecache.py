"""The page cache per file: dropped without root, residency read back, the kernel's counters."""

import os

import pytest

from labsupport import pagecache


@pytest.fixture
def written(tmp_path_factory):
    d = tmp_path_factory.mktemp("x", numbered=True)
    path = "/var/tmp" if os.path.isdir("/var/tmp") else str(d)
    import tempfile

    fd, name = tempfile.mkstemp(prefix=f"srelab-{os.getpid()}-pc-", dir=path)
    os.write(fd, os.urandom(4 * 2**20))
    os.fsync(fd)
    os.close(fd)
    yield name
    os.unlink(name)


def test_drop_empties_the_cache_and_a_read_fills_it(written):
    pagecache.drop(written)
    assert pagecache.resident_fraction(written) < 0.05
    before = pagecache.io_counters()
    with open(written, "rb") as f:
        assert len(f.read()) == 4 * 2**20
    after = pagecache.io_counters()
    assert pagecache.resident_fraction(written) > 0.95
    assert after["read_bytes"] - before["read_bytes"] >= 3 * 2**20, "a cold read hits storage"
    assert after["rchar"] - before["rchar"] >= 4 * 2**20
    again = pagecache.io_counters()
    with open(written, "rb") as f:
        f.read()
    assert pagecache.io_counters()["read_bytes"] - again["read_bytes"] < 2**20, "warm: no I/O"


def test_an_empty_file_counts_as_cached(tmp_path):
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert pagecache.resident_fraction(empty) == 1.0
