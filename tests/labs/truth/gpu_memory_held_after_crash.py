"""Lab 277's reference answers: who holds the card after the crash, and what a fix must do.

    >>> from tests.labs.truth import gpu_memory_held_after_crash as truth
    >>> ev = truth.evidence_cases(0)["the default shape: two orphans hold, one zombie, a helper"]
    >>> got = truth.diagnosis(ev)
    >>> got["zombies"], len(got["orphans"]), len(got["holders"])
    ([4], 3, 2)

Never part of the package. The rules, from the Linux man pages: a zombie (state Z) has exited
and released its memory (its address space and its CUDA context go at exit, before the parent
reaps it); it is only an entry in the process table waiting for its parent's wait(). An
orphan is alive; when its parent died it was re-parented to PID 1 of its PID namespace (or
the nearest child subreaper), so in a container whose entrypoint is PID 1 its PPID is 1. The
evidence is taken while the entrypoint waits to restart the server, so every live process
with PPID 1 other than PID 1 is an orphan. The holders are the live processes of this
container that the card lists (NVML's compute processes; a process of another container on
the same card is not ours to kill).
"""

from __future__ import annotations

import random

from labsupport.scenarios import gpu_memory_held_after_crash as scenario

GONE_BOUND_S = 2.0  # a worker must be gone this soon after its parent was SIGKILLed
STOP_BOUND_S = 3.0  # a SIGTERMed container must be gone this soon
HELD_TOLERANCE_BYTES = 2**20  # the stand-in card; a GPU's driver keeps a little more
HELD_TOLERANCE_GPU_BYTES = 64 * 2**20
MIB_TOLERANCE = 0.6  # held_mib against the sum of the listed MiB


# ---- the diagnosis --------------------------------------------------------------------------
def _zombie(row: dict) -> bool:
    return str(row["stat"]).startswith("Z")


def diagnosis(evidence: dict) -> dict:
    """The graded answer: orphans, zombies, the holders among this container's processes."""
    rows = evidence["ps"]
    live = {r["pid"] for r in rows if not _zombie(r)}
    zombies = sorted(r["pid"] for r in rows if _zombie(r))
    orphans = sorted(r["pid"] for r in rows if not _zombie(r) and r["ppid"] == 1 and r["pid"] != 1)
    holders = sorted({g["pid"] for g in evidence["gpu"] if g["pid"] in live})
    held = sum(g["used_mib"] for g in evidence["gpu"] if g["pid"] in holders)
    return {"orphans": orphans, "zombies": zombies, "holders": holders, "held_mib": round(held, 1)}


def near_misses(evidence: dict) -> dict[str, dict]:
    """The usual wrong readings of the same evidence, named for the hint."""
    rows, gpu = evidence["ps"], evidence["gpu"]
    truth = diagnosis(evidence)
    ppid1 = sorted(r["pid"] for r in rows if r["ppid"] == 1 and r["pid"] != 1)
    workers = sorted(r["pid"] for r in rows if r["name"].startswith("engine"))
    return {
        "zombies counted as orphans (state Z is not alive)": {"orphans": ppid1},
        "every engine worker counted, zombies included": {"holders": workers},
        "the zombies named as the holders": {"holders": truth["zombies"]},
        "the card's whole list, other containers' processes included": {
            "holders": sorted(g["pid"] for g in gpu if g["pid"] is not None)
            if any(g["pid"] is None for g in gpu)
            else truth["holders"] + [-1]
        },
        "resident memory (RSS) summed instead of the card's": {
            "held_mib": round(
                sum(r["rss_kib"] for r in rows if r["pid"] in truth["holders"]) / 1024, 1
            )
        },
        "the card's used memory, other containers included": {
            "held_mib": round(sum(g["used_mib"] for g in gpu), 1)
        },
    }


def _row(pid, ppid, stat, name, cmd, rss_kib):
    return {"pid": pid, "ppid": ppid, "stat": stat, "name": name, "cmd": cmd, "rss_kib": rss_kib}


def _case(rng, modes: list[str], helper: bool, mib: float, *, other_tenant: float = 0.0,
          restarts: int = 1) -> dict:  # fmt: skip
    """A container after its server was SIGKILLed: PID 1 the entrypoint, workers 3.., the
    server (pid 2) gone; busy workers alive and holding, eof workers zombies."""
    rows = [_row(1, 0, "Ss", "entrypoint", "python -m supervisor --backoff-s 1 -- python -m "
                 "server --modes " + ",".join(modes), rng.randint(15000, 17000))]  # fmt: skip
    gpu, listening = [], []
    pid = 3
    for rank, mode in enumerate(modes):
        if mode == "eof":
            rows.append(_row(pid, 1, "Z", f"engine-w{rank}", "", 0))
        else:
            rows.append(_row(pid, 1, rng.choice(["S", "Sl", "R"]), f"engine-w{rank}",
                             f"python -m worker --rank {rank} --port {29500 + rank}",
                             rng.randint(16000, 2_400_000)))  # fmt: skip
            gpu.append({"pid": pid, "used_mib": round(mib + rng.choice([0, 0, 506.0]), 1)})
            listening.append({"pid": pid, "port": 29500 + rank})
        pid += 1
    if helper:
        rows.append(_row(pid, 1, "S", "detokenizer", f"python -m worker --rank {len(modes)}",
                         rng.randint(15000, 90000)))  # fmt: skip
        pid += 1
    if other_tenant:
        gpu.append({"pid": None, "used_mib": other_tenant})
    log = ["entrypoint: starting the server", "ready: serving on 127.0.0.1:8000",
           "entrypoint: server exited with status -9; restarting in 1 s"]  # fmt: skip
    for _ in range(restarts):
        log += ["entrypoint: starting the server", "ValueError: Free memory on device ...",
                "entrypoint: server exited with status 1; restarting in 1 s"]  # fmt: skip
    used = sum(g["used_mib"] for g in gpu)
    rng.shuffle(gpu)
    card = {"total_mib": 81559.0, "used_mib": round(used + 4.0, 1)}
    return {"ps": rows, "gpu": gpu, "listening": listening, "card": card, "log": log}


def evidence_cases(seed: int) -> dict[str, dict]:
    """Written evidence, built so that each usual shortcut gives another answer."""
    rng = random.Random(f"277-evidence-{seed}")
    return {
        "the default shape: two orphans hold, one zombie, a helper": _case(
            random.Random(0), ["busy", "eof", "busy"], True, 2666.0
        ),
        "three zombies, one orphan that holds, another container's server on the card": _case(
            rng,
            ["eof", "busy", "eof", "eof"],
            False,
            rng.choice([1830.0, 3410.0]),
            other_tenant=rng.choice([41244.0, 60112.0]),
        ),
        "every worker exited: zombies only, nothing held": _case(rng, ["eof", "eof"], True, 0.0),
        "four orphans hold, a helper, two failed restarts": _case(
            rng, ["busy"] * 4, True, rng.choice([1024.0, 2048.0]), restarts=2
        ),
    }


# ---- the fixes ------------------------------------------------------------------------------
def worker_start_problems(out: dict, arm: str) -> list[str]:
    """What arm "parent_killed" or "parent_died_first" of the worker_start trial shows is
    wrong ([] if nothing)."""
    if "error" in out:
        return [f"the trial did not run: {out['error']}"]
    killed = out["parent_killed"]
    if not killed.get("ready"):
        tail = " | ".join(killed.get("output", [])[-3:])
        return [
            "with your worker_start the workers never got ready (a worker that exits or "
            f"raises in its start hook cannot serve): {tail[:300]}"
        ]
    problems = []
    if arm == "parent_killed":
        if not all(killed["alive_with_parent"]):
            problems.append(
                f"{killed['alive_with_parent'].count(False)} worker(s) were gone a second after "
                "starting while their parent was alive: worker_start must not end a worker "
                "whose parent lives"
            )
        late = [g for g in killed["gone_s"] if g is None or g > GONE_BOUND_S]
        if late:
            problems.append(
                f"{len(late)} of {killed['workers']} worker(s) were still running "
                f"{GONE_BOUND_S:g} s after their parent was SIGKILLed (a SIGKILLed parent runs "
                "no cleanup: the kernel must tell the child)"
            )
        return problems
    first = out["parent_died_first"]
    late = [g for g in first["gone_s"] if g is None or g > GONE_BOUND_S]
    if late:
        problems.append(
            f"{len(late)} of {first['workers']} worker(s) whose parent died before their hook "
            "ran kept running: the parent-death signal is armed for the parent of the moment "
            "you ask, and an orphan's parent is already someone else. Check after arming it"
        )
    return problems


def before_restart_problems(out: dict) -> list[str]:
    if "error" in out:
        return [f"the trial did not run: {out['error']}"]
    problems = []
    if out.get("hook_error"):
        problems.append(f"before_restart raised {out['hook_error']}")
    late = [g for g in out["gone_s"] if g is None or g > GONE_BOUND_S]
    if late:
        problems.append(
            f"{len(late)} of {out['workers']} worker(s) of the dead server were still running "
            f"{GONE_BOUND_S:g} s after before_restart: they were started in the server's "
            "process group, which outlives the server"
        )
    if not out["shipper_alive"]:
        problems.append(
            "the log shipper running beside the server (its own session) was killed: kill "
            "the dead server's group, not every process you can see"
        )
    if not out.get("restarted"):
        problems.append(
            "the server did not start again: " + " | ".join(out.get("restart_output", []))[:200]
        )
    return problems


def entrypoint_problems(crash, stop, tolerance: int) -> list[str]:
    """What the container runs (crash: the server SIGKILLed; stop: SIGTERM to PID 1) show."""
    problems = []
    if crash.serving is None:
        return ["the server never served in that container: " + " | ".join(crash.log[-3:])]
    zombies = [r for r in crash.after.ps if str(r["stat"]).startswith("Z")]
    if zombies:
        problems.append(
            f"{len(zombies)} zombie(s) stayed after the crash "
            f"({', '.join(r['name'] for r in zombies)}): PID 1 must reap the children it adopts"
        )
    held = crash.held_after_bytes
    if held > tolerance:
        problems.append(
            f"{held / 2**20:.0f} MiB of the card stayed held after the crash, by "
            f"{len([g for g in crash.after.gpu if g['pid']])} live process(es): an init reaps "
            "zombies, it does not kill orphans. Let the container end with its server (no "
            "restart loop inside it: the orchestrator restarts the container, and PID 1's exit "
            "takes every process of the namespace with it)"
        )
    if stop.serving is not None and (stop.stop_s is None or stop.stop_s > STOP_BOUND_S):
        problems.append(
            f"SIGTERM to PID 1 (docker stop, kubectl delete) did not end the container within "
            f"{STOP_BOUND_S:g} s: PID 1 gets no default action for a signal it has no handler "
            "for. An init forwards it to its child"
        )
    return problems


def entrypoint_inputs() -> list[list[str]]:
    """Commands the static check offers (the variant's own comes from the package)."""
    return [
        ["/usr/bin/python3", "-m", "svc.supervise", "--", "/usr/bin/python3", "-m", "svc.serve",
         "--port", "8000"],
        ["python", "-m", "run_all", "--backoff-s", "2", "--", "vllm", "serve", "m", "--tp", "2"],
    ]  # fmt: skip


# ---- interviewer material -------------------------------------------------------------------
def answer_key(seed: int) -> dict:
    v = scenario.variant(seed)
    busy = [r for r, m in enumerate(v.modes) if m == "busy"]
    return {
        "workers": list(v.modes),
        "helper_without_device_memory": v.helper,
        "orphans_holding": [f"engine-w{r}" for r in busy],
        "zombies": [f"engine-w{r}" for r, m in enumerate(v.modes) if m == "eof"],
        "held_mib_stand_in": len(busy) * v.worker_bytes / 2**20,
        "container pids": "entrypoint 1, server 2 (killed), workers 3.. in rank order, helper last",
    }


def expected(seed: int) -> dict:
    v = scenario.variant(seed)
    key = answer_key(seed)
    mib = v.worker_bytes / 2**20
    return {
        "the container": f"{v.workers} workers ({', '.join(v.modes)})"
        + (", a detokenizer helper" if v.helper else ""),
        "after the SIGKILL": (
            f"orphans {key['orphans_holding']} (state S, PPID 1) hold {mib:.0f} MiB each on the "
            f"stand-in card ({key['held_mib_stand_in']:.0f} MiB; about 2.6 GiB each on a GPU) and "
            f"their ports 29500+rank; zombies {key['zombies']} (state Z, RSS 0, not on the card)"
            + ("; the detokenizer is an orphan that holds nothing" if v.helper else "")
        ),
        "the restart": (
            "the entrypoint restarts the server, which refuses to start: 'Free memory on device "
            "... on startup is less than desired GPU memory utilization (0.90 ...)', every "
            "second; `docker stop` (SIGTERM to PID 1) is ignored"
        ),
        "passing fixes": (
            "worker_start: prctl(PR_SET_PDEATHSIG, SIGKILL) then exit if os.getppid() != "
            "parent_pid; before_restart: os.killpg(server_pgid, SIGKILL); entrypoint: "
            "['tini', '--', *server part] (or -g), no restart loop inside the container"
        ),
    }


RUBRIC = {
    "diagnosis": {
        "strong": (
            "Reads ps (STAT, PPID) and the card's process list together: names the live "
            "orphans (PPID 1) that hold memory and their ports, says the zombies hold nothing "
            "(they exited; only their process-table entry waits for a wait()) and cannot be "
            "killed, leaves other containers' processes alone, and sums what the orphans hold."
        ),
        "adequate": (
            "Finds the processes holding the card and kills them, but calls them zombies or "
            "counts the zombies among the holders."
        ),
        "weak": "Restarts the node or the driver; `kill -9` on the zombies; blames a memory leak.",
    },
    "fix": {
        "strong": (
            "Workers arm PR_SET_PDEATHSIG and check getppid() afterwards; the supervisor kills "
            "the dead server's process group before a restart; the container's PID 1 is an "
            "init (tini) running the server itself, so the container ends with it and the "
            "orchestrator restarts it clean."
        ),
        "adequate": (
            "One layer only (tini, or PDEATHSIG without the race check, or pkill by name), or "
            "tini kept around an in-container restart loop."
        ),
        "weak": "A trap in the start script (a SIGKILLed parent runs no trap), or kill(-1).",
    },
    "reasoning": {
        "strong": (
            "Explains re-parenting (PID 1 or a subreaper), why zombies hold no GPU memory, why "
            "tini does not fix orphans, why PID 1 ignores SIGTERM without a handler, why "
            "NVML's PIDs are the host's in a container, and the vLLM field case (an orphaned "
            "EngineCore holding ~10 GB for a day, the next start refused)."
        ),
        "adequate": "Knows tini and kill -9 but not what the kernel does on a parent's death.",
        "weak": "Treats orphan and zombie as the same thing.",
    },
}
