"""The admin API: token, loopback Host, JSON only, same origin; bounded fault values."""

import subprocess

import httpx
import pytest
from starlette.datastructures import Headers

from labsupport.serving import admin
from labsupport.serving.launcher import child_env, serve_subprocess, server_command, stop_group

TOKEN = "t" * 43


def _headers(**extra) -> Headers:
    base = {"host": "127.0.0.1:8000", "content-type": "application/json"}
    base[admin.TOKEN_HEADER.lower()] = TOKEN
    base.update({k.replace("_", "-"): v for k, v in extra.items() if v is not None})
    for k in [k for k, v in extra.items() if v is None]:
        base.pop(k.replace("_", "-"), None)
    return Headers(base)


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({}, None),
        ({"host": "localhost:9"}, None),
        ({"host": "[::1]:9"}, None),
        ({"content_type": "application/json; charset=utf-8"}, None),
        ({"origin": "http://127.0.0.1:8000"}, None),  # same origin
        ({"host": "evil.example:8000"}, 403),  # DNS rebinding: the page's own name
        ({"host": None}, 403),
        ({"origin": "http://evil.example"}, 403),
        ({"origin": "null"}, 403),
        ({"sec_fetch_site": "cross-site"}, 403),
        ({"x_srelab_admin_token": None}, 401),
        ({"x_srelab_admin_token": "wrong"}, 401),
        ({"content_type": "application/x-www-form-urlencoded"}, 415),
        ({"content_type": "text/plain"}, 415),
        ({"content_type": None}, 415),
    ],
)
def test_check(change, status):
    if status is None:
        admin.check(_headers(**change), TOKEN, needs_json=True)
        return
    with pytest.raises(admin.AdminRefused) as exc:
        admin.check(_headers(**change), TOKEN, needs_json=True)
    assert exc.value.status == status and exc.value.message


def test_a_server_without_a_token_has_no_admin_api():
    with pytest.raises(admin.AdminRefused, match="off") as exc:
        admin.check(_headers(), None, needs_json=True)
    assert exc.value.status == 403 and admin.TOKEN_ENV in exc.value.message


@pytest.fixture(scope="module")
def srv():
    with serve_subprocess("--max-model-len", "256") as server:
        with httpx.Client(base_url=server.base_url, timeout=10.0, trust_env=False) as client:
            server.client = client
            yield server


def _post(srv, body=None, **headers):
    h = {**srv.admin_headers, **headers}
    h = {k: v for k, v in h.items() if v is not None}
    content = body if isinstance(body, (bytes, str)) else None
    return srv.client.post("/admin/fault", headers=h, content=content,
                           json=None if content is not None else body)  # fmt: skip


def test_the_token_travels_in_the_environment_only(srv):
    assert srv.admin_token and srv.admin_token not in " ".join(srv.proc.args)
    assert srv.admin_token not in srv.output
    assert "admin: /admin/fault takes the token in SRELAB_ADMIN_TOKEN" in srv.output
    assert srv.admin_token not in srv.client.get("/metrics").text


def test_refusals_are_clear_json_4xx(srv):
    body = {"name": "leak_kv_on_abort"}
    cases = [
        ({admin.TOKEN_HEADER: None}, 401, "token"),
        ({admin.TOKEN_HEADER: "nope"}, 401, "Wrong admin token"),
        ({"Host": "attacker.example"}, 403, "loopback"),
        ({"Origin": "http://attacker.example"}, 403, "Cross-origin"),
        ({"Content-Type": "application/x-www-form-urlencoded"}, 415, "application/json"),
        ({"Content-Type": "text/plain"}, 415, "application/json"),
    ]
    for headers, status, words in cases:
        r = _post(srv, body, **headers)
        assert r.status_code == status, (headers, r.text)
        assert words in r.json()["error"]["message"] and r.json()["error"]["code"] == status
    r = srv.client.get("/admin/fault")
    assert r.status_code == 401  # reading the faults needs the token too
    assert srv.client.get("/admin/fault", headers=srv.admin_headers).json()["active"] == {}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"name": "blocked_event_loop", "value": 1e9}, "value"),
        (b'{"name": "blocked_event_loop", "value": NaN}', "value"),
        ({"name": "blocked_event_loop", "value": "5"}, "value"),
        ({"name": "wedged_engine", "value": 1}, "value"),
        ({"name": "nope"}, "name"),
        ({"name": "wedged_engine", "enabled": "yes"}, "enabled"),
        ({"name": "wedged_engine", "extra": 1}, None),
        (b"[" * 1500 + b"]" * 1500, None),  # deeper than Python's recursion limit
        (b"[" * 100 + b"]" * 100, None),
        (b"x", None),
    ],
    ids=["1e9", "nan", "text", "no-value", "unknown", "enabled", "extra", "deep", "100", "x"],
)
def test_bad_fault_requests_are_400_and_change_nothing(srv, body, param):
    r = _post(srv, body)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == param
    assert srv.client.get("/admin/fault", headers=srv.admin_headers).json()["active"] == {}
    assert srv.client.get("/health").status_code == 200


def test_faults_switch_and_nothing_outside_admin_names_them(srv):
    srv.set_fault("leak_kv_on_abort")
    try:
        active = srv.client.get("/admin/fault", headers=srv.admin_headers).json()["active"]
        assert active == {"leak_kv_on_abort": None}
        metrics = srv.client.get("/metrics").text
        assert "fault" not in metrics and "leak_kv" not in metrics
        health = srv.client.get("/health")
        assert health.status_code == 200 and health.content == b""
        assert "leak_kv" not in srv.client.get("/debug/heartbeat").text
        assert "leak_kv" not in srv.client.get("/ready").text
    finally:
        srv.set_fault("leak_kv_on_abort", enabled=False)
    assert srv.client.get("/admin/fault", headers=srv.admin_headers).json()["active"] == {}


def test_a_server_started_by_hand_without_a_token_says_how_to_switch_admin_on():
    env = {k: v for k, v in child_env().items() if k != admin.TOKEN_ENV}
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT, "text": True}
    proc = subprocess.Popen(server_command(), env=env, start_new_session=True, **pipes)
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("listening on "):
                break
        out = "".join(lines)
        assert "admin: /admin/fault is off" in out and f"export {admin.TOKEN_ENV}=" in out
        url = line.split()[-1]
        r = httpx.get(f"{url}/admin/fault", headers={admin.TOKEN_HEADER: "x"}, trust_env=False)
        assert r.status_code == 403 and "off" in r.json()["error"]["message"]
    finally:
        stop_group(proc)
        proc.stdout.close()
