"""Stored files: a row describing each file, and its bytes in ordered chunks."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from bhp_ctms.db import ModelBase, utcnow


class StoredFile(ModelBase):
    """One file. Written once: its chunks are inserted with it, then its size and
    SHA-256 (of all its bytes, in order) are recorded. Not audited itself: what a
    file is for (a snapshot, a bundle) is audited with the file's id and hash."""

    __tablename__ = "stored_files"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    media_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    sha256: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def __repr__(self) -> str:
        return f"<StoredFile {self.id} {self.name}>"


class StoredFileChunk(ModelBase):
    """The ``sequence``-th piece (from 0) of a file's bytes, about 1 MiB each. Only
    ever inserted and read through Core statements, never loaded as objects."""

    __tablename__ = "stored_file_chunks"

    file_id: Mapped[int] = mapped_column(ForeignKey("stored_files.id"), primary_key=True)
    sequence: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    data: Mapped[bytes] = mapped_column(LargeBinary)
