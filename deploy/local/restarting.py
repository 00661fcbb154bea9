"""`make run`'s restart policy: run one service, and start it again whenever it exits
asking for a restart.

    python deploy/local/restarting.py -m services.routing

honcho, which runs the Procfile, stops every process as soon as one ends. A service whose
consumer has stopped for good ends itself with ``RESTART_EXIT_CODE`` (shared/watchdog.py)
for its supervisor to restart it; under `make run` this is that supervisor, and the rest
of the platform carries on. Any other end (a crash at start-up, Ctrl-C) ends this too,
with the same status, and honcho stops everything as it always did.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from shared.watchdog import RESTART_EXIT_CODE  # noqa: E402

RESTART_PAUSE_S = 1.0


def main(args: list[str]) -> int:
    stopping = False
    child: subprocess.Popen[bytes] | None = None

    # honcho signals the whole process group, the service included; a signal sent to this
    # process alone is passed on, so that the service is never left behind.
    def stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while True:
        child = subprocess.Popen([sys.executable, *args])
        if stopping:
            child.send_signal(signal.SIGTERM)
        code = child.wait()
        if stopping or code != RESTART_EXIT_CODE:
            break
        print(
            f"{' '.join(args)} exited for a restart (status {code}); starting it again",
            file=sys.stderr,
            flush=True,
        )
        time.sleep(RESTART_PAUSE_S)
        if stopping:
            break
    # A service killed by a signal ends this the way a shell would report it.
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
