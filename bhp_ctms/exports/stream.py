"""The canonical stream of a dataset snapshot: JSON lines, compressed.

One line per record, in this order:

1. the header: the stream's format, the study (code, title, blinding), its protocol
   versions, the form versions with their definitions, the schedule's events, the
   arms and the sites (keys sorted);
2. one ``participant`` line per participant, by study ID;
3. one ``signature`` line per signature, by participant then time signed;
4. one ``entry`` line per form entry, by participant, event in schedule order,
   instance and form in the event's order, holding its values as
   ``[path, value, missing]`` triples in the form's order.

Signatures come before entries so that reading the participants or signatures
never decompresses the (large) entries. The SHA-256 of the uncompressed lines is
the snapshot's content hash: the same data give the same hash, and the same
stream gives the same records, byte for byte, whatever the database.

Who took a snapshot, when and why are not in the stream but in its
:class:`~bhp_ctms.exports.models.DatasetSnapshot` row.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Generator, Iterable, Iterator
from typing import Any

from bhp_ctms.exports.records import (
    EntryRecord,
    ParticipantRecord,
    SignatureRecord,
    ValueRecord,
)

STREAM_FORMAT = "bhp-ctms-snapshot/1"
MEDIA_TYPE = "application/x-ndjson; compression=zlib"
# Fast: the stream is compressed once, when the snapshot is taken, and read often.
COMPRESS_LEVEL = 1

PARTICIPANT_PREFIX = b'{"type":"participant"'
SIGNATURE_PREFIX = b'{"type":"signature"'
ENTRY_PREFIX = b'{"type":"entry"'
SECTIONS = (PARTICIPANT_PREFIX, SIGNATURE_PREFIX, ENTRY_PREFIX)


class SnapshotCorrupt(Exception):
    """A snapshot's stored stream is not the one its content hash was taken of."""


def encode_header(header: dict[str, Any]) -> bytes:
    return (
        json.dumps(
            {"type": "snapshot", "format": STREAM_FORMAT, **header},
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        )
        + "\n"
    ).encode("utf-8")


_encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def encode_line(record: dict[str, Any]) -> str:
    """One record's line (the record's keys in the order given: fixed by the caller)."""
    return _encoder.encode(record) + "\n"


def compressed(lines: Iterable[bytes], digest: Any) -> Iterator[bytes]:
    """Compress ``lines`` (blocks of whole lines), updating ``digest`` with them."""
    compressor = zlib.compressobj(COMPRESS_LEVEL)
    for block in lines:
        digest.update(block)
        out = compressor.compress(block)
        if out:
            yield out
    yield compressor.flush()


class StreamReader:
    """Reads a stored stream's lines again, as many times as asked.

    ``chunks`` gives the stored (compressed) bytes afresh on each call. A read that
    reaches the end checks the content hash, and raises :class:`SnapshotCorrupt` if
    it differs.
    """

    def __init__(self, chunks: Any, content_sha256: str) -> None:
        self._chunks = chunks
        self.content_sha256 = content_sha256

    def lines(self) -> Generator[bytes, None, None]:
        decompressor = zlib.decompressobj()
        digest = hashlib.sha256()
        rest = b""
        for chunk in self._chunks():
            try:
                data = decompressor.decompress(chunk)
            except zlib.error as error:
                raise SnapshotCorrupt(
                    f"the snapshot's stored data cannot be read ({error}): they were altered "
                    "or damaged after it was taken"
                ) from None
            if not data:
                continue
            digest.update(data)
            pieces = (rest + data).split(b"\n")
            rest = pieces.pop()
            yield from pieces
        data = decompressor.flush()
        if data:
            digest.update(data)
            rest += data
        if rest:
            yield from rest.split(b"\n")
        if not decompressor.eof or digest.hexdigest() != self.content_sha256:
            raise SnapshotCorrupt(
                "the snapshot's stored data do not match its content hash "
                f"{self.content_sha256}: they were altered or damaged after it was taken"
            )

    def header(self) -> dict[str, Any]:
        for line in self.lines():
            header = json.loads(line)
            if header.get("type") != "snapshot" or header.get("format") != STREAM_FORMAT:
                raise SnapshotCorrupt(f"not a {STREAM_FORMAT} stream")
            return dict(header)
        raise SnapshotCorrupt("the snapshot's stream is empty")

    def section(self, prefix: bytes) -> Iterator[bytes]:
        """The lines of one section. Entries are the last section, so reading them
        reads the whole stream and checks the hash; a section before them stops at
        the first line of a later one."""
        later = SECTIONS[SECTIONS.index(prefix) + 1 :]
        lines = self.lines()
        try:
            for line in lines:
                if line.startswith(prefix):
                    yield line
                elif later and line.startswith(later):
                    return
        finally:
            lines.close()

    def participants(self, *, blinded: bool) -> Iterator[ParticipantRecord]:
        for line in self.section(PARTICIPANT_PREFIX):
            row = json.loads(line)
            yield ParticipantRecord(
                key=row["key"],
                site_code=row["site"],
                status=row["status"],
                protocol_version=row["protocol_version"],
                registered_on=row["registered_on"],
                randomised_on=row["randomised_on"],
                arm=None if blinded else row["arm"],
            )

    def signatures(self) -> Iterator[SignatureRecord]:
        for line in self.section(SIGNATURE_PREFIX):
            row = json.loads(line)
            yield SignatureRecord(
                participant=row["participant"],
                event=row["event"],
                instance=row["instance"],
                form=row["form"],
                signer=row["signer"],
                signer_role=row["signer_role"],
                meaning=row["meaning"],
                signed_at=row["signed_at"],
                content_sha256=row["content_sha256"],
                valid=row["valid"],
            )

    def entries(self) -> Iterator[EntryRecord]:
        loads = json.loads
        for line in self.section(ENTRY_PREFIX):
            row = loads(line)
            yield EntryRecord(
                participant=row["participant"],
                event=row["event"],
                instance=row["instance"],
                form=row["form"],
                form_version=row["form_version"],
                status=row["status"],
                values=tuple(
                    [ValueRecord(path, value, missing) for path, value, missing in row["values"]]
                ),
                visit_on=row["visit_on"],
            )
