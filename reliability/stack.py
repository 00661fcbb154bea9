"""The `faults` devstack: a Kafka broker and a PostgreSQL server of our own to break.

Restarting a broker or a database would disturb whoever else uses it, so the harness
never touches the `dev` or `test` stacks: it brings up `faults` (deploy/local/devstack.py,
ports 29192/29193/25533) and stops and starts its servers with devstack's own functions.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

REPO = Path(__file__).resolve().parents[1]
DEVSTACK_PATH = REPO / "deploy" / "local" / "devstack.py"
STACK = "faults"
GONE_TIMEOUT_S = 30.0

ShutdownMode = Literal["fast", "immediate"]


def _load_devstack() -> ModuleType:
    """devstack.py is a script, not a package: load it by its path, once."""
    name = "complaints_devstack"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, DEVSTACK_PATH)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


devstack = _load_devstack()


# DEVSTACK_KAFKA_PORT and its kind move the stack someone runs (dev, test) off busy ports;
# the faults stack sits on ports of its own, apart from both, and must stay there.
_PORT_OVERRIDES = ("DEVSTACK_KAFKA_PORT", "DEVSTACK_CONTROLLER_PORT", "DEVSTACK_PG_PORT")


def _devstack_cli(*args: str) -> str:
    command = [sys.executable, str(DEVSTACK_PATH), *args, "--stack", STACK]
    env = {k: v for k, v in os.environ.items() if k not in _PORT_OVERRIDES}
    return subprocess.run(  # noqa: S603 - our own script, fixed arguments
        command, cwd=REPO, env=env, check=True, capture_output=True, text=True
    ).stdout


def _wait_gone(pid: int, timeout: float = GONE_TIMEOUT_S) -> bool:
    deadline = time.monotonic() + timeout
    while devstack.process_cmdline(pid) is not None:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


class FaultsStack:
    """Start, stop, kill and restart the `faults` stack's broker and database."""

    def __init__(self) -> None:
        kafka, controller, pg = devstack.DEFAULT_PORTS[STACK]
        self.stack: Any = devstack.Stack(
            name=STACK,
            kafka_port=kafka,
            controller_port=controller,
            pg_port=pg,
            kafka_heap=devstack.load_stack(STACK).kafka_heap,
        )
        # Brokers this process started are its children: reap them, or they stay zombies.
        self._children: list[subprocess.Popen[bytes]] = []

    @property
    def bootstrap(self) -> str:
        return str(self.stack.bootstrap_servers)

    @property
    def database_url(self) -> str:
        return str(self.stack.database_url)

    def up(self) -> None:
        """Both servers running, the database and the default topics there (idempotent)."""
        _devstack_cli("up")

    def down(self) -> None:
        _devstack_cli("down")
        self._reap()

    def kafka_pid(self) -> int | None:
        pid: int | None = devstack.find_kafka_pid(self.stack)
        return pid

    def postgres_pid(self) -> int | None:
        pid: int | None = devstack.postmaster_pid(self.stack)
        return pid

    def stop_kafka(self, how: signal.Signals) -> int | None:
        """SIGTERM: a clean shutdown (devstack's own stop); SIGKILL: a crash. The pid."""
        pid = self.kafka_pid()
        if pid is None:
            return None
        if how == signal.SIGTERM:
            devstack.stop_kafka(self.stack)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, how)
            _wait_gone(pid)
            self.stack.kafka_pid_file.unlink(missing_ok=True)
        self._reap()
        return pid

    def start_kafka(self) -> None:
        process = devstack.start_kafka(self.stack)
        if process is not None:
            self._children.append(process)
        devstack.wait_for_kafka(self.stack, process)

    def stop_postgres(self, mode: ShutdownMode) -> int | None:
        """pg_ctl stop in ``mode``: fast (clean, sessions cut) or immediate (a crash:
        no checkpoint, WAL replayed at the next start)."""
        pid = self.postgres_pid()
        if pid is None:
            return None
        command = [devstack.pg_bin("pg_ctl"), "stop", "-m", mode, "-w", "-t", "60"]
        command += ["-D", str(self.stack.pg_data)]
        as_user = devstack.pg_user_kwargs(self.stack)
        devstack.run_checked(command, f"pg_ctl stop -m {mode}", **as_user)
        _wait_gone(pid)
        return pid

    def start_postgres(self) -> None:
        devstack.start_pg(self.stack)
        devstack.ensure_database(self.stack)

    def _reap(self) -> None:
        for process in self._children:
            process.poll()
        self._children = [p for p in self._children if p.returncode is None]
