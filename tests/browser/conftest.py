"""Browser tests: Debian's Chromium driven by Playwright against live processes
(tests.support.live).

Fixtures: `browser` (headless Chromium, skipped locally when /usr/bin/chromium is missing, a
failure under CI), `sign_in(page, username, password)` through the real login form, and the
live-process fixtures of tests.support.live (`live_web`, `live_web_factory`, `live_worker`,
offered by tests/conftest.py).
"""

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.db import connections

from tests.conftest import require

BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture
def browser(monkeypatch) -> Iterator:
    require(Path(CHROMIUM).exists(), f"Debian's chromium at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the test's ORM calls happen
    # while it waits, never at the same time.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()
            # ORM calls made under Playwright got a connection of their own (another
            # context); close it so that the test database can be dropped.
            connections.close_all()


@pytest.fixture
def sign_in() -> Callable:
    """Sign in through the login form, as a person would; lands on `next`."""

    def sign_in(page, username: str, password: str, next: str = "/") -> None:
        page.goto(f"/accounts/login/?next={next}")
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(f"**{next}")

    return sign_in
