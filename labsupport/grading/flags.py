"""What a submission's code touched that an interviewer should know about: the report's flags.

    >>> from labsupport.grading import flags
    >>> flags.describe({"kind": "grading", "detail": "import labsupport.grading.report",
    ...                 "where": "cell 12, line 3"})
    "imported the grader's internals (import labsupport.grading.report) at cell 12, line 3"

In a process that runs learner code (the submission process, a workload or a server that
loads an exercise), `install(label, source)` adds an audit hook (PEP 578: it cannot be removed)
and takes a snapshot of what a cheat would patch. Only events raised from the learner's own
lines count, and each flag names the notebook cell and line. `recorded()` / `take()` give them
back with the process's answer; on the grading side `collect()` gathers them and the pytest
plugin files them under the check that was running. Flags inform; the verdicts come from the
checks. Kinds a lab needs (a lab about processes spawns them) are listed in the lab registry's
`allowed_flags` and left out of the report.
"""

from __future__ import annotations

import builtins
import gc
import os
import sys
import threading
import time

KINDS = {
    "grading": "imported the grader's internals",
    "frames": "read stack frames outside its own code",
    "introspection": "searched the interpreter's objects",
    "process": "started a process",
    "signal": "sent a signal",
    "socket": "opened a network socket",
    "file_write": "wrote a file",
    "native": "loaded native code through ctypes",
    "audit": "added an audit hook",
    "patched": "replaced something the measurement relies on",
    "gc_callbacks": "changed gc.callbacks",
}
GRADING_MODULES = ("labsupport.grading", "labsupport.contain", "tests", "pytest", "_pytest")
_PROCESS_EVENTS = {
    "subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.fork", "os.forkpty",
    "os.spawn", "os.startfile",
}  # fmt: skip
_WATCHED = {
    "import", "open", "sys._getframe", "sys._current_frames", "object.__getattr__",
    "gc.get_objects", "gc.get_referrers", "gc.get_referents", "socket.connect", "socket.bind",
    "ctypes.dlopen", "sys.addaudithook", "os.kill", "os.killpg", *_PROCESS_EVENTS,
}  # fmt: skip
_TIME_FUNCS = ("time", "perf_counter", "monotonic", "sleep", "process_time", "time_ns",
               "perf_counter_ns", "monotonic_ns")  # fmt: skip
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

_state = {"files": {}, "installed": False, "flags": [], "seen": set(), "sent": 0, "base": None}
_local = threading.local()
_collected: list[dict] = []


def describe(flag: dict) -> str:
    """One line for a report."""
    text = KINDS.get(flag.get("kind", ""), flag.get("kind", "?"))
    if flag.get("detail"):
        text += f" ({flag['detail']})"
    if flag.get("where"):
        text += f" at {flag['where']}"
    return text


def install(label: str, source: str) -> None:
    """Watch learner code compiled under the file name `label` (idempotent per label)."""
    _state["files"][label] = source.splitlines()
    if _state["installed"]:
        return
    _state["base"] = _snapshot()
    _state["installed"] = True
    sys.addaudithook(_hook)


def _where(label: str, lineno: int) -> str:
    lines = _state["files"].get(label, [])
    cell, start = None, 0
    for i in range(min(lineno, len(lines)) - 1, -1, -1):
        if lines[i].startswith("# ---- notebook cell "):
            cell, start = lines[i].split()[4], i + 1
            break
    text = lines[lineno - 1].strip() if 0 < lineno <= len(lines) else ""
    place = f"cell {cell}, line {lineno - start}" if cell else f"line {lineno}"
    return f"{place}: {text[:80]}" if text else place


def _learner_line(frame, through_imports: bool = False) -> str | None:
    """The innermost learner line on the stack above `frame` (None: not learner code).

    What a library does while it is being imported (torch loads native code, reads frames)
    is the library's doing, not the learner's: unless `through_imports`, a frame of the import
    machinery between the event and the learner's line means None.
    """
    files = _state["files"]
    while frame is not None:
        name = frame.f_code.co_filename
        if name in files:
            return _where(name, frame.f_lineno)
        if not through_imports and name.startswith("<frozen importlib"):
            return None
        frame = frame.f_back
    return None


def _classify(event: str, args: tuple) -> tuple[str, str] | None:
    if event == "import":
        name = str(args[0])
        if name.startswith(GRADING_MODULES):
            return "grading", f"import {name}"
        return None
    if event == "open":
        path, mode = args[0], args[1]
        if isinstance(path, int) or str(path) in (os.devnull,):
            return None
        writes = any(c in mode for c in "wax+") if isinstance(mode, str) else False
        if not writes and len(args) > 2 and isinstance(args[2], int):
            writes = bool(args[2] & _WRITE_FLAGS)
        return ("file_write", str(path)[:120]) if writes else None
    if event in _PROCESS_EVENTS:
        return "process", event
    if event in ("socket.connect", "socket.bind"):
        return "socket", f"{event} {args[1] if len(args) > 1 else ''}"[:120]
    if event in ("os.kill", "os.killpg"):
        return "signal", f"{event}{tuple(args)}"
    if event.startswith("gc."):
        return "introspection", event
    if event == "object.__getattr__":
        name = str(args[1]) if len(args) > 1 else ""
        return (
            ("frames", f"{name}")
            if name in ("tb_frame", "gi_frame", "cr_frame", "f_back")
            else None
        )
    if event in ("sys._getframe", "sys._current_frames"):
        return "frames", event
    if event == "ctypes.dlopen":
        return "native", str(args[0])[:80]
    if event == "sys.addaudithook":
        return "audit", event
    return None


def _hook(event: str, args: tuple) -> None:
    if event not in _WATCHED or getattr(_local, "busy", False):
        return
    _local.busy = True
    try:
        found = _classify(event, args)
        if found is None:
            return
        frame = sys._getframe(1)
        if found[0] == "frames":
            # only the learner's own call counts (the standard library reads frames too, e.g.
            # while importing), and only when it reaches a frame that is not the learner's
            if frame.f_code.co_filename not in _state["files"]:
                return
            got = args[0] if args else None
            if getattr(got, "f_code", None) is not None:
                if got.f_code.co_filename in _state["files"]:
                    return
            _add(found[0], found[1], _where(frame.f_code.co_filename, frame.f_lineno))
            return
        where = _learner_line(frame, through_imports=found[0] == "grading")
        if where is not None:
            _add(found[0], found[1], where)
    except Exception:  # an audit hook must never break the code it watches
        pass
    finally:
        _local.busy = False


def _add(kind: str, detail: str, where: str) -> None:
    key = (kind, detail, where)
    if key in _state["seen"] or len(_state["flags"]) >= 200:
        return
    _state["seen"].add(key)
    _state["flags"].append({"kind": kind, "detail": detail, "where": where})


def _snapshot() -> dict:
    labsupport = {}
    for name, module in list(sys.modules.items()):
        if name.startswith("labsupport") and module is not None:
            labsupport[name] = (
                id(module),
                {k: id(v) for k, v in vars(module).items() if callable(v)},
            )
    return {
        "builtins": {k: id(v) for k, v in vars(builtins).items()},
        "time": {k: id(getattr(time, k)) for k in _TIME_FUNCS if hasattr(time, k)},
        "gc_callbacks": [id(cb) for cb in gc.callbacks],
        "labsupport": labsupport,
    }


def _diff() -> None:
    base = _state["base"]
    if base is None:
        return
    now = _snapshot()
    for k, v in base["builtins"].items():
        if now["builtins"].get(k) != v:
            _add("patched", f"builtins.{k}", "")
    for k, v in base["time"].items():
        if now["time"].get(k) != v:
            _add("patched", f"time.{k}", "")
    if now["gc_callbacks"] != base["gc_callbacks"]:
        _add("gc_callbacks", f"{len(now['gc_callbacks'])} callbacks now", "")
    for name, (ident, attrs) in base["labsupport"].items():
        if name not in now["labsupport"] or now["labsupport"][name][0] != ident:
            _add("patched", f"sys.modules[{name!r}]", "")
            continue
        changed = [k for k, v in attrs.items() if now["labsupport"][name][1].get(k) != v]
        for k in changed[:5]:
            _add("patched", f"{name}.{k}", "")


def recorded() -> list[dict]:
    """Every flag raised in this process so far (after a last look for patches)."""
    _diff()
    return list(_state["flags"])


def take() -> list[dict]:
    """Flags raised since the last take()."""
    _diff()
    new = _state["flags"][_state["sent"] :]
    _state["sent"] = len(_state["flags"])
    return list(new)


def collect(flags: list[dict]) -> None:
    """Grading side: keep flags that came back from a submission or workload."""
    for f in flags:
        if isinstance(f, dict) and f.get("kind") in KINDS:
            _collected.append({k: str(f.get(k, ""))[:300] for k in ("kind", "detail", "where")})


def drain() -> list[dict]:
    """Grading side: the flags collected since the last drain, without duplicates."""
    out, seen = [], set()
    for f in _collected:
        key = (f["kind"], f["detail"], f["where"])
        if key not in seen:
            seen.add(key)
            out.append(f)
    _collected.clear()
    return out
