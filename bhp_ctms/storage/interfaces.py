"""The pluggable file storage."""

from __future__ import annotations

from zope.interface import Interface


class IFileStorage(Interface):
    """Keeps files as streams of bytes, each described by a
    :class:`bhp_ctms.storage.models.StoredFile` row (name, type, size, SHA-256).

    Writing and reading happen in the caller's transaction (``db``): a file written
    by a transaction that rolls back is gone with it.
    """

    def store(db, name, media_type, content):  # type: ignore[no-untyped-def]
        """Write ``content`` (an iterable of ``bytes`` pieces of any size) as a new
        file, piece by piece, and return its ``StoredFile`` with size and SHA-256."""

    def chunks(db, stored, verify=True):  # type: ignore[no-untyped-def]
        """The file's bytes as an iterator of pieces, read as they are needed. With
        ``verify``, reading to the end raises ``StoredFileCorrupt`` when the bytes do
        not hash to the recorded SHA-256."""

    def verify(db, stored):  # type: ignore[no-untyped-def]
        """Whether the whole file still hashes to its recorded SHA-256."""
