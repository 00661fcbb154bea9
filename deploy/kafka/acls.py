"""Least privilege in Kafka: one SCRAM user per service, and ACLs that let it write only
its own topics. The grants are derived from the code, so they follow the services.

    python deploy/kafka/acls.py plan [--namespace complaints] [--json]
    python deploy/kafka/acls.py script --bootstrap-server HOST:9094 --command-config admin.props
    python deploy/kafka/acls.py apply  --bootstrap-server HOST:9094 --command-config admin.props
    python deploy/kafka/acls.py users  --bootstrap-server HOST:9094 --command-config admin.props \\
        [--passwords-file FILE] [--user NAME ...]

``plan`` prints every ACL; ``script`` the ``kafka-acls.sh`` commands that create them
(to review, or to run by hand); ``apply`` runs those commands; ``users`` creates the SCRAM
users, or changes their passwords (rotation). Adding an ACL that exists is a no-op, so
``apply`` may run again after any change. ``--command-config`` is a client properties
file logging in as a super user (deploy/kafka/admin.properties.example).

Kafka's own tools do the work (aiokafka has no API for ACLs or SCRAM users): the
``kafka-acls.sh``/``kafka-configs.sh`` of a Kafka distribution with ``--kafka-bin``, else
the same classes run with ``java`` from the jars ``deploy/local/devstack.py fetch`` put in
``.local/kafka/lib`` (``--kafka-lib``).

Who may do what (``<ns>`` is ``COMPLAINTS_TOPIC_NAMESPACE``, users are ``<ns>-<name>``):

- each service: WRITE and DESCRIBE on the topics ``shared/topics.py`` says it produces and
  on the dead-letter topics of the topics it consumes (a consumer dead-letters what it
  cannot process); READ on the topics it consumes (its ``SUBSCRIBES_TO``) and on its
  consumer groups. Nothing else: no CREATE, no ALTER, no cluster operation. Idempotent
  producers need no IDEMPOTENT_WRITE on the cluster (deprecated by KIP-679): WRITE on a
  topic is enough, as tests/integration/test_kafka_acls.py shows on Kafka 4.1.
- ``<ns>-dlq-replay``, for an operator running ``python -m shared.dlq_replay``: READ on
  the dead-letter topics and on the groups ``dlq-replay.<ns>.*``, WRITE on the topics the
  dead letters go back to.
- ``<ns>-branches``, the branch systems: WRITE on ``<ns>.submitted``, READ on
  ``<ns>.submission-outcomes`` and on groups ``branch-*``.

Passwords for ``users`` come from ``--passwords-file`` (JSON: user name to password) or the
environment, ``COMPLAINTS_<NAME>_KAFKA_PASSWORD`` (``COMPLAINTS_ROUTING_KAFKA_PASSWORD``,
``COMPLAINTS_DLQ_REPLAY_KAFKA_PASSWORD``); they reach Kafka's tool in a file only its
owner can read, never on a command line, and are never printed.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import importlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from shared.topics import DEFAULT_NAMESPACE, Topics, service_groups  # noqa: E402

SERVICES = ("intake", "routing", "sla", "notify", "reporting")
DLQ_REPLAY = "dlq-replay"
BRANCHES = "branches"
BRANCH_GROUP_PREFIX = "branch-"
SCRAM_MECHANISM = "SCRAM-SHA-512"
DEFAULT_KAFKA_LIB = REPO_ROOT / ".local" / "kafka" / "lib"
TOOL_CLASSES = {"acls": "org.apache.kafka.tools.AclCommand", "configs": "kafka.admin.ConfigCommand"}
# Each tool run is a short-lived JVM: start it quickly rather than run it fast.
QUICK_JVM = ["-Xshare:auto", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-Xmx256m"]
TOOL_TIMEOUT_S = 120


class ToolError(Exception):
    """A Kafka tool failed; the message carries the end of its output."""


@dataclass(frozen=True)
class Grant:
    """ALLOW ``operations`` to ``user`` on ``topics`` and ``groups`` (one kafka-acls call)."""

    user: str
    operations: tuple[str, ...]
    topics: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    prefixed: bool = False

    @property
    def principal(self) -> str:
        return f"User:{self.user}"

    def acl_arguments(self) -> list[str]:
        arguments = ["--add", "--allow-principal", self.principal]
        for operation in self.operations:
            arguments += ["--operation", operation]
        for topic in self.topics:
            arguments += ["--topic", topic]
        for group in self.groups:
            arguments += ["--group", group]
        if self.prefixed:
            arguments += ["--resource-pattern-type", "prefixed"]
        return arguments

    def rows(self) -> list[tuple[str, str, str, str, str]]:
        """(user, operation, resource type, name, pattern) for each ACL this grant makes."""
        pattern = "PREFIXED" if self.prefixed else "LITERAL"
        resources = [("TOPIC", t) for t in self.topics] + [("GROUP", g) for g in self.groups]
        return [
            (self.user, operation.upper(), kind, name, pattern)
            for kind, name in resources
            for operation in self.operations
        ]


def user_name(namespace: str, name: str) -> str:
    """The Kafka user of a service (or of ``dlq-replay``, ``branches``) in a namespace:
    environments sharing a cluster do not share users."""
    return f"{namespace}-{name}"


def subscribed_roles(service: str) -> tuple[str, ...]:
    roles: tuple[str, ...] = importlib.import_module(f"services.{service}.app").SUBSCRIBES_TO
    return roles


def plan(namespace: str = DEFAULT_NAMESPACE) -> list[Grant]:
    """Every grant of the platform in ``namespace``."""
    topics = Topics.in_namespace(namespace)
    grants: list[Grant] = []
    consumed_anywhere: dict[str, None] = {}  # ordered set
    for service in SERVICES:
        user = user_name(namespace, service)
        consumed = [topics.by_role(role) for role in subscribed_roles(service)]
        consumed_anywhere.update((topic.name, None) for topic in consumed)
        writes = [topic.name for topic in topics.all() if topic.producer == service]
        writes += [topic.dead_letter for topic in consumed]
        if writes:
            grants.append(Grant(user, ("Write", "Describe"), topics=tuple(writes)))
        grants.append(
            Grant(
                user,
                ("Read",),
                topics=tuple(topic.name for topic in consumed),
                groups=service_groups(namespace, service),
            )
        )
    replay = user_name(namespace, DLQ_REPLAY)
    sources = tuple(consumed_anywhere)
    grants += [
        Grant(replay, ("Read",), topics=tuple(f"{name}.dlq" for name in sources)),
        Grant(replay, ("Read",), groups=(f"dlq-replay.{namespace}.",), prefixed=True),
        Grant(replay, ("Write", "Describe"), topics=sources),
    ]
    branches = user_name(namespace, BRANCHES)
    grants += [
        Grant(branches, ("Write", "Describe"), topics=(topics.submitted.name,)),
        Grant(branches, ("Read",), topics=(topics.submission_outcomes.name,)),
        Grant(branches, ("Read",), groups=(BRANCH_GROUP_PREFIX,), prefixed=True),
    ]
    return grants


def users(namespace: str = DEFAULT_NAMESPACE) -> list[str]:
    return [user_name(namespace, name) for name in (*SERVICES, DLQ_REPLAY, BRANCHES)]


def password_variable(namespace: str, user: str) -> str:
    """``complaints-dlq-replay`` -> ``COMPLAINTS_DLQ_REPLAY_KAFKA_PASSWORD``."""
    name = user.removeprefix(f"{namespace}-")
    return f"COMPLAINTS_{name.upper().replace('-', '_')}_KAFKA_PASSWORD"


def passwords_from(
    file: Path | None, environ: Mapping[str, str], namespace: str = DEFAULT_NAMESPACE
) -> dict[str, str]:
    passwords: dict[str, str] = {}
    for user in users(namespace):
        value = environ.get(password_variable(namespace, user))
        if value:
            passwords[user] = value
    if file is not None:
        loaded = json.loads(file.read_text(encoding="utf-8"))
        if not isinstance(loaded, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in loaded.items()
        ):
            raise ValueError(f"{file}: expected a JSON object of user name to password")
        passwords.update(loaded)
    return passwords


def scram_config(password: str) -> str:
    """The ``--add-config-file`` line that sets a user's SCRAM credential."""
    # The file is a Java properties file: a backslash would be read as an escape, a line
    # break would end the value and surrounding blanks would be dropped, each silently
    # setting another password than the one given. (No brackets here: kafka-configs
    # strips them only from --add-config.)
    if not password or password != password.strip() or any(c in password for c in "\\\n\r"):
        raise ValueError(
            "a Kafka password must be non-empty, without a backslash, a line break or "
            "blanks at either end"
        )
    return f"{SCRAM_MECHANISM}=password={password}\n"


@dataclass(frozen=True)
class KafkaTools:
    """Where Kafka's command-line tools come from."""

    kafka_bin: Path | None = None
    kafka_lib: Path = DEFAULT_KAFKA_LIB

    def command(self, tool: str) -> list[str]:
        if self.kafka_bin is not None:
            return [str(self.kafka_bin / f"kafka-{tool}.sh")]
        if not any(self.kafka_lib.glob("kafka-tools-*.jar")):
            raise ToolError(
                f"no Kafka jars in {self.kafka_lib}: run `deploy/local/devstack.py fetch` "
                "or pass --kafka-bin with a Kafka distribution's bin/"
            )
        return [_java(), *QUICK_JVM, "-cp", f"{self.kafka_lib}/*", TOOL_CLASSES[tool]]

    def run(self, tool: str, arguments: Sequence[str], secrets: Sequence[str] = ()) -> str:
        """Run a tool; ``secrets`` are blanked out of its output, which may quote them."""
        command = [*self.command(tool), *arguments]
        try:
            result = subprocess.run(
                command,
                capture_output=True,
                text=True,
                check=False,
                stdin=subprocess.DEVNULL,
                timeout=TOOL_TIMEOUT_S,
            )
        except subprocess.TimeoutExpired as exc:
            raise ToolError(f"kafka-{tool} did not finish in {TOOL_TIMEOUT_S} s") from exc
        output = result.stdout + result.stderr
        for secret in secrets:
            output = output.replace(secret, "[redacted]")
        if result.returncode != 0:
            tail = "\n".join(output.strip().splitlines()[-20:])
            raise ToolError(f"kafka-{tool} failed (exit {result.returncode}):\n{tail}")
        return output


def _java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        return str(Path(java_home) / "bin" / "java")
    java = shutil.which("java")
    if java is None:
        raise ToolError("java not found: install Java 17+ or pass --kafka-bin")
    return java


def connection_arguments(bootstrap_server: str, command_config: Path) -> list[str]:
    return ["--bootstrap-server", bootstrap_server, "--command-config", str(command_config)]


def apply_acls(
    grants: Sequence[Grant],
    bootstrap_server: str,
    command_config: Path,
    tools: KafkaTools,
    *,
    jobs: int = 2,
) -> int:
    """Create every grant's ACLs; how many ACLs that is (those that existed included)."""
    connection = connection_arguments(bootstrap_server, command_config)
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        runs = [pool.submit(tools.run, "acls", [*connection, *g.acl_arguments()]) for g in grants]
        for run in runs:
            run.result()
    return sum(len(grant.rows()) for grant in grants)


def set_passwords(
    passwords: Mapping[str, str], bootstrap_server: str, command_config: Path, tools: KafkaTools
) -> list[str]:
    """Create each user's SCRAM credential, or replace it (rotation); the users done."""
    connection = connection_arguments(bootstrap_server, command_config)
    configs = {user: scram_config(password) for user, password in sorted(passwords.items())}
    done = []
    with tempfile.TemporaryDirectory(prefix="kafka-users-") as private:  # mode 0700
        for user, line in configs.items():
            secret = passwords[user]
            config = Path(private) / "scram.properties"
            descriptor = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(descriptor, "w", encoding="utf-8") as out:
                out.write(line)
            alter = ["--alter", "--entity-type", "users", "--entity-name", user]
            tools.run("configs", [*connection, *alter, "--add-config-file", str(config)], [secret])
            done.append(user)
    return done


def script(grants: Sequence[Grant], bootstrap_server: str, command_config: Path) -> str:
    connection = connection_arguments(bootstrap_server, command_config)
    lines = [
        "#!/bin/sh",
        "# Generated by deploy/kafka/acls.py script; adding an ACL twice is a no-op.",
        "set -eu",
    ]
    lines += [shlex.join(["kafka-acls.sh", *connection, *g.acl_arguments()]) for g in grants]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    shown = commands.add_parser("plan", help="print every ACL")
    shown.add_argument("--json", action="store_true")
    scripted = commands.add_parser("script", help="print the kafka-acls.sh commands")
    applied = commands.add_parser("apply", help="create the ACLs")
    users_parser = commands.add_parser("users", help="create users or change their passwords")
    for sub in (shown, scripted, applied, users_parser):
        sub.add_argument(
            "--namespace",
            default=os.environ.get("COMPLAINTS_TOPIC_NAMESPACE", DEFAULT_NAMESPACE),
            help="the topics' namespace (COMPLAINTS_TOPIC_NAMESPACE)",
        )
    for sub in (scripted, applied, users_parser):
        sub.add_argument("--bootstrap-server", required=True)
        sub.add_argument(
            "--command-config", type=Path, required=True, help="admin client properties"
        )
    for sub in (applied, users_parser):
        sub.add_argument("--kafka-bin", type=Path, help="a Kafka distribution's bin/")
        sub.add_argument("--kafka-lib", type=Path, default=DEFAULT_KAFKA_LIB)
    applied.add_argument("--jobs", type=int, default=2, help="tool runs at a time")
    users_parser.add_argument("--passwords-file", type=Path)
    users_parser.add_argument(
        "--user", action="append", help="only this user (repeat); default: all with a password"
    )
    args = parser.parse_args(argv)

    if args.command == "plan":
        grants = plan(args.namespace)
        rows = [row for grant in grants for row in grant.rows()]
        if args.json:
            keys = ("user", "operation", "resource_type", "name", "pattern")
            print(json.dumps([dict(zip(keys, row, strict=True)) for row in rows], indent=2))
        else:
            for row in rows:
                print(
                    "  ".join(
                        f"{cell:<{width}}"
                        for cell, width in zip(row, (24, 9, 6, 40, 8), strict=True)
                    ).rstrip()
                )
        return 0
    if args.command == "script":
        print(script(plan(args.namespace), args.bootstrap_server, args.command_config), end="")
        return 0
    tools = KafkaTools(args.kafka_bin, args.kafka_lib)
    try:
        if args.command == "apply":
            count = apply_acls(
                plan(args.namespace),
                args.bootstrap_server,
                args.command_config,
                tools,
                jobs=args.jobs,
            )
            print(f"acls: {count} in place for {len(users(args.namespace))} users", file=sys.stderr)
            return 0
        passwords = passwords_from(args.passwords_file, os.environ, args.namespace)
        if args.user:
            missing = sorted(set(args.user) - set(passwords))
            if missing:
                print(f"acls: no password for {', '.join(missing)}", file=sys.stderr)
                return 2
            passwords = {user: passwords[user] for user in args.user}
        done = set_passwords(passwords, args.bootstrap_server, args.command_config, tools)
        print(f"users: credentials set for {', '.join(done) or 'nobody'}", file=sys.stderr)
        without = sorted(set(users(args.namespace)) - set(passwords))
        if without and not args.user:
            print(f"users: no password given for {', '.join(without)}", file=sys.stderr)
        return 0
    except (ToolError, ValueError) as exc:
        print(f"acls: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
