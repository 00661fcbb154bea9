"""shared.db.urls."""

from __future__ import annotations

import pytest

from shared.db.urls import with_database


@pytest.mark.parametrize(
    ("url", "user", "expected"),
    [
        (
            "postgresql://postgres@127.0.0.1:5433/complaints",
            "complaints_routing",
            "postgresql://complaints_routing@127.0.0.1:5433/image_smoke_1",
        ),
        (
            "postgresql://admin:secret@db.internal:5432/complaints?sslmode=require",
            None,
            "postgresql://admin:secret@db.internal:5432/image_smoke_1?sslmode=require",
        ),
        (
            "postgresql://127.0.0.1:5433/complaints",
            "complaints_sla",
            "postgresql://complaints_sla@127.0.0.1:5433/image_smoke_1",
        ),
    ],
)
def test_a_url_names_another_database_and_role_on_the_same_server(
    url: str, user: str | None, expected: str
) -> None:
    assert with_database(url, "image_smoke_1", user) == expected
