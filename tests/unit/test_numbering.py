from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.intake.numbering import complaint_number, receipt_date


def test_the_seed_example() -> None:
    # 004 篇二 4.2.2.2 ③: 100912099 = received 2010-09-12, the 99th of 2010.
    assert complaint_number(date(2010, 9, 12), 99) == "100912099"


def test_the_ordinal_widens_past_999() -> None:
    assert complaint_number(date(2026, 12, 31), 999) == "261231999"
    assert complaint_number(date(2026, 12, 31), 1000) == "2612311000"


def test_ordinals_start_at_one() -> None:
    with pytest.raises(ValueError, match="start at 1"):
        complaint_number(date(2026, 1, 1), 0)


def test_the_day_is_the_branch_s_day() -> None:
    # 17:30 UTC on 31 December is already New Year's Day in Shanghai.
    late = datetime(2026, 12, 31, 17, 30, tzinfo=UTC)
    assert receipt_date(late, "Asia/Shanghai") == date(2027, 1, 1)
    assert receipt_date(late, "Europe/London") == date(2026, 12, 31)


@given(
    st.dates(min_value=date(2000, 1, 1), max_value=date(2099, 12, 31)),
    st.integers(min_value=1, max_value=10**6),
)
def test_numbers_encode_day_and_ordinal(day: date, ordinal: int) -> None:
    number = complaint_number(day, ordinal)
    assert number.isdigit()
    assert number[:6] == day.strftime("%y%m%d")
    assert int(number[6:]) == ordinal


@given(
    st.lists(st.integers(min_value=1, max_value=10**5), min_size=2, max_size=50, unique=True),
    st.dates(min_value=date(2000, 1, 1), max_value=date(2099, 12, 30)),
)
def test_distinct_ordinals_of_a_year_give_distinct_numbers(ordinals: list[int], day: date) -> None:
    days = [day, day + timedelta(days=1)]
    numbers = {complaint_number(days[i % 2], o) for i, o in enumerate(ordinals)}
    assert len(numbers) == len(ordinals)
