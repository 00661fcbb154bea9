from __future__ import annotations

import pytest

from tests.support import infra


@pytest.mark.parametrize("kind", ["local", "testcontainers", "external", " Local "])
def test_an_explicit_choice_wins(monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    monkeypatch.setenv("TEST_INFRA", kind)
    monkeypatch.setattr(infra, "_docker_answers", lambda: pytest.fail("must not probe Docker"))
    assert infra.chosen_kind() == kind.strip().lower()


@pytest.mark.parametrize(("docker", "kind"), [(True, "testcontainers"), (False, "local")])
def test_unset_means_testcontainers_only_when_docker_answers(
    monkeypatch: pytest.MonkeyPatch, docker: bool, kind: str
) -> None:
    monkeypatch.delenv("TEST_INFRA", raising=False)
    monkeypatch.setattr(infra, "_docker_answers", lambda: docker)
    assert infra.chosen_kind() == kind


def test_a_misspelt_choice_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_INFRA", "docker")
    with pytest.raises(ValueError, match="local, testcontainers or external"):
        infra.chosen_kind()


def test_external_names_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.setenv("DATABASE_URL", "postgresql://x@127.0.0.1/db")
    with pytest.raises(RuntimeError, match="KAFKA_BOOTSTRAP_SERVERS"), infra.provide("external"):
        pass
