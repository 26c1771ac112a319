"""Alembic, driven from the application's own settings (no alembic.ini)."""

from __future__ import annotations

from pathlib import Path

from alembic.config import Config as AlembicConfig

from bhp_ctms.settings import Settings

DEFAULT_ALEMBIC_DIR = Path(__file__).resolve().parent.parent / "alembic"


def alembic_config(
    settings: Settings | None = None, database_url: str | None = None
) -> AlembicConfig:
    """An Alembic configuration for these settings (or just a database URL)."""
    directory = (
        Path(settings.alembic_dir) if settings and settings.alembic_dir else DEFAULT_ALEMBIC_DIR
    )
    config = AlembicConfig()
    config.set_main_option("script_location", str(directory))
    config.set_main_option("file_template", "%%(year)d-%%(month).2d-%%(day).2d_%%(slug)s_%%(rev)s")
    config.set_main_option("timezone", "UTC")
    url = database_url or (settings.database_url if settings else "")
    # Alembic reads options through ConfigParser, which treats % as interpolation.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config
