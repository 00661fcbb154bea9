from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from services.routing.domain import decide
from shared.policy import load_packs
from shared.settings import REPO_ROOT

HOTEL = load_packs(REPO_ROOT / "policy-packs").packs["hotel"]


def test_a_category_goes_to_its_department_head() -> None:
    decision = decide(HOTEL, "facilities")
    assert decision.department == "engineering"
    assert decision.assignee_id == "eng-manager"
    assert decision.rule == "category:facilities"


def test_the_front_office_supervisor_takes_service_attitude() -> None:
    # 000 第一篇 十二 1(1): 前厅主管负责宾馆投诉处理.
    assert decide(HOTEL, "service-attitude").assignee_id == "fo-supervisor"


@given(st.text(max_size=30))
def test_nothing_is_ever_dropped(category: str) -> None:
    decision = decide(HOTEL, category)
    departments = {d.code for d in HOTEL.departments}
    assert decision.department in departments
    if HOTEL.category(category) is None:
        assert decision.rule == "triage"
        assert decision.department == HOTEL.triage_department
