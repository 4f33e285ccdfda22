import socket

import psutil
import pytest

from labsupport.gateway import redisd
from labsupport.gateway.redisd import redis_server

pytestmark = pytest.mark.skipif(not redisd.available(), reason="redis-server is not installed")


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_a_real_server_on_loopback_without_persistence_gone_after_the_block():
    with redis_server() as store:
        assert store.host == "127.0.0.1" and store.url == f"redis://127.0.0.1:{store.port}/0"
        client = store.client()
        assert client.incr("hits") == 1 and client.incr("hits") == 2
        info = client.info("server")
        assert info["process_id"] == store.pid and info["tcp_port"] == store.port
        assert psutil.Process(store.pid).name().startswith("redis-server")
        assert client.config_get("save")["save"] == ""
        assert client.config_get("appendonly")["appendonly"] == "no"
        assert client.config_get("bind")["bind"] == "127.0.0.1"
        client.close()
        pid, port = store.pid, store.port
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert not _listening(port)


def test_two_servers_at_once_are_independent():
    with redis_server() as a, redis_server() as b:
        assert a.port != b.port
        ca, cb = a.client(), b.client()
        ca.set("k", "a")
        assert cb.get("k") is None and ca.get("k") == "a"
        ca.close()
        cb.close()


def test_a_missing_binary_says_how_to_install_it(monkeypatch):
    monkeypatch.setattr(redisd, "BINARY", "redis-server-that-is-not-here")
    assert not redisd.available()
    with pytest.raises(redisd.RedisUnavailable, match="apt-get install redis-server"):
        with redis_server():
            pass
