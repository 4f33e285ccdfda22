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
Arguments go to the child pickled (we wrote them); the return value comes back as data
(`labsupport.wire`), never as a pickle, because the child may have run a learner's code.
A run whose arguments carry learner code (an exercise reference or a notebook function) is
contained (`labsupport.contain`): sandboxed where possible, memory-capped, and every process it
leaves behind is killed and named in `left_running`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
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
# for extra_env: one BLAS thread, so a workload measured on a small, busy machine does not spin
# threads against its own event loop
ONE_BLAS_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
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
    contained: bool = False  # learner code ran: sandbox, memory cap, leftovers killed
    memory_exceeded: bool = False  # killed for using more than its memory limit
    left_running: list = field(default_factory=list)  # processes it left behind (killed)
    flags: list = field(default_factory=list)  # what its learner code touched (grading.flags)


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


def _run(argv: list[str], *, timeout_s: float, env: dict, cwd, echo, limits=None,
         pass_fds=()) -> tuple:  # fmt: skip
    """Run argv (contained when `limits` is given); return (rc, out, err, timed_out, dur, extra)."""
    start = time.perf_counter()
    extra = {"memory_exceeded": False, "left_running": []}
    report = None
    if limits is not None:
        from labsupport import contain

        report = Path(tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{os.getpid()}-contain-")[1])
        argv = contain.wrap(argv, limits, report=str(report))
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        env=env,
        cwd=cwd,
        pass_fds=tuple(pass_fds),
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
        timed_out, extra["memory_exceeded"] = _wait(proc, timeout_s, limits)
    finally:
        # Also reached on KeyboardInterrupt or a grader's timeout signal: never leave the group.
        if limits is not None:
            from labsupport import contain

            if proc.poll() is None:
                contain.kill_tree(proc.pid)
        _kill_group(proc.pid)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
        for t in pumps:
            t.join(timeout=5)
        if report is not None:
            with contextlib.suppress(OSError, ValueError):
                extra["left_running"] = json.loads(report.read_text() or "{}").get(
                    "left_running", []
                )
            with contextlib.suppress(OSError):
                report.unlink()
    dur = time.perf_counter() - start
    return proc.returncode, "".join(out), "".join(err), timed_out, dur, extra


def _wait(proc, timeout_s: float, limits) -> tuple[bool, bool]:
    """Wait for proc; (timed_out, memory_exceeded). Contained runs are watched for memory."""
    if limits is None or not limits.memory_bytes:
        try:
            proc.wait(timeout=timeout_s)
            return False, False
        except subprocess.TimeoutExpired:
            return True, False
    from labsupport import contain

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            proc.wait(timeout=0.25)
            return False, False
        except subprocess.TimeoutExpired:
            pass
        if time.monotonic() > deadline:
            return True, False
        if contain.tree_rss_bytes(proc.pid) > limits.memory_bytes:
            return False, True


def _describe_exit(
    returncode: int | None, timed_out: bool, timeout_s: float, stderr: str, extra=None
) -> str:
    if extra and extra.get("memory_exceeded"):
        return "killed: it used more memory than its limit"
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
    limits=None,
    pass_fds=(),
) -> IsolatedResult:
    """Run `code` with `python -c` in a new process group; ok means exit code 0.

    env replaces the environment (default: inherit); extra_env is added on top.
    echo: a callable that receives stdout lines live (e.g. `print` for progress in a notebook).
    limits: a `contain.Limits` to run it contained (learner code); None runs it plainly.
    """
    argv = [sys.executable, "-c", code]
    rc, out, err, timed_out, dur, extra = _run(
        argv,
        timeout_s=timeout_s,
        env=_child_env(env, extra_env),
        cwd=cwd,
        echo=echo,
        limits=limits,
        pass_fds=pass_fds,
    )
    ok = rc == 0 and not timed_out and not extra["memory_exceeded"]
    return IsolatedResult(
        ok=ok,
        returncode=rc,
        stdout=out,
        stderr=err,
        timed_out=timed_out,
        duration_s=dur,
        error=None if ok else _describe_exit(rc, timed_out, timeout_s, err, extra),
        contained=limits is not None,
        memory_exceeded=extra["memory_exceeded"],
        left_running=extra["left_running"],
    )


def carries_learner_code(value, _depth: int = 0) -> bool:
    """True when value (or anything inside it) is learner code: it must run contained."""
    if getattr(value, "__srelab_learner_code__", False):
        return True
    if _depth > 8:
        return False
    if isinstance(value, (list, tuple, set, frozenset)):
        return any(carries_learner_code(v, _depth + 1) for v in value)
    if isinstance(value, dict):
        return any(carries_learner_code(v, _depth + 1) for v in value.values())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return any(
            carries_learner_code(getattr(value, f.name), _depth + 1)
            for f in dataclasses.fields(value)
        )
    return False


def run_function(
    target: str,
    /,
    *args,
    timeout_s: float,
    env: dict | None = None,
    extra_env: dict | None = None,
    cwd: str | os.PathLike | None = None,
    echo=None,
    limits=None,
    **kwargs,
) -> IsolatedResult:
    """Call `target` ("package.module:function") in a fresh interpreter and return its value.

    ok is False when the function raised (exception_type and error say what), the process
    died (a signal, a CUDA abort), ran past timeout_s or past its memory limit. The value
    must be data (`labsupport.wire`). limits: None contains the run when its arguments carry
    learner code (the default `contain.Limits()`), pass a `contain.Limits` to choose.
    """
    if ":" not in target:
        raise ValueError(f"target must look like 'package.module:function', got {target!r}")
    if limits is None and carries_learner_code((args, kwargs)):
        from labsupport import contain

        limits = contain.Limits()
    with temp_dir() as tmp:
        payload, result = tmp / "payload.pkl", tmp / "result.json"
        payload.write_bytes(pickle.dumps((target, args, kwargs)))
        result.touch(mode=0o600)
        # the files are handed over open: a contained child cannot see this temp dir
        with open(payload, "rb") as pin, open(result, "r+b") as rout:
            code = (
                "from labsupport.isolate import _child_main; "
                f"_child_main({pin.fileno()}, {rout.fileno()})"
            )
            r = run_python(
                code,
                timeout_s=timeout_s,
                env=env,
                extra_env=extra_env,
                cwd=cwd,
                echo=echo,
                limits=limits,
                pass_fds=(pin.fileno(), rout.fileno()),
            )
        blob = result.read_bytes()
    outcome = None
    if blob:
        from labsupport import wire

        try:
            outcome = wire.loads(blob)
        except wire.WireError as exc:  # a result that is not data
            r.ok, r.error = False, f"could not read the result back: {exc}"
            return r
    if not isinstance(outcome, dict) or "ok" not in outcome:
        r.ok = False
        r.error = r.error or "the process ended without a result"
        return r
    r.flags = list(outcome.get("flags") or [])
    if r.flags:
        from labsupport.grading import flags

        flags.collect(r.flags)
    if outcome["ok"] and r.ok:
        r.value = outcome.get("value")
    elif outcome["ok"]:
        pass  # a value, but the process then timed out or overran its memory: not ok
    else:
        r.ok = False
        r.exception_type = str(outcome.get("exception_type"))
        r.error = f"{outcome.get('exception_type')}: {outcome.get('message')}"
        r.traceback = str(outcome.get("traceback", ""))
    return r


def call_learner(fn, /, *args, **kwargs):
    """Call learner code sent as a ref (`.load()`) or notebook function; a run_function target.

    >>> # isolate.run_function("labsupport.isolate:call_learner", lab.ref("f"), 21, timeout_s=30)
    """
    return (fn.load() if hasattr(fn, "load") else fn)(*args, **kwargs)


def _resolve(target: str):
    import importlib

    module_name, _, attr = target.partition(":")
    obj = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def _child_main(payload_fd: int, result_fd: int) -> None:
    """Entry point inside the fresh interpreter (see run_function)."""
    from labsupport import wire

    with os.fdopen(payload_fd, "rb") as f:
        target, args, kwargs = pickle.loads(f.read())
    out = os.fdopen(result_fd, "wb")
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
    outcome["flags"] = _learner_flags()
    try:
        data = wire.dumps(outcome)
    except wire.WireError as exc:
        data = wire.dumps(
            {
                "ok": False,
                "exception_type": "WireError",
                "message": f"the return value of {target} cannot be sent back: {exc}",
                "traceback": "",
                "flags": outcome["flags"],
            }
        )
    out.seek(0)
    out.truncate()
    out.write(data)
    out.close()
    sys.stdout.flush()


def _learner_flags() -> list:
    """Flags raised by learner code this process loaded (none loaded: nothing to say)."""
    module = sys.modules.get("labsupport.grading.flags")
    return module.recorded() if module is not None else []
