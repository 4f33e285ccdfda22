"""Run code in a fresh interpreter: its own env, a timeout, and the whole process group killed.

    >>> from labsupport import isolate
    >>> r = isolate.run_function("math:factorial", 5, timeout_s=30)
    >>> r.ok, r.value
    (True, 120)
    >>> isolate.run_python("while True: pass", timeout_s=1).timed_out
    True

Labs use this for everything that may crash a CUDA context (device-side asserts, OOM
experiments), needs a fresh allocator (`PYTORCH_ALLOC_CONF` is read once per process), or may
hang (learner code): the notebook's kernel survives, and a hang costs one timeout.
Arguments and the return value cross the process boundary pickled.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

TEMP_PREFIX = "srelab-"
_PACKAGE_PARENT = str(Path(__file__).resolve().parent.parent)


@dataclass
class IsolatedResult:
    """What a fresh-process run gave back."""

    ok: bool
    value: object = None
    returncode: int | None = None
    stdout: str = ""
    stderr: str = ""
    timed_out: bool = False
    duration_s: float = 0.0
    error: str | None = None  # one line: why it failed
    exception_type: str | None = None  # e.g. "OutOfMemoryError" when the function raised
    traceback: str = field(default="", repr=False)


@contextlib.contextmanager
def temp_dir():
    """A temporary directory (`srelab-<pid>-*`) removed on exit, even on error."""
    path = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{os.getpid()}-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _child_env(env: dict | None, extra_env: dict | None) -> dict:
    base = dict(os.environ if env is None else env)
    base.update(extra_env or {})
    paths = [p for p in base.get("PYTHONPATH", "").split(os.pathsep) if p]
    if _PACKAGE_PARENT not in paths:
        paths.insert(0, _PACKAGE_PARENT)
    base["PYTHONPATH"] = os.pathsep.join(paths)
    base.setdefault("PYTHONUNBUFFERED", "1")
    return base


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _pump(stream, sink: list[str], echo) -> None:
    for line in iter(stream.readline, ""):
        sink.append(line)
        if echo is not None:
            echo(line.rstrip("\n"))
    stream.close()


def _run(argv: list[str], *, timeout_s: float, env: dict, cwd, echo) -> tuple:
    start = time.perf_counter()
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        env=env,
        cwd=cwd,
        start_new_session=True,  # its own process group: one killpg takes every descendant
    )
    out: list[str] = []
    err: list[str] = []
    pumps = [
        threading.Thread(target=_pump, args=(proc.stdout, out, echo), daemon=True),
        threading.Thread(target=_pump, args=(proc.stderr, err, None), daemon=True),
    ]
    for t in pumps:
        t.start()
    timed_out = False
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        timed_out = True
    finally:
        # Also reached on KeyboardInterrupt or a grader's timeout signal: never leave the group.
        _kill_group(proc.pid)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
        for t in pumps:
            t.join(timeout=5)
    return proc.returncode, "".join(out), "".join(err), timed_out, time.perf_counter() - start


def _describe_exit(returncode: int | None, timed_out: bool, timeout_s: float, stderr: str) -> str:
    if timed_out:
        return f"timed out after {timeout_s:g} s (process group killed)"
    if returncode is not None and returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"killed by {name}"
    last = [ln for ln in stderr.strip().splitlines() if ln.strip()]
    tail = f": {last[-1].strip()}" if last else ""
    return f"exited with code {returncode}{tail}"


def run_python(
    code: str,
    *,
    timeout_s: float,
    env: dict | None = None,
    extra_env: dict | None = None,
    cwd: str | os.PathLike | None = None,
    echo=None,
) -> IsolatedResult:
    """Run `code` with `python -c` in a new process group; ok means exit code 0.

    env replaces the environment (default: inherit); extra_env is added on top.
    echo: a callable that receives stdout lines live (e.g. `print` for progress in a notebook).
    """
    argv = [sys.executable, "-c", code]
    rc, out, err, timed_out, dur = _run(
        argv, timeout_s=timeout_s, env=_child_env(env, extra_env), cwd=cwd, echo=echo
    )
    ok = rc == 0 and not timed_out
    return IsolatedResult(
        ok=ok,
        returncode=rc,
        stdout=out,
        stderr=err,
        timed_out=timed_out,
        duration_s=dur,
        error=None if ok else _describe_exit(rc, timed_out, timeout_s, err),
    )


def run_function(
    target: str,
    /,
    *args,
    timeout_s: float,
    env: dict | None = None,
    extra_env: dict | None = None,
    cwd: str | os.PathLike | None = None,
    echo=None,
    **kwargs,
) -> IsolatedResult:
    """Call `target` ("package.module:function") in a fresh interpreter and return its value.

    ok is False when the function raised (exception_type and error say what), the process
    died (a signal, a CUDA abort) or it ran past timeout_s.
    """
    if ":" not in target:
        raise ValueError(f"target must look like 'package.module:function', got {target!r}")
    with temp_dir() as tmp:
        payload, result = tmp / "payload.pkl", tmp / "result.pkl"
        payload.write_bytes(pickle.dumps((target, args, kwargs)))
        code = (
            "import sys; from labsupport.isolate import _child_main; "
            f"_child_main({str(payload)!r}, {str(result)!r})"
        )
        r = run_python(code, timeout_s=timeout_s, env=env, extra_env=extra_env, cwd=cwd, echo=echo)
        outcome = None
        if result.exists():
            try:
                outcome = pickle.loads(result.read_bytes())
            except Exception as exc:  # a result that cannot be unpickled here
                r.ok, r.error = False, f"could not read the result back: {exc}"
                return r
    if outcome is None:
        r.ok = False
        r.error = r.error or "the process ended without a result"
        return r
    if outcome["ok"]:
        r.value = outcome["value"]
        r.ok = not r.timed_out
    else:
        r.ok = False
        r.exception_type = outcome["exception_type"]
        r.error = f"{outcome['exception_type']}: {outcome['message']}"
        r.traceback = outcome["traceback"]
    return r


def _resolve(target: str):
    import importlib

    module_name, _, attr = target.partition(":")
    obj = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def _child_main(payload_path: str, result_path: str) -> None:
    """Entry point inside the fresh interpreter (see run_function)."""
    target, args, kwargs = pickle.loads(Path(payload_path).read_bytes())
    try:
        value = _resolve(target)(*args, **kwargs)
        outcome = {"ok": True, "value": value}
    except BaseException as exc:  # noqa: BLE001 - everything must reach the parent
        outcome = {
            "ok": False,
            "exception_type": type(exc).__name__,
            "message": str(exc).strip()[:4000],
            "traceback": traceback.format_exc(),
        }
    try:
        data = pickle.dumps(outcome)
    except Exception as exc:
        data = pickle.dumps(
            {
                "ok": False,
                "exception_type": "PicklingError",
                "message": f"the return value of {target} cannot be pickled: {exc}",
                "traceback": "",
            }
        )
    Path(result_path).write_bytes(data)
    sys.stdout.flush()
