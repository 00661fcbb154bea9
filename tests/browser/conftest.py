from __future__ import annotations

from collections.abc import Iterator

import pytest
from selenium import webdriver

from tests.browser.chromium import browser_session


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    yield from browser_session()
