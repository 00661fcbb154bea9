"""`make demo`: one complaint for each pack's demo branch, against a running `make run`.

Prints each complaint number, where routing sent it and why, once reporting shows it.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from shared.policy import load_packs  # noqa: E402

INTAKE = os.environ.get("INTAKE_URL", "http://127.0.0.1:8001")
REPORTING = os.environ.get("REPORTING_URL", "http://127.0.0.1:8005")


def main() -> int:
    packs = load_packs(REPO / "policy-packs")
    numbers: dict[str, str] = {}
    with httpx.Client(timeout=10) as client:
        for name, pack in sorted(packs.packs.items()):
            category = pack.categories[0]
            response = client.post(
                f"{INTAKE}/v1/complaints",
                json={
                    "branch_id": f"{name}-demo",
                    "channel": "phone",
                    "customer": {
                        "name": "演示客户",
                        "type": "end_customer",
                        "language": "zh",
                        "email": "demo.customer@example.com",
                    },
                    "description": f"演示投诉：{category.label.zh}",
                    "category": category.code,
                },
            )
            if response.status_code != 201:
                print(f"{name}: refused {response.status_code} {response.text}")
                return 1
            numbers[name] = response.json()["complaint_no"]
        deadline = time.monotonic() + 30
        for name, number in numbers.items():
            while True:
                case = client.get(f"{REPORTING}/v1/cases/{number}")
                if case.status_code == 200 and case.json()["assignment"]:
                    assignment = case.json()["assignment"]
                    assignee = assignment["assignee"] or {}
                    print(
                        f"{name:14} {number}  {assignment['department']:20} "
                        f"{assignee.get('name', '?')}"
                    )
                    break
                if time.monotonic() > deadline:
                    print(f"{name:14} {number}  not yet routed")
                    break
                time.sleep(0.3)
    print(f"Case files: {REPORTING}/v1/cases/<number>; e-mails in .local/mail/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
