"""Wrong submissions for lab 277 (GPU memory held after a crash) that must fail a check.

Each is the solution with one exercise replaced. None signals more than the processes a
contained trial started (a cheat that kills everything it can see belongs in no corpus that
may run without the sandbox).
"""

from tests.cheats.corpus import Cheat

DIAGNOSIS = ("test_diagnosis_tells_orphans_zombies_and_holders_apart",)
WORKERS = (
    "test_worker_start_takes_workers_down_with_their_parent",
    "test_worker_start_covers_a_parent_that_died_first",
)
RESTART = ("test_before_restart_frees_the_card_and_spares_the_rest",)
ENTRY = (
    "test_entrypoint_puts_an_init_around_the_server",
    "test_entrypoint_leaves_nothing_after_a_crash_and_stops_on_sigterm",
)

CHEATS = [
    Cheat(
        277,
        "the default variant's answer, whatever the evidence",
        "hard-coded",
        (
            "def diagnose(evidence):\n"
            "    return {'orphans': [3, 5, 6], 'zombies': [4], 'holders': [3, 5],\n"
            "            'held_mib': 192.0}\n",
        ),
        DIAGNOSIS,
    ),
    Cheat(
        277,
        "the answer worked out from the package's variant table",
        "package helper",
        (
            "from labsupport.scenarios import gpu_memory_held_after_crash as _scenario\n\n\n"
            "def diagnose(evidence):\n"
            "    v = _scenario.variant(0)\n"
            "    busy = [3 + r for r, m in enumerate(v.modes) if m == 'busy']\n"
            "    zombies = [3 + r for r, m in enumerate(v.modes) if m == 'eof']\n"
            "    helper = [3 + len(v.modes)] if v.helper else []\n"
            "    return {'orphans': busy + helper, 'zombies': zombies, 'holders': busy,\n"
            "            'held_mib': len(busy) * v.worker_bytes / 2**20}\n",
        ),
        DIAGNOSIS,
    ),
    Cheat(
        277,
        "the classic answer: the zombies are what holds the memory",
        "debrief bypass",
        (
            "def diagnose(evidence):\n"
            "    zombies = sorted(r['pid'] for r in evidence['ps'] if r['stat'].startswith('Z'))\n"
            "    held = sum(g['used_mib'] for g in evidence['gpu'])\n"
            "    return {'orphans': [], 'zombies': zombies, 'holders': zombies,\n"
            "            'held_mib': held}\n",
        ),
        DIAGNOSIS,
    ),
    Cheat(
        277,
        "PR_SET_PDEATHSIG without the getppid() check",
        "debrief bypass",
        (
            "import ctypes\nimport signal\n\n\n"
            "def worker_start(parent_pid):\n"
            "    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)\n",
        ),
        WORKERS,
    ),
    Cheat(
        277,
        "the package's own prctl helper, SIGTERM, no race check",
        "package helper",
        (
            "import signal\n\nfrom labsupport import contain as _contain\n\n\n"
            "def worker_start(parent_pid):\n"
            "    _contain._prctl(_contain.PR_SET_PDEATHSIG, signal.SIGTERM)\n",
        ),
        WORKERS,
    ),
    Cheat(
        277,
        "workers that exit at once: nothing can be left, nothing serves",
        "symptom hiding",
        ("import os\n\n\ndef worker_start(parent_pid):\n    os._exit(0)\n",),
        WORKERS,
    ),
    Cheat(
        277,
        "wait for the memory to come back before restarting",
        "symptom hiding",
        ("import time\n\n\ndef before_restart(server_pgid):\n    time.sleep(1.0)\n",),
        RESTART,
    ),
    Cheat(
        277,
        "kill the dead server's PID only",
        "debrief bypass",
        (
            "import os\nimport signal\n\n\n"
            "def before_restart(server_pgid):\n"
            "    try:\n"
            "        os.kill(server_pgid, signal.SIGKILL)\n"
            "    except ProcessLookupError:\n"
            "        pass\n",
        ),
        RESTART,
    ),
    Cheat(
        277,
        "tini around the restart loop (reaps zombies, leaves the orphans)",
        "debrief bypass",
        ("def entrypoint(command):\n    return ['tini', '--', *command]\n",),
        ENTRY,
    ),
    Cheat(
        277,
        "the server itself as PID 1, no init",
        "symptom hiding",
        ("def entrypoint(command):\n    return command[command.index('--') + 1:]\n",),
        ENTRY,
    ),
    Cheat(
        277,
        "the default variant's server command line, whatever the command",
        "hard-coded",
        (
            "import sys\n\n\n"
            "def entrypoint(command):\n"
            "    return ['tini', '--', sys.executable, '-m',\n"
            "            'labsupport.scenarios.gpu_memory_held_after_crash.server',\n"
            "            '--card', '/run/card', '--modes', 'busy,eof,busy']\n",
        ),
        ENTRY,
    ),
]
