"""Files kept by the application (dataset snapshots, export bundles, reports).

PostgreSQL is the single source of truth that every web and worker process shares,
so files live there too by default, in chunks, written and read as streams: a
500 MB file never sits in memory. The storage is a pluggable utility
(:class:`bhp_ctms.storage.interfaces.IFileStorage`); a deployment may register another.
"""

from __future__ import annotations

from typing import Any


def includeme(config: Any) -> None:
    from bhp_ctms.storage.interfaces import IFileStorage
    from bhp_ctms.storage.services import DatabaseFileStorage

    config.registry.registerUtility(DatabaseFileStorage(), IFileStorage)
