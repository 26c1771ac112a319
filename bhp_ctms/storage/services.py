"""The database file storage: files kept in PostgreSQL (or SQLite) in chunks.

Writing inserts one chunk at a time with a Core statement, so a file's bytes are
never all in memory; reading streams the chunks back through a server-side cursor
(``yield_per``) a few at a time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from typing import Protocol, cast

from sqlalchemy import Table, insert, select
from sqlalchemy.orm import Session
from zope.interface import implementer

from bhp_ctms.storage.interfaces import IFileStorage
from bhp_ctms.storage.models import StoredFile, StoredFileChunk

#: The size of each stored chunk: large enough that a 500 MB file is 500 rows, small
#: enough that a few of them in flight cost little memory.
CHUNK_SIZE = 1 << 20
# Chunks fetched from the server at a time when reading.
READ_AHEAD = 4

_CHUNKS = cast(Table, StoredFileChunk.__table__)


class StoredFileCorrupt(Exception):
    """A stored file's bytes no longer hash to the SHA-256 recorded when it was written."""


@implementer(IFileStorage)
class DatabaseFileStorage:
    """Files in the application's own database (the default :class:`IFileStorage`)."""

    def __init__(self, chunk_size: int = CHUNK_SIZE) -> None:
        self.chunk_size = chunk_size

    def store(
        self, db: Session, name: str, media_type: str, content: Iterable[bytes]
    ) -> StoredFile:
        stored = StoredFile(name=name, media_type=media_type, size=0, sha256="")
        db.add(stored)
        db.flush()
        digest = hashlib.sha256()
        size = 0
        sequence = 0
        pending = bytearray()
        chunk_size = self.chunk_size
        for piece in content:
            if not piece:
                continue
            digest.update(piece)
            size += len(piece)
            pending += piece
            while len(pending) >= chunk_size:
                self._insert(db, stored.id, sequence, bytes(pending[:chunk_size]))
                del pending[:chunk_size]
                sequence += 1
        if pending:
            self._insert(db, stored.id, sequence, bytes(pending))
        stored.size = size
        stored.sha256 = digest.hexdigest()
        db.flush()
        return stored

    def _insert(self, db: Session, file_id: int, sequence: int, data: bytes) -> None:
        db.execute(insert(_CHUNKS), {"file_id": file_id, "sequence": sequence, "data": data})

    def chunks(self, db: Session, stored: StoredFile, verify: bool = True) -> Iterator[bytes]:
        return self._chunks(db, stored.id, stored.sha256 if verify else None)

    def _chunks(self, db: Session, file_id: int, sha256: str | None) -> Iterator[bytes]:
        statement = (
            select(_CHUNKS.c.data)
            .where(_CHUNKS.c.file_id == file_id)
            .order_by(_CHUNKS.c.sequence)
            .execution_options(yield_per=READ_AHEAD)
        )
        digest = hashlib.sha256()
        for (data,) in db.execute(statement):
            piece = bytes(data)
            digest.update(piece)
            yield piece
        if sha256 is not None and digest.hexdigest() != sha256:
            raise StoredFileCorrupt(
                f"stored file {file_id} does not match its recorded SHA-256: it was altered "
                "or damaged after it was written"
            )

    def verify(self, db: Session, stored: StoredFile) -> bool:
        try:
            for _ in self.chunks(db, stored):
                pass
        except StoredFileCorrupt:
            return False
        return True


class FileStorage(Protocol):
    """What callers use of an :class:`IFileStorage` (for the type checker)."""

    def store(
        self, db: Session, name: str, media_type: str, content: Iterable[bytes]
    ) -> StoredFile: ...

    def chunks(self, db: Session, stored: StoredFile, verify: bool = True) -> Iterator[bytes]: ...

    def verify(self, db: Session, stored: StoredFile) -> bool: ...


def file_storage(db: Session) -> FileStorage:
    """The deployment's file storage (a :class:`DatabaseFileStorage` when the session
    belongs to no application, as in a benchmark or a unit test)."""
    request = db.info.get("request")
    registry = getattr(request, "registry", None)
    found = registry.queryUtility(IFileStorage) if registry is not None else None
    return cast(FileStorage, found) if found is not None else DatabaseFileStorage()
