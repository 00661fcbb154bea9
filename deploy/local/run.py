"""`make run`: the local stack (Kafka, PostgreSQL) and every service, in the foreground.

Ctrl-C (or SIGTERM) stops the services through honcho, then the broker and the
database, so nothing is left running.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEVSTACK = [sys.executable, str(REPO / "deploy" / "local" / "devstack.py")]


def stack_env() -> dict[str, str]:
    output = subprocess.run(
        [*DEVSTACK, "env", "--stack", "dev"], check=True, capture_output=True, text=True
    ).stdout
    pairs = (line.split("=", 1) for line in output.splitlines() if "=" in line)
    return {key.strip(): value.strip() for key, value in pairs}


def main() -> int:
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
    honcho = subprocess.Popen(
        [sys.executable, "-m", "honcho", "start", "-f", "deploy/local/Procfile", "-d", str(REPO)],
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
