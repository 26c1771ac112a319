"""Acceptance: `make run` serves the log-in page within a minute of the install finishing.

After the install, `make run` runs ``.venv/bin/ctms -c development.ini run``. This
runs that same command, from the installed venv, against a fresh deployment in a
temporary folder: it must migrate, load the demo, start the Celery worker and the web
server, say where to go and how to log in, and stop everything on Ctrl-C.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.browser.deployment import (
    CTMS,
    DEMO_PASSWORD,
    command_environment,
    free_port,
    write_config,
)
from tests.demo import demo_usernames

pytestmark = pytest.mark.worker

SERVES_WITHIN_SECONDS = 60
STOPS_WITHIN_SECONDS = 20


def _status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - our own URL
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return None


def _live_processes_in_group(group: int) -> dict[int, str]:
    """The processes of a process group that have not exited (zombies have), by pid."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # The command name is in parentheses and may hold spaces: split after it.
            stat = (entry / "stat").read_text()
            state, _parent, process_group = stat.rsplit(")", 1)[1].split()[:3]
            command_line = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(process_group) == group and state != "Z":
            found[int(entry.name)] = command_line.strip()
    return found


def _wait_for(condition: Callable[[], object], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return bool(condition())


def test_make_run_serves_the_log_in_page_within_a_minute(tmp_path: Path) -> None:
    config = write_config(tmp_path / "deployment")
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    output_file = tmp_path / "ctms-run.log"

    with output_file.open("wb") as output:
        started = time.monotonic()
        run = subprocess.Popen(
            [str(CTMS), "-c", str(config), "run", "--host", "127.0.0.1", "--port", str(port)],
            env=command_environment(),
            stdout=output,
            stderr=subprocess.STDOUT,
            # Its own process group, as in a terminal, so everything it starts can be
            # found (and, if the test fails, cleaned up).
            start_new_session=True,
        )

    def printed() -> str:
        return output_file.read_text(encoding="utf-8", errors="replace")

    try:
        served = _wait_for(
            lambda: run.poll() is not None or _status(url + "login") == 200,
            SERVES_WITHIN_SECONDS - (time.monotonic() - started),
        )
        assert run.poll() is None, f"ctms run exited with {run.returncode}:\n{printed()}"
        assert served, f"no log-in page within {SERVES_WITHIN_SECONDS} s:\n{printed()}"

        # What the newcomer reads in the terminal: where to go and how to log in.
        assert _wait_for(lambda: DEMO_PASSWORD in printed(), 10), printed()
        assert url in printed()
        for username in demo_usernames():
            assert f"  {username} " in printed(), f"{username} not listed:\n{printed()}"

        processes = _live_processes_in_group(run.pid)
        workers = [pid for pid, command in processes.items() if " worker" in command]
        assert workers, f"no Celery worker was started: {processes}"

        # Ctrl-C, as delivered to ctms itself: it must stop its worker too.
        interrupted = time.monotonic()
        run.send_signal(signal.SIGINT)
        run.wait(STOPS_WITHIN_SECONDS)
        assert run.returncode == 0, printed()
        stopped = _wait_for(
            lambda: not _live_processes_in_group(run.pid),
            STOPS_WITHIN_SECONDS - (time.monotonic() - interrupted),
        )
        assert stopped, f"running after Ctrl-C: {_live_processes_in_group(run.pid)}\n{printed()}"
        assert _status(url + "login") is None
    finally:
        if _live_processes_in_group(run.pid):
            os.killpg(run.pid, signal.SIGKILL)
        if run.poll() is None:
            run.wait()
