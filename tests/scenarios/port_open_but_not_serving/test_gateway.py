"""The gateway's admission limit: counts, sheds at once, and knows how full the replica got."""

import threading
import time

import pytest

from labsupport.scenarios.port_open_but_not_serving.gateway import Gateway


def test_a_limit_sheds_beyond_it_and_none_admits_everything():
    gw = Gateway(2)
    assert [gw.try_enter() for _ in range(4)] == [True, True, False, False]
    gw.leave()
    assert gw.try_enter() and (gw.admitted, gw.shed, gw.in_flight) == (3, 2, 2)
    assert "limit 2" in gw.describe() and "2 shed" in gw.describe()
    free = Gateway(None)
    assert all(free.try_enter() for _ in range(500)) and free.shed == 0
    for bad in (2.5, True, "8"):
        with pytest.raises(TypeError):
            Gateway(bad)


def test_max_in_flight_over_a_window_counts_what_was_already_in():
    gw = Gateway(10)
    gw.try_enter(), gw.try_enter()
    t0 = time.monotonic()
    gw.try_enter()
    gw.leave(), gw.leave(), gw.leave()
    t1 = time.monotonic()
    assert gw.max_in_flight(0.0, t0) == 2 and gw.max_in_flight(t0, t1) == 3
    assert gw.max_in_flight(t1, t1 + 1) == 0


def test_threads_never_exceed_the_limit():
    gw, seen = Gateway(5), []

    def client():
        for _ in range(200):
            if gw.try_enter():
                seen.append(gw.in_flight)
                gw.leave()

    threads = [threading.Thread(target=client) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert max(seen) <= 5 and gw.peak_in_flight <= 5 and gw.in_flight == 0
