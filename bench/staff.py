"""What branches submit and how staff and customers then work the cases, for the benchmark.

Both come from `make demo` (deploy/local/demo.py): its planner picks a pack's categories,
severities, customers, products and the story of each case; its walker reads the case,
takes the next allowed action as staff would (acknowledge, investigate, hold and resume,
reassign, escalate, compensate, decide or answer on the spot or find it not upheld, close)
and gives the customer's feedback (some unsatisfied, which reopens the case), a few
seconds apart. Here the walker keeps quiet and times its requests.

Two changes to the demo's submissions keep every complaint measurable: each customer has
an e-mail address (one with neither address nor phone would never be acknowledged), and
every complaint is urgent, so quiet hours hold no acknowledgement until the morning.
"""

from __future__ import annotations

import asyncio
import importlib.util
import random
import sys
import time
from collections import defaultdict
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]

from shared.auth.dev import DevCredentials  # noqa: E402
from shared.policy import PackRegistry, PolicyPack  # noqa: E402


def _load_demo() -> ModuleType:
    """The demo is a script, not a package: load it from its file, registered first so
    that its dataclasses can resolve their own module."""
    name = "complaints_demo_script"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO / "deploy/local/demo.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


demo = _load_demo()


def plan(pack: PolicyPack, rng: random.Random, seq: int, run_id: str) -> Any:
    """A complaint for ``pack``'s demo branch as the demo would submit it (see the note)."""
    planned = demo.plan_submission(pack, rng, datetime.now(UTC), run_id=run_id, seq=seq)
    customer = dict(planned.body["customer"])
    customer.setdefault("email", f"bench{seq}@example.com")
    body = {**planned.body, "customer": customer, "severity": "urgent"}
    return replace(planned, body=body, severity="urgent")


class _Walker(demo.Demo):  # type: ignore[misc,name-defined]
    def __init__(self, config: Any, registry: PackRegistry) -> None:
        super().__init__(config, registry)
        self.latency_ms: dict[str, list[float]] = defaultdict(list)
        self.errors: list[str] = []

    def line(self, kind: str, text: str) -> None:
        """Quiet, the benchmark's output being its JSON, but for the first few errors."""
        if kind == "error" and len(self.errors) < 10:
            self.errors.append(text)

    async def request(
        self, method: str, url: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> httpx.Response | None:
        started = time.perf_counter()
        response = await super().request(method, url, body, headers)
        kind = "case view" if method == "GET" else "action or feedback"
        self.latency_ms[kind].append((time.perf_counter() - started) * 1000)
        return response


class StaffAtWork:
    """Walks a share of the accepted complaints through their life while the load runs."""

    def __init__(
        self, registry: PackRegistry, intake_url: str, namespace: str, share: float, seed: int
    ) -> None:
        config = demo.Config(
            minutes=0,
            rate=0,
            seed=seed,
            intake=intake_url,
            reporting="",
            kafka="",
            namespace=namespace,
            feedback_secret=demo._default_secret(),
        )
        self._walker = _Walker(config, registry)
        self._share = share
        self._rng = random.Random(seed)

    async def __aenter__(self) -> StaffAtWork:
        headers = DevCredentials.from_environment().staff_headers("admin", reason="benchmark")
        self._walker.http = httpx.AsyncClient(timeout=30, headers=headers)
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()
        assert self._walker.http is not None
        await self._walker.http.aclose()

    def accepted(self, complaint_no: str, planned: Any) -> None:
        """``planned`` was accepted as ``complaint_no``: perhaps work it."""
        if self._rng.random() < self._share:
            self._walker.track(complaint_no, planned)

    async def stop(self) -> None:
        """Stop taking actions; the ones under way finish."""
        self._walker.stop.set()
        await asyncio.gather(*self._walker.tasks, return_exceptions=True)

    @property
    def latency_ms(self) -> dict[str, list[float]]:
        """Each kind of request's times."""
        return dict(self._walker.latency_ms)

    def report(self) -> dict[str, Any]:
        tally = self._walker.tally
        return {
            "cases_worked": tally["submitted"],
            "cases_finished": tally["finished"],
            "actions": {
                key.split(":", 1)[1]: count
                for key, count in sorted(tally.items())
                if key.startswith("action:")
            },
            "feedback": {
                "satisfied": tally["feedback satisfied"],
                "unsatisfied": tally["feedback unsatisfied"],
            },
            "refused_not_now_409": tally["not now (409)"],
            "errors": tally["errors"],
            "first_errors": self._walker.errors,
        }
