"""A scrape of a server's /metrics with a hard deadline, as a prober takes it.

    >>> from labsupport.serving.scrape import Scrape, scrape_metrics
    >>> text = 'vllm:num_requests_waiting{model_name="m"} 3.0\\nsrelab:engine_alive 1.0\\n'
    >>> s = Scrape.from_text(text, t_s=12.0)
    >>> s.ok, s.value("vllm:num_requests_waiting"), s.value("no:such_metric")
    (True, 3.0, None)
    >>> scrape_metrics("http://127.0.0.1:1", timeout_s=0.5).ok     # nothing listens there
    False

`scrape_metrics` gives up at `timeout_s` in total (connect, headers and body), never later: a
server that cannot run its HTTP handler in time answers nothing, and the scrape comes back
with `ok=False` and the reason. A scrape is the only evidence a
prober has; `Scrape.value(name, **labels)` reads one sample from it (the sum over matching
series, None when the server does not export it). `synthetic(steps, running, waiting)` and
`no_answer()` make scrapes by hand, with the server's metric names, for examples and tests.
"""

from __future__ import annotations

import http.client
import time
import urllib.parse
from dataclasses import dataclass, field

from labsupport import wire
from labsupport.serving.metrics import metric_value

MAX_BODY_BYTES = 4 * 2**20


@wire.record
@dataclass(frozen=True)
class Scrape:
    """One GET /metrics: when it was sent, whether it came back in time, and its text."""

    t_s: float  # time.monotonic() when the request was sent
    ok: bool  # HTTP 200 with the whole body within the deadline
    elapsed_s: float = 0.0
    status: int | None = None
    error: str | None = None  # why it failed: "timed out after 1.0 s", "connection refused" ...
    text: str = field(default="", repr=False)  # Prometheus text format ('' when not ok)

    @classmethod
    def from_text(cls, text: str, t_s: float = 0.0, elapsed_s: float = 0.001) -> Scrape:
        """A successful scrape of this text (for examples and tests)."""
        return cls(t_s, True, elapsed_s, 200, None, text)

    def value(self, name: str, **labels: str) -> float | None:
        """The sample `name` (e.g. 'vllm:num_requests_waiting'), None if absent or not ok."""
        if not self.ok or not self.text:
            return None
        return metric_value(self.text, name, **labels)

    def describe(self) -> str:
        if not self.ok:
            return f"scrape failed after {self.elapsed_s:.2f} s: {self.error}"
        return f"HTTP {self.status} in {self.elapsed_s * 1e3:.0f} ms, {len(self.text)} bytes"


def scrape_metrics(base_url: str, timeout_s: float = 1.0, path: str = "/metrics") -> Scrape:
    """GET base_url + path; the whole exchange must finish within `timeout_s` seconds."""
    url = urllib.parse.urlsplit(base_url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    t0 = time.monotonic()
    deadline = t0 + timeout_s

    def left() -> float:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        return remaining

    def failed(error: str, status: int | None = None) -> Scrape:
        return Scrape(t0, False, time.monotonic() - t0, status, error)

    conn = http.client.HTTPConnection(host, port, timeout=timeout_s)
    try:
        conn.connect()
        conn.request("GET", path, headers={"Connection": "close", "User-Agent": "srelab-prober"})
        conn.sock.settimeout(left())
        resp = conn.getresponse()
        chunks, size = [], 0
        while size < MAX_BODY_BYTES:
            conn.sock and conn.sock.settimeout(left())
            chunk = resp.read1(65536)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if resp.status != 200:
            return failed(f"HTTP {resp.status}", resp.status)
        text = b"".join(chunks).decode(errors="replace")
        return Scrape(t0, True, time.monotonic() - t0, resp.status, None, text)
    except TimeoutError:
        return failed(f"timed out after {timeout_s:g} s")
    except ConnectionRefusedError:
        return failed("connection refused")
    except (OSError, http.client.HTTPException) as exc:
        return failed(f"{type(exc).__name__}: {exc}")
    finally:
        conn.close()


_SYNTHETIC = """\
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{{engine="0",model_name="srelab-tiny"}} {running:.1f}
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{{engine="0",model_name="srelab-tiny"}} {waiting:.1f}
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{{engine="0",model_name="srelab-tiny"}} {kv:.4f}
# TYPE vllm:prompt_tokens counter
vllm:prompt_tokens_total{{engine="0",model_name="srelab-tiny"}} {prompt:.1f}
# TYPE vllm:generation_tokens counter
vllm:generation_tokens_total{{engine="0",model_name="srelab-tiny"}} {generated:.1f}
# TYPE vllm:iteration_tokens_total histogram
vllm:iteration_tokens_total_count{{engine="0",model_name="srelab-tiny"}} {steps:.1f}
vllm:iteration_tokens_total_sum{{engine="0",model_name="srelab-tiny"}} {iteration_sum:.1f}
# TYPE srelab:engine_steps counter
srelab:engine_steps_total{{engine="0",model_name="srelab-tiny"}} {steps:.1f}
# TYPE srelab:engine_alive gauge
srelab:engine_alive{{engine="0",model_name="srelab-tiny"}} {alive:.1f}
# TYPE srelab:http_requests_in_flight gauge
srelab:http_requests_in_flight{{engine="0",model_name="srelab-tiny"}} {in_flight:.1f}
"""


def synthetic(
    steps: int, running: int = 0, waiting: int = 0, *, alive: bool = True, t_s: float = 0.0
) -> Scrape:
    """A made-up successful scrape with the server's metric names (for examples and tests).

    Token counters follow the steps (one generated token per running request per step), so
    a rule that reads either sees the same progress; each step is one observation of
    `vllm:iteration_tokens_total` (its `_count` is vLLM's per-step counter).
    """
    text = _SYNTHETIC.format(
        running=running, waiting=waiting, kv=min(1.0, (running + waiting) / 64),
        prompt=steps * 8.0, generated=steps * max(1, running), steps=steps,
        iteration_sum=steps * (8.0 + max(1, running)),
        alive=1.0 if alive else 0.0, in_flight=running + waiting,
    )  # fmt: skip
    return Scrape.from_text(text, t_s=t_s)


def no_answer(
    error: str = "timed out after 1 s", t_s: float = 0.0, elapsed_s: float = 1.0
) -> Scrape:
    """A scrape that did not come back in time (for examples and tests)."""
    return Scrape(t_s, False, elapsed_s, None, error)
