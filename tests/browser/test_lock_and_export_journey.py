"""A data manager locks the demo study in Chromium, signing with their password; the
deployment's worker freezes the locked data in a snapshot; the blinded statistician
exports it, downloads the bundle, and every file's SHA-256 matches the manifest.

The data manager unlocks the study again at the end (through the page, signing
again), so the deployment the other journeys share is left recruiting.
"""

from __future__ import annotations

import configparser
import hashlib
import io
import json
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

import bhp_ctms.models  # noqa: F401 - every table, for the clean-up's mappers
from bhp_ctms.audit.capture import change_reason
from bhp_ctms.db import create_database_engine, utcnow
from bhp_ctms.locks.models import Lock
from bhp_ctms.studies.models import StudyStatus
from bhp_ctms.studies.services import find_study
from tests.browser.deployment import Deployment, command_environment

pytestmark = pytest.mark.browser

ARM_NAMES = ("Daily walking programme", "Usual care")
# The worker takes the lock snapshot and builds the bundle: allow it time on a busy
# machine.
WORKER_TIMEOUT_MS = 90_000


@pytest.fixture
def deployment_database(deployment: Deployment) -> Iterator[Engine]:
    ini = configparser.ConfigParser(interpolation=None)
    ini.read(deployment.config, encoding="utf-8")
    engine = create_database_engine(ini["app:main"]["bhp_ctms.database_url"])
    yield engine
    engine.dispose()


@pytest.fixture
def worker(deployment: Deployment, live_server: str) -> Iterator[None]:
    """A Celery worker of the deployment (as `ctms run` starts beside the web server),
    for the lock snapshot and the export the journey waits for."""
    log = deployment.directory / "export-worker.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "bhp_ctms.cli", "-c", str(deployment.config), "worker"],
            env=command_environment(),
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield
    finally:
        process.terminate()
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def demo_left_unlocked(deployment_database: Engine) -> Iterator[None]:
    """Should the journey stop half-way, lift its lock so later journeys can write."""
    yield
    with Session(deployment_database) as db, db.begin():
        study = find_study(db, "DEMO")
        assert study is not None
        for lock in db.scalars(
            select(Lock).where(Lock.study_id == study.id, Lock.unlocked_at.is_(None))
        ):
            with change_reason(db, "Browser journey clean-up"):
                lock.unlocked_at = utcnow()
                lock.unlocked_by_name = "Browser journey clean-up"
                lock.unlock_reason = "Browser journey clean-up"
                study.status = lock.previous_study_status or StudyStatus.RECRUITING


def _reload_until_visible(page: Page, test_id: str) -> None:
    """The datasets page refreshes itself while work is under way; reload it here
    until ``test_id`` shows (or the worker's time is up)."""
    deadline = WORKER_TIMEOUT_MS
    while deadline > 0:
        if page.get_by_test_id(test_id).count():
            return
        page.wait_for_timeout(1_000)
        deadline -= 1_000
        page.reload()
    expect(page.get_by_test_id(test_id).first).to_be_visible()


def test_data_manager_locks_and_statistician_downloads_a_verified_bundle(
    page: Page,
    browser: Browser,
    live_server: str,
    log_in: Callable[..., None],
    deployment: Deployment,
    worker: None,
    demo_left_unlocked: None,
) -> None:
    log_in(page, "datamanager")
    page.goto("/studies/DEMO/")
    page.get_by_test_id("locks-link").get_by_role("link").click()
    expect(page.locator("h1")).to_have_text("Locks")
    page.get_by_test_id("lock-study-link").click()
    expect(page.get_by_test_id("lock-title")).to_contain_text("Lock")

    # A wrong password locks nothing and keeps the reason typed.
    reason = "Last participant's last visit done; data cleaning complete"
    page.get_by_label("Why are these data locked?").fill(reason)
    page.get_by_label("Your password").fill("not the password")
    page.get_by_test_id("lock-button").click()
    expect(page.get_by_role("alert")).to_be_visible()
    expect(page.get_by_label("Why are these data locked?")).to_have_value(reason)

    page.get_by_label("Your password").fill(deployment.password)
    page.get_by_test_id("lock-button").click()
    expect(page.get_by_test_id("unlock-study-link")).to_be_visible()
    expect(page.locator("body")).to_contain_text("Dara Manager")

    statistician_context = browser.new_context(base_url=live_server, accept_downloads=True)
    try:
        stats = statistician_context.new_page()
        log_in(stats, "statistician")
        stats.goto("/studies/DEMO/")
        stats.get_by_test_id("datasets-link").get_by_role("link").click()
        expect(stats.locator("h1")).to_have_text("Datasets")
        expect(stats.get_by_test_id("blinded-note")).to_be_visible()
        _reload_until_visible(stats, "lock-badge")
        card = stats.locator("[data-testid^='snapshot-']").filter(
            has=stats.get_by_test_id("lock-badge")
        )
        content_sha256 = card.get_by_test_id("content-sha256").inner_text().strip()
        card.locator("summary").click()
        card.get_by_label("CSV (wide and long files, data dictionary)").check()
        card.get_by_role("button", name="Export").click()

        _reload_until_visible(stats, "download")
        with stats.expect_download() as download_info:
            stats.get_by_test_id("download").first.click()
        bundle = download_info.value
        data = (
            open(bundle.path(), "rb").read()  # noqa: SIM115 - read whole, closed at once
        )
        shown_sha256 = stats.get_by_test_id("bundle-sha256").first.inner_text().strip()
        assert hashlib.sha256(data).hexdigest() == shown_sha256

        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            manifest = json.loads(archive.read("manifest.json"))
            assert manifest["snapshot"]["content_sha256"] == content_sha256
            assert manifest["kind"] == "lock"
            assert manifest["blinded"] is True
            names = {entry["name"] for entry in manifest["files"]}
            assert names == set(archive.namelist()) - {"manifest.json"}
            assert any(name.startswith("csv/") for name in names)
            for entry in manifest["files"]:
                content = archive.read(entry["name"])
                assert hashlib.sha256(content).hexdigest() == entry["sha256"], entry["name"]
                assert len(content) == entry["size"]
                text = content.decode("utf-8", errors="replace")
                for name in ARM_NAMES:
                    assert name not in text, (entry["name"], name)
    finally:
        statistician_context.close()

    # The data manager lifts the lock, signing again.
    page.goto("/studies/DEMO/locks")
    page.get_by_test_id("unlock-study-link").click()
    page.get_by_label("Why must these data be unlocked?").fill(
        "Journey over: reopen the demo study"
    )
    page.get_by_label("Your password").fill(deployment.password)
    page.get_by_test_id("unlock-button").click()
    expect(page.get_by_test_id("lock-study-link")).to_be_visible()
