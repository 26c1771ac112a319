"""Files kept in the database: written and read back as streams, chunk by chunk, with
their SHA-256 checked; on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import os
import tracemalloc
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select, update

from bhp_ctms.storage.interfaces import IFileStorage
from bhp_ctms.storage.models import StoredFile, StoredFileChunk
from bhp_ctms.storage.services import DatabaseFileStorage, StoredFileCorrupt, file_storage


def pieces(data: bytes, sizes: tuple[int, ...]) -> Iterator[bytes]:
    """``data`` in pieces of the given sizes, in turn."""
    position = 0
    turn = 0
    while position < len(data):
        size = sizes[turn % len(sizes)]
        yield data[position : position + size]
        position += size
        turn += 1


def chunk_count(db_session, stored: StoredFile) -> int:
    return db_session.scalar(select(func.count()).where(StoredFileChunk.file_id == stored.id))


def test_a_file_is_stored_in_chunks_and_read_back_whole(db_session):
    storage = DatabaseFileStorage(chunk_size=1000)
    data = os.urandom(4321)
    stored = storage.store(
        db_session, "report.bin", "application/octet-stream", pieces(data, (1, 999, 2500, 7))
    )
    assert (stored.name, stored.media_type, stored.size) == (
        "report.bin",
        "application/octet-stream",
        4321,
    )
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert chunk_count(db_session, stored) == 5
    read = list(storage.chunks(db_session, stored))
    assert [len(chunk) for chunk in read] == [1000, 1000, 1000, 1000, 321]
    assert b"".join(read) == data
    assert storage.verify(db_session, stored)


def test_an_empty_file_has_no_chunks(db_session):
    storage = DatabaseFileStorage()
    stored = storage.store(db_session, "empty.txt", "text/plain", [b"", b""])
    assert (stored.size, stored.sha256) == (0, hashlib.sha256(b"").hexdigest())
    assert chunk_count(db_session, stored) == 0
    assert list(storage.chunks(db_session, stored)) == []


def test_altered_bytes_are_found_when_read_to_the_end(db_session):
    storage = DatabaseFileStorage(chunk_size=10)
    stored = storage.store(db_session, "a.txt", "text/plain", [b"0123456789" * 3])
    db_session.execute(
        update(StoredFileChunk)
        .where(StoredFileChunk.file_id == stored.id, StoredFileChunk.sequence == 1)
        .values(data=b"9876543210")
    )
    assert not storage.verify(db_session, stored)
    read = storage.chunks(db_session, stored)
    assert next(read) == b"0123456789"
    with pytest.raises(StoredFileCorrupt, match="does not match its recorded SHA-256"):
        list(read)
    # Reading without the check gives the bytes as they are.
    assert b"".join(storage.chunks(db_session, stored, verify=False))[10:20] == b"9876543210"


def test_memory_stays_flat_while_a_large_file_is_written_and_read(db_session):
    storage = DatabaseFileStorage(chunk_size=256 * 1024)
    block = os.urandom(64 * 1024)
    blocks = 320  # 20 MiB
    tracemalloc.start()
    try:
        stored = storage.store(
            db_session, "large.bin", "application/octet-stream", (block for _ in range(blocks))
        )
        _, written_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        digest = hashlib.sha256()
        for chunk in storage.chunks(db_session, stored):
            digest.update(chunk)
        _, read_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert stored.size == blocks * len(block)
    assert digest.hexdigest() == stored.sha256
    # A few chunks in flight, never the file's 20 MiB.
    assert written_peak < 4 * 1024 * 1024
    assert read_peak < 6 * 1024 * 1024


def test_the_application_registers_the_database_storage(app, db_session):
    registry = app.app.registry
    assert isinstance(registry.queryUtility(IFileStorage), DatabaseFileStorage)
    # A session outside any application gets the database storage too.
    assert isinstance(file_storage(db_session), DatabaseFileStorage)
