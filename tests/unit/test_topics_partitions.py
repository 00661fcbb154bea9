"""Partition counts as configuration, and the rule for growing a topic, without a broker."""

from __future__ import annotations

import pytest

from shared.partitions import TopicState, lag, refusal, topic_name
from shared.topics import DEAD_LETTER_PARTITIONS, all_topic_partitions, partition_counts


def test_partition_counts_come_from_the_setting_by_topic_role() -> None:
    assert partition_counts("") == {}
    assert partition_counts("intake=12 routing=24") == {"intake": 12, "routing": 24}
    assert partition_counts("intake=12,record-reads=6") == {"intake": 12, "record-reads": 6}
    sized = all_topic_partitions("ns", partition_counts("intake=12"))
    assert sized["ns.intake"] == 12
    assert sized["ns.routing"] == 6
    assert sized["ns.intake.dlq"] == DEAD_LETTER_PARTITIONS


@pytest.mark.parametrize(
    ("setting", "message"),
    [("intkae=12", "no topic 'intkae'"), ("intake=0", "at least 1"), ("intake=x", "whole number")],
)
def test_a_wrong_partition_setting_says_what_is_wrong(setting: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        partition_counts(setting)


def test_lag_counts_what_each_group_has_yet_to_commit() -> None:
    ends = {0: 10, 1: 5, 2: 0}
    assert lag(ends, {0: 10, 1: 5}, {}) == 0
    assert lag(ends, {0: 7}, {1: 1}) == 3 + 4  # partition 1 never committed: from its start
    assert lag(ends, {0: 12, 1: 5}, {}) == 0  # a commit past the end is not negative lag


def state(ends: dict[int, int], **lags: int) -> TopicState:
    return TopicState("complaints.intake", ends, lags)


def test_a_topic_grows_only_to_more_partitions_drained_and_quiet() -> None:
    quiet = state({0: 5, 1: 5}, routing=0, sla=0)
    assert refusal(quiet, quiet, 4) is None
    assert "only adds partitions" in (refusal(quiet, quiet, 2) or "")
    written = state({0: 6, 1: 5}, routing=0)
    assert "still being written to (1 records" in (refusal(quiet, written, 4) or "")
    behind = state({0: 5, 1: 5}, routing=0, sla=2)
    assert refusal(behind, behind, 4) == (
        "complaints.intake is not drained: sla (2 behind); let them catch up first"
    )


def test_a_topic_is_named_by_role_or_in_full() -> None:
    assert topic_name("intake", "complaints") == "complaints.intake"
    assert topic_name("complaints.routing", "complaints") == "complaints.routing"
    with pytest.raises(ValueError, match="one of"):
        topic_name("routingg", "complaints")
