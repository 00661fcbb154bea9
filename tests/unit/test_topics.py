"""Consumer group names per namespace (shared.topics.consumer_group)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from shared.topics import DEFAULT_NAMESPACE, Topics, consumer_group

namespaces = st.from_regex(r"[a-z][a-z0-9-]{0,15}", fullmatch=True)
group_names = st.sampled_from(["intake", "intake-submissions", "routing", "sla", "notify"])


def test_the_default_namespace_keeps_the_groups_deployments_already_have() -> None:
    assert consumer_group(DEFAULT_NAMESPACE, "routing") == "routing"


def test_another_namespace_prefixes_its_groups_as_its_topics() -> None:
    assert consumer_group("staging", "intake-submissions") == "staging.intake-submissions"
    assert Topics.in_namespace("staging").intake.namespace == "staging"


@given(namespaces, namespaces, group_names, group_names)
def test_two_environments_never_share_a_group(first: str, second: str, a: str, b: str) -> None:
    if (first, a) != (second, b):
        assert consumer_group(first, a) != consumer_group(second, b)
