"""docs/settings.md lists every setting of every service, each with what it means."""

from __future__ import annotations

import pytest

from docs.settings_reference import OUTPUT, SERVICES, page, settings_class


def test_the_committed_settings_page_is_current() -> None:
    assert OUTPUT.read_text(encoding="utf-8") == page(), "run `make docs` and commit"


@pytest.mark.parametrize("service", SERVICES)
def test_every_setting_says_what_it_is_for(service: str) -> None:
    undocumented = [
        name
        for name, field in settings_class(service).model_fields.items()
        if not field.description
    ]
    assert undocumented == []
