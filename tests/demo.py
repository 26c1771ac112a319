"""What the demo study file promises, read from the file itself so tests follow it."""

from __future__ import annotations

from pathlib import Path

import yaml

DEMO_STUDY_FILE = Path(__file__).resolve().parents[1] / "forms" / "demo" / "study.yaml"


def demo_usernames() -> list[str]:
    definition = yaml.safe_load(DEMO_STUDY_FILE.read_text(encoding="utf-8"))
    return [user["username"] for user in definition["users"]]
