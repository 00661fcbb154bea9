"""`make run`: the local stack (Kafka, PostgreSQL) and every service, in the foreground.

    python deploy/local/run.py [--scale "routing=2 notify=3"]

``--scale`` (``make run SCALE=...``) sets how many instances of a service run: each
instance of routing, sla or notify is its own process in the service's consumer group,
with its own ops port (the service's, plus 100 for each instance after the first);
intake and reporting run that many uvicorn workers sharing their port. 0 leaves a
service out.

Ctrl-C (or SIGTERM) stops the services through honcho, then the broker and the
database, so nothing is left running.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEVSTACK = [sys.executable, str(REPO / "deploy" / "local" / "devstack.py")]
PROCFILE = REPO / "deploy" / "local" / "Procfile"
# Where each consumer service's ops endpoints (/health, /ready, /metrics) listen; the
# services' OPS_PORT defaults.
OPS_PORTS = {"routing": 8002, "sla": 8003, "notify": 8004}
# HTTP services scale by workers sharing the port: clients need one address.
WORKERS_SETTING = {"intake": "INTAKE_WORKERS", "reporting": "REPORTING_WORKERS"}
SERVICES = ("intake", *OPS_PORTS, "reporting")
INSTANCE_PORT_STEP = 100


def parse_scale(text: str) -> dict[str, int]:
    """``"routing=2 notify=3"`` (or comma-separated): instances per service."""
    scale: dict[str, int] = {}
    for item in text.replace(",", " ").split():
        service, _, count = item.partition("=")
        if service not in SERVICES:
            raise ValueError(f"no service {service!r} to scale: one of {', '.join(SERVICES)}")
        if not count.isdigit():
            raise ValueError(f"{item!r}: give a whole number of instances, e.g. {service}=2")
        scale[service] = int(count)
    return scale


def procfile(template: list[str], scale: dict[str, int]) -> list[str]:
    """The Procfile honcho runs: ``template``'s lines, a service's repeated or dropped."""
    lines: list[str] = []
    for line in template:
        name, _, command = line.partition(":")
        count = scale.get(name, 1)
        if name in WORKERS_SETTING:
            if count:
                setting = f"env {WORKERS_SETTING[name]}={count} " if count > 1 else ""
                lines.append(f"{name}: {setting}{command.strip()}")
        elif name in OPS_PORTS:
            for instance in range(count):
                port = OPS_PORTS[name] + INSTANCE_PORT_STEP * instance
                label = name if instance == 0 else f"{name}-{instance + 1}"
                setting = f"env OPS_PORT={port} " if instance else ""
                lines.append(f"{label}: {setting}{command.strip()}")
        elif line.strip():
            lines.append(line)
    return lines


def stack_env() -> dict[str, str]:
    output = subprocess.run(
        [*DEVSTACK, "env", "--stack", "dev"], check=True, capture_output=True, text=True
    ).stdout
    pairs = (line.split("=", 1) for line in output.splitlines() if "=" in line)
    return {key.strip(): value.strip() for key, value in pairs}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="", help='instances per service, "routing=2 sla=3"')
    try:
        scale = parse_scale(parser.parse_args().scale)
    except ValueError as exc:
        parser.error(str(exc))
    subprocess.run([*DEVSTACK, "up", "--stack", "dev"], check=True)
    # Intake and reporting refuse to start without credentials to check callers against.
    subprocess.run([sys.executable, "-m", "shared.auth.dev"], check=True, cwd=REPO)
    env = {**os.environ, **stack_env(), "PYTHONUNBUFFERED": "1"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    print(
        "\nComplaint platform starting:\n"
        "  intake     http://127.0.0.1:8001  (POST /v1/complaints, docs at /docs)\n"
        "  reporting  http://127.0.0.1:8005  (GET /v1/reports/summary, /v1/cases/{no})\n"
        f"  kafka      {env['KAFKA_BOOTSTRAP_SERVERS']}\n"
        f"  postgres   {env['DATABASE_URL']}\n"
        "  smtp sink  127.0.0.1:8025 -> .local/mail/\n"
        "  sms sink   http://127.0.0.1:8026 (gateway, Aliyun, Twilio, webhooks) -> .local/sms/\n"
        "  survey     http://127.0.0.1:8001/survey/{no}?token=… (the link in decisions)\n"
        "  credentials: branch API keys (X-Api-Key) and staff tokens (Authorization: Bearer;\n"
        "  the dashboard asks for one) in .local/credentials/dev-credentials.json\n"
        "Ctrl-C stops everything.\n",
        flush=True,
    )
    processes = procfile(PROCFILE.read_text().splitlines(), scale)
    scaled = REPO / ".local" / "run" / "Procfile"
    scaled.parent.mkdir(parents=True, exist_ok=True)
    scaled.write_text("\n".join(processes) + "\n")
    print("  processes  " + ", ".join(line.partition(":")[0] for line in processes), flush=True)
    honcho = subprocess.Popen(
        [sys.executable, "-m", "honcho", "start", "-f", str(scaled), "-d", str(REPO)],
        cwd=REPO,
        env=env,
    )
    # Ctrl-C reaches honcho through the terminal's process group; a SIGTERM sent to
    # this process alone is forwarded. Either way, wait for honcho before stopping infra.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: honcho.terminate())
    try:
        return honcho.wait()
    finally:
        subprocess.run([*DEVSTACK, "down", "--stack", "dev"], check=False)


if __name__ == "__main__":
    sys.exit(main())
