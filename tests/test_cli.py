import json
import subprocess
import sys

from labsupport import cli, labs


def srelab(*args, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "labsupport.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=labs.REPO_ROOT,
    )


def test_list_shows_every_lab(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    for lab in labs.LABS:
        assert str(lab.number) in out
    assert "ready" in out


def test_release_check_says_labs_are_fresh():
    r = srelab("release", "--check")
    assert r.returncode == 0, r.stdout + r.stderr


def test_unknown_lab_and_missing_notebook_are_clear(tmp_path, capsys):
    assert cli.main(["check", "999"]) == 2
    assert "no lab '999'" in capsys.readouterr().err
    assert cli.main(["check", "290", "--notebook", str(tmp_path / "nope.ipynb")]) == 2
    assert "no notebook" in capsys.readouterr().err


def test_doctor_prints_one_line_per_check(capsys):
    assert cli.main(["doctor"]) == 0
    out = capsys.readouterr().out
    for what in ("torch", "/dev/shm", "sandbox", "NVML"):
        assert what in out


def test_check_on_a_broken_notebook_exits_nonzero_with_a_report(tmp_path):
    bad = tmp_path / "bad.ipynb"
    bad.write_text("not a notebook")
    report = tmp_path / "r.json"
    r = srelab("check", "290", "--notebook", str(bad), "--json", str(report))
    assert r.returncode == 1
    assert "FAIL" in r.stdout and "is not a notebook" in r.stdout
    data = json.loads(report.read_text())
    assert data["passed"] is False and data["environment"]["torch"]
    assert all(c["outcome"] == "failed" for c in data["checks"])


def test_srelab_serve_answers_and_leaves_nothing_on_sigterm():
    import signal
    import time

    import httpx
    import psutil

    proc = subprocess.Popen(
        [sys.executable, "-m", "labsupport.cli", "serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=labs.REPO_ROOT,
    )
    try:
        url = None
        deadline = time.monotonic() + 120
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            if "listening on " in line:
                url = line.split("listening on ", 1)[1].strip()
        assert url, "srelab serve never printed its address"
        assert httpx.get(f"{url}/health", timeout=10).status_code == 200
        body = {"prompt": "hello", "max_tokens": 4, "stream": True}
        with httpx.stream("POST", f"{url}/v1/completions", json=body, timeout=30) as r:
            chunks = [ln for ln in r.iter_lines() if ln.startswith("data: ")]
        assert chunks[-1] == "data: [DONE]" and len(chunks) >= 2
        assert "vllm:num_requests_running" in httpx.get(f"{url}/metrics", timeout=10).text
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        port = int(url.rsplit(":", 1)[1])
        assert not [
            c
            for c in psutil.net_connections("tcp")
            if c.status == psutil.CONN_LISTEN and c.laddr.port == port
        ]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
