"""The browser test harness: Chromium, driven by Playwright, against the application
served by a real WSGI server (waitress) on a fresh demo deployment.

Fixtures for journeys:

- ``deployment`` (session): the :class:`Deployment` (ini file, folder, demo password);
  run ``ctms`` commands against it with ``deployment.ctms("user", ...)``.
- ``live_server`` (session): the base URL, e.g. ``http://127.0.0.1:41234``.
- ``browser`` (session): a headless Chromium (Debian's, never a downloaded one).
- ``context`` / ``page``: a fresh browser context (no cookies) and its page, whose
  ``goto("/login")`` is relative to the live server. After the test, the page is
  screenshotted to ``test-results/<test name>.png`` if the test failed, and the test
  errors if the page logged a Content-Security-Policy violation or a script error.
- ``log_in``: ``log_in(page, "coordinator")`` logs in with the demo password and
  waits for the dashboard.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, sync_playwright

from tests.browser.deployment import Deployment, command_environment, run_ctms, write_config

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
SERVER_START_SECONDS = 60
SERVING_ON = re.compile(r"Serving on http://127\.0\.0\.1:(\d+)")

REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


@dataclass
class PageProblems:
    """What a page reported that no page of ours should: blocked content, script errors."""

    messages: list[str] = field(default_factory=list)

    def console(self, message: ConsoleMessage) -> None:
        if message.type == "error" and "Content Security Policy" in message.text:
            self.messages.append(f"console: {message.text}")

    def page_error(self, error: Exception) -> None:
        self.messages.append(f"script error: {error}")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    # Keep each phase's report on the test, so fixtures can tell in teardown whether
    # the test failed.
    report = yield
    item.stash.setdefault(REPORTS, {})[report.when] = report
    return report


@pytest.fixture(scope="session")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Deployment:
    """A fresh SQLite deployment, migrated and loaded by ``ctms initdb`` and ``ctms demo``."""
    directory = tmp_path_factory.mktemp("deployment")
    config = write_config(directory)
    run_ctms(config, "initdb")
    run_ctms(config, "demo")
    return Deployment(config=config, directory=directory)


def _wait_for_port(server: subprocess.Popen[bytes], log: Path) -> int:
    deadline = time.monotonic() + SERVER_START_SECONDS
    while time.monotonic() < deadline:
        text = log.read_text(encoding="utf-8", errors="replace")
        found = SERVING_ON.search(text)
        if found:
            return int(found.group(1))
        if server.poll() is not None:
            raise RuntimeError(f"the web server exited with {server.returncode}:\n{text}")
        time.sleep(0.1)
    raise RuntimeError(f"the web server did not start in {SERVER_START_SECONDS} s:\n{text}")


def _wait_until_healthy(url: str) -> None:
    deadline = time.monotonic() + SERVER_START_SECONDS
    while True:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=5) as response:  # noqa: S310
                if response.status == 200:
                    return
        except OSError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.1)


@pytest.fixture(scope="session")
def live_server(deployment: Deployment) -> Iterator[str]:
    """The base URL of waitress serving the deployment (``pserve``, its own process)."""
    log = deployment.directory / "server.log"
    with log.open("wb") as output:
        server = subprocess.Popen(
            [sys.executable, "-m", "pyramid.scripts.pserve", str(deployment.config)],
            env=command_environment(),
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        url = f"http://127.0.0.1:{_wait_for_port(server, log)}"
        _wait_until_healthy(url)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        yield chromium
        chromium.close()


@pytest.fixture
def context(browser: Browser, live_server: str) -> Iterator[BrowserContext]:
    context = browser.new_context(
        base_url=live_server, viewport={"width": 1280, "height": 900}, locale="en-GB"
    )
    context.set_default_timeout(10_000)
    yield context
    context.close()


@pytest.fixture
def page(context: BrowserContext, request: pytest.FixtureRequest) -> Iterator[Page]:
    page = context.new_page()
    problems = PageProblems()
    page.on("console", problems.console)
    page.on("pageerror", problems.page_error)
    yield page
    reports = request.node.stash.get(REPORTS, {})
    if "call" in reports and reports["call"].failed:
        results = request.config.rootpath / "test-results"
        results.mkdir(exist_ok=True)
        name = re.sub(r"[^\w.-]+", "_", request.node.name).strip("_")
        page.screenshot(path=str(results / f"{name}.png"), full_page=True)
    assert not problems.messages, "\n".join(problems.messages)


@pytest.fixture
def log_in(deployment: Deployment) -> Callable[..., None]:
    """Log a demo user in through the log-in page and wait for the dashboard."""

    def log_in(page: Page, username: str, password: str | None = None) -> None:
        page.goto("/login")
        page.get_by_label("User name").fill(username)
        page.get_by_label("Password", exact=True).fill(password or deployment.password)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url("**/studies/")

    return log_in
