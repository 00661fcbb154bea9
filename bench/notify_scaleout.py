"""How notify's delivery scales with instances against a slow SMS provider.

Starts the fake SMS gateway with a fixed latency per request, then for each instance
count: a fresh database, that many `python -m services.notify` processes, and a batch
of queued SMS notifications written straight into notify's table (this measures the
delivery stage alone: claiming, sending, recording). Throughput is messages over the
time from their release to the last one recorded sent.

    python bench/notify_scaleout.py \
        --database-url postgresql://postgres@127.0.0.1:15433/complaints \
        --kafka 127.0.0.1:19092 [--messages 2000] [--latency-ms 50] \
        [--instances 1 2 4] [--concurrency 8]

Needs a running broker and PostgreSQL (`deploy/local/devstack.py up --stack test`).
Results go to bench/results/notify-scaleout-<UTC time>.json and to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.run import free_port, wait_http  # noqa: E402
from shared.kafka_admin import ensure_topics  # noqa: E402
from shared.topics import all_topic_partitions  # noqa: E402


async def until(check: Callable[[], Awaitable[Any]]) -> None:
    while True:
        if await check():
            return
        await asyncio.sleep(0.2)


async def one_run(args: argparse.Namespace, sink: str, instances: int) -> dict[str, Any]:
    name = f"bench_notify_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(args.database_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    database_url = args.database_url.rsplit("/", 1)[0] + f"/{name}"
    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    await ensure_topics(args.kafka, all_topic_partitions(namespace))
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "KAFKA_BOOTSTRAP_SERVERS": args.kafka,
        "COMPLAINTS_TOPIC_NAMESPACE": namespace,
        "SMS_GATEWAY_URL": f"{sink}/gateway/send",
        "SEND_CONCURRENCY": str(args.concurrency),
        "RATE_LIMIT_SMS": "1000000",
        "POLL_SECONDS": "0.1",
        "LOG_LEVEL": "WARNING",
        "OPS_PORT": "0",  # several instances: ops endpoints on free ports
    }
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "services.notify",
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(instances)
    ]
    conn = await asyncpg.connect(database_url)
    try:
        await until(lambda: conn.fetchval("SELECT to_regclass('notify.notifications') IS NOT NULL"))
        await asyncio.sleep(2.0)  # every instance started and listening
        release = await conn.fetchval("SELECT now() + interval '1 second'")
        await conn.execute(
            """INSERT INTO notify.notifications (notification_id, notification_key, complaint_no,
                   branch_id, correlation_id, source_event_id, channel, rule, template, language,
                   address, recipient_masked, to_customer, subject, body_text, body_html,
                   sms_text, params, segments, status, not_before)
               SELECT gen_random_uuid(), 'bench/' || n, lpad(n::text, 9, '0'), 'hotel-demo',
                      'bench', gen_random_uuid(), 'sms', 'bench', 'acknowledgement', 'zh',
                      '+86139' || lpad(n::text, 8, '0'), '***' || right(n::text, 4), true,
                      'subject', 'text', '<p>text</p>', '【酒店】您的投诉已受理，编号' || n,
                      '{}', 1, 'queued', $2
               FROM generate_series(1, $1) AS n""",
            args.messages,
            release,
        )

        async def all_sent() -> bool:
            sent = "SELECT count(*) FROM notify.notifications WHERE status = 'sent'"
            return bool(await conn.fetchval(sent) >= args.messages)

        await until(all_sent)
        last = await conn.fetchval("SELECT max(sent_at) FROM notify.notifications")
        seconds = (last - release).total_seconds()
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            await asyncio.wait_for(process.wait(), 60)
        await conn.close()
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()
    return {
        "instances": instances,
        "messages": args.messages,
        "seconds": round(seconds, 2),
        "per_second": round(args.messages / seconds, 1),
    }


async def main(args: argparse.Namespace) -> int:
    port = free_port()
    sink_dir = REPO / ".local" / "bench-sms"
    sink = await asyncio.create_subprocess_exec(
        sys.executable,
        "deploy/local/sms_sink.py",
        "--port",
        str(port),
        "--dir",
        str(sink_dir),
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_http(f"{url}/_sink/health")
        async with httpx.AsyncClient() as client:
            await client.put(f"{url}/_sink/latency", json={"seconds": args.latency_ms / 1000})
        runs = [await one_run(args, url, n) for n in args.instances]
    finally:
        sink.send_signal(signal.SIGTERM)
        await asyncio.wait_for(sink.wait(), 30)
    base = runs[0]["per_second"] / runs[0]["instances"]
    for run in runs:
        run["speed_up"] = round(run["per_second"] / runs[0]["per_second"], 2)
        run["efficiency"] = round(run["per_second"] / (base * run["instances"]), 2)
    result = {
        "benchmark": "notify delivery scale-out against a slow SMS gateway",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "provider_latency_ms": args.latency_ms,
        "send_concurrency_per_instance": args.concurrency,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "runs": runs,
    }
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (out / f"notify-scaleout-{stamp}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--kafka", required=True)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--instances", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--concurrency", type=int, default=8)
    sys.exit(asyncio.run(main(parser.parse_args())))
