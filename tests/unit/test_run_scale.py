"""`make run SCALE=...`: which processes honcho runs, on which ops ports."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from deploy.local import run
from shared.settings import REPO_ROOT

TEMPLATE = (REPO_ROOT / "deploy" / "local" / "Procfile").read_text().splitlines()


def names(lines: list[str]) -> list[str]:
    return [line.partition(":")[0] for line in lines]


def test_without_scale_every_process_runs_once_as_the_procfile_says() -> None:
    assert run.procfile(TEMPLATE, {}) == [line for line in TEMPLATE if line.strip()]


def test_consumers_run_as_instances_each_on_its_own_ops_port() -> None:
    lines = run.procfile(TEMPLATE, run.parse_scale("routing=2 notify=3 sla=0"))
    assert names(lines) == [
        "smtp", "sms", "intake", "routing", "routing-2", "notify", "notify-2", "notify-3",
        "reporting",
    ]  # fmt: skip
    by_name = dict(line.split(": ", 1) for line in lines)
    assert by_name["routing"].startswith("python deploy/local/restarting.py -m services.routing")
    assert by_name["routing-2"].startswith("env OPS_PORT=8102 python")
    assert by_name["notify-3"].startswith("env OPS_PORT=8204 python")


def test_http_services_scale_by_workers_on_their_one_port() -> None:
    lines = run.procfile(TEMPLATE, run.parse_scale("intake=3,reporting=2"))
    by_name = dict(line.split(": ", 1) for line in lines)
    assert by_name["intake"].startswith("env INTAKE_WORKERS=3 python")
    assert by_name["reporting"].startswith("env REPORTING_WORKERS=2 python")
    assert "intake" not in names(run.procfile(TEMPLATE, {"intake": 0}))


@pytest.mark.parametrize(
    ("text", "message"),
    [("routnig=2", "no service 'routnig'"), ("routing=two", "whole number"), ("sla=-1", "whole")],
)
def test_a_wrong_scale_says_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        run.parse_scale(text)


@given(st.dictionaries(st.sampled_from(run.SERVICES), st.integers(0, 5)))
def test_every_process_has_its_own_name_and_ops_port(scale: dict[str, int]) -> None:
    lines = run.procfile(TEMPLATE, scale)
    assert len(set(names(lines))) == len(lines)
    ports = [word for line in lines for word in line.split() if word.startswith("OPS_PORT=")]
    assert len(set(ports)) == len(ports)
    assert set(run.OPS_PORTS.values()).isdisjoint(int(p.split("=")[1]) for p in ports)
    for service in run.OPS_PORTS:
        assert sum(1 for n in names(lines) if n.partition("-")[0] == service) == scale.get(
            service, 1
        )
