"""The incident's entrypoint: a Python script that restarts the server whenever it exits.

    $ python -m labsupport.scenarios.gpu_memory_held_after_crash.supervisor --backoff-s 1 -- \
          python -m labsupport.scenarios.gpu_memory_held_after_crash.server ...

It runs as the container's PID 1 (`ENTRYPOINT ["python", "supervise.py", "--", ...]`). It
starts the server in its own session, waits for that child (`Popen.wait`, which reaps that
PID only), logs its exit status, waits `--backoff-s` and starts it again. It installs no
signal handler.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from labsupport.linux import procs


def main(argv=None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    split = argv.index("--")
    p = argparse.ArgumentParser(prog="supervisor")
    p.add_argument("--backoff-s", type=float, default=1.0)
    a = p.parse_args(argv[:split])
    command = argv[split + 1 :]
    procs.set_name("entrypoint")
    while True:
        print("entrypoint: starting the server", flush=True)
        server = subprocess.Popen(command, start_new_session=True)
        status = server.wait()
        print(
            f"entrypoint: server exited with status {status}; restarting in {a.backoff_s:g} s",
            flush=True,
        )
        time.sleep(a.backoff_s)


if __name__ == "__main__":
    main()
