"""A bundle: the files of the chosen formats made from one snapshot, in one zip with
a ``manifest.json`` giving the SHA-256 and size of every file.

The zip is deterministic: every member has the snapshot's time, the same
permissions and the same compression, the formats are written in a fixed order and
the manifest last, so the same snapshot with the same options always gives the same
bytes. Each writer reads only the snapshot's records
(:class:`~bhp_ctms.exports.records.Snapshot`) and writes through a
:class:`~bhp_ctms.exports.formats.Sink`.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import json
import re
import shutil
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import IO, Any, BinaryIO, cast

from bhp_ctms.exports.formats import Sink
from bhp_ctms.exports.records import (
    ChangeRecord,
    EntryRecord,
    ExportOptions,
    ParticipantRecord,
    SignatureRecord,
    Snapshot,
    SnapshotInfo,
)

MANIFEST = "manifest.json"
MANIFEST_FORMAT = "bhp-ctms-dataset-bundle/1"
#: Every format a bundle can hold, in the order they are written.
FORMATS = ("csv", "dta", "odm", "sav", "xpt")
FORMAT_LABELS = {
    "csv": "CSV (wide and long files, data dictionary)",
    "odm": "CDISC ODM 1.3.2 XML",
    "xpt": "SAS transport (XPT v5)",
    "dta": "Stata (.dta)",
    "sav": "SPSS (.sav)",
}
# Fast compression: bundles are made often and the CSV files compress well anyway.
COMPRESS_LEVEL = 1
# rw-r--r-- regular files.
FILE_MODE = 0o100644
# Each writer: a module and a function that takes (snapshot, options, sink).
WRITERS = {
    "csv": ("bhp_ctms.exports.formats.csv", "write_csv"),
    "xpt": ("bhp_ctms.exports.formats.statistical", "write_xpt"),
    "dta": ("bhp_ctms.exports.formats.statistical", "write_dta"),
    "sav": ("bhp_ctms.exports.formats.statistical", "write_sav"),
    # write_odm (snapshot, options, out) into odm/<study>.xml.
    "odm": ("bhp_ctms.odm.writer", "write_odm_files"),
}
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*")

# Progress is reported every so many entries read.
PROGRESS_EVERY = 1000

Writer = Callable[[Snapshot, ExportOptions, Sink], None]
Progress = Callable[[int, int], None]


class BundleError(Exception):
    """A bundle that cannot be made; the message says why, for people."""


def choose_formats(names: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The formats named (``all`` for every one), in writing order."""
    chosen: set[str] = set()
    for name in names:
        if name == "all":
            chosen.update(FORMATS)
        elif name in FORMATS:
            chosen.add(name)
        else:
            raise BundleError(
                f"{name!r} is not an export format: choose from {', '.join(FORMATS)} or all"
            )
    if not chosen:
        raise BundleError("Choose at least one format to export")
    return tuple(name for name in FORMATS if name in chosen)


@dataclass(frozen=True)
class BundleFile:
    name: str
    sha256: str
    size: int


@dataclass(frozen=True)
class Bundle:
    """What was written: every file with its hash and size (the manifest last)."""

    files: tuple[BundleFile, ...]
    manifest: dict[str, Any]
    # The entries the formats read (for the progress of an export).
    entries_read: int = 0


def _load(module_name: str, function: str) -> Callable[..., None]:
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        raise BundleError(f"this installation cannot write {module_name}.{function}") from None
    return cast(Callable[..., None], getattr(module, function))


def default_writers() -> dict[str, Writer]:
    """The writer of each format (imported when used)."""
    return {name: _lazy(module_name, function) for name, (module_name, function) in WRITERS.items()}


def _lazy(module_name: str, function: str) -> Writer:
    def write(snapshot: Snapshot, options: ExportOptions, sink: Sink) -> None:
        _load(module_name, function)(snapshot, options, sink)

    return write


def _date_time(taken_at: str) -> tuple[int, int, int, int, int, int]:
    moment = datetime.strptime(taken_at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    if moment.year < 1980:  # the zip format's first year
        moment = datetime(1980, 1, 1, tzinfo=UTC)
    return (moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second)


class _MemberFile(io.BufferedIOBase):
    """One member being written: counts and hashes what goes into the zip."""

    def __init__(self, target: IO[bytes]) -> None:
        super().__init__()
        self._target = target
        self.digest = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        if self.closed:
            raise ValueError("the bundle file is closed")
        view = memoryview(data).cast("B")
        self.digest.update(view)
        self.size += len(view)
        self._target.write(view)
        return len(view)


class ZipSink:
    """Where writers put a bundle's files: members of one deterministic zip."""

    def __init__(self, archive: zipfile.ZipFile, date_time: tuple[int, int, int, int, int, int]):
        self._archive = archive
        self._date_time = date_time
        self.files: list[BundleFile] = []

    def _info(self, name: str) -> zipfile.ZipInfo:
        info = zipfile.ZipInfo(name, date_time=self._date_time)
        info.compress_type = zipfile.ZIP_DEFLATED
        if sys.version_info >= (3, 13):  # pragma: no cover - the attribute's newer name
            info.compress_level = COMPRESS_LEVEL
        else:
            info._compresslevel = COMPRESS_LEVEL  # type: ignore[attr-defined]
        info.create_system = 3  # Unix, so the permissions below are read
        info.external_attr = FILE_MODE << 16
        return info

    def open(self, name: str) -> AbstractContextManager[BinaryIO]:
        return self._open(name)

    def write_manifest(self, content: bytes) -> None:
        with self._open(MANIFEST, manifest=True) as member:
            member.write(content)

    @contextmanager
    def _open(self, name: str, *, manifest: bool = False) -> Iterator[BinaryIO]:
        if not _SAFE_NAME.fullmatch(name) or ".." in name.split("/"):
            raise BundleError(f"{name!r} is not a safe name for a file in a bundle")
        if (name == MANIFEST and not manifest) or any(f.name == name for f in self.files):
            raise BundleError(f"the bundle already has a file named {name}")
        with self._archive.open(self._info(name), "w", force_zip64=True) as target:
            member = _MemberFile(target)
            try:
                yield cast(BinaryIO, member)
            finally:
                member.close()
        self.files.append(BundleFile(name, member.digest.hexdigest(), member.size))


class _ExportView:
    """The snapshot as one export reads it: only the forms chosen (all when none are),
    counting entries read for the progress shown."""

    def __init__(
        self, snapshot: Snapshot, options: ExportOptions, progress: Progress | None, total: int
    ) -> None:
        self._snapshot = snapshot
        self.blinded = snapshot.blinded
        forms = frozenset(options.forms)
        self._forms = forms
        info = snapshot.info
        if forms:
            info = replace(
                info,
                form_versions=tuple(v for v in info.form_versions if v.form_code in forms),
            )
        self.info: SnapshotInfo = info
        self._progress = progress
        self.total = total
        self.done = 0
        self.read = 0

    def participants(self) -> Iterator[ParticipantRecord]:
        return self._snapshot.participants()

    def entries(self) -> Iterator[EntryRecord]:
        forms = self._forms
        read = 0
        for entry in self._snapshot.entries():
            read += 1
            if not forms or entry.form in forms:
                yield entry
            if read % PROGRESS_EVERY == 0:
                self.advance(PROGRESS_EVERY)
        self.advance(read % PROGRESS_EVERY)

    def advance(self, entries: int) -> None:
        self.read += entries
        self.done = min(self.done + entries, self.total)
        if self._progress is not None:
            self._progress(self.done, self.total)

    def finish(self) -> None:
        self.done = self.total = max(self.total, self.read)
        if self._progress is not None:
            self._progress(self.done, self.total)

    def signatures(self) -> Iterator[SignatureRecord]:
        forms = self._forms
        for signature in self._snapshot.signatures():
            if not forms or not signature.form or signature.form in forms:
                yield signature

    def changes(self) -> Iterator[ChangeRecord]:
        forms = self._forms
        for change in self._snapshot.changes():
            if not forms or change.form in forms:
                yield change


def manifest_of(
    snapshot: Snapshot,
    options: ExportOptions,
    files: list[BundleFile],
    content_sha256: str,
) -> dict[str, Any]:
    info = snapshot.info
    interim = info.kind == "interim"
    return {
        "format": MANIFEST_FORMAT,
        "kind": "INTERIM" if interim else "lock",
        "notice": (
            "INTERIM SNAPSHOT for a data monitoring committee: not the locked dataset"
            if interim
            else "Locked dataset"
        ),
        "snapshot": {
            "content_sha256": content_sha256,
            "kind": info.kind,
            "interim": interim,
            "description": info.description,
            "taken_by": info.taken_by,
            "taken_at": info.taken_at,
            "audit_trail": {
                "chain": info.audit_chain,
                "sequence": info.audit_sequence,
                "head_sha256": info.audit_head_hash,
            },
        },
        "study": {
            "code": info.study_code,
            "title": info.study_title,
            "blinding": info.blinding,
        },
        "protocol_versions": [
            {
                "number": version.number,
                "label": version.label,
                "effective_on": version.effective_on,
                "definition_sha256": version.definition_sha256,
            }
            for version in info.protocol_versions
        ],
        "blinded": snapshot.blinded,
        "export": options.to_json(),
        "files": [
            {"name": file.name, "sha256": file.sha256, "size": file.size}
            for file in sorted(files, key=lambda file: file.name)
        ],
    }


def manifest_text(manifest: dict[str, Any]) -> str:
    """The manifest as ``manifest.json`` holds it."""
    return json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_bundle(
    snapshot: Snapshot,
    options: ExportOptions,
    out: BinaryIO,
    *,
    content_sha256: str | None = None,
    progress: Progress | None = None,
    writers: Mapping[str, Writer] | None = None,
) -> Bundle:
    """Write the bundle of ``snapshot`` with ``options`` to ``out`` as a zip.

    ``content_sha256`` is the snapshot's content hash for the manifest (by default
    the snapshot's own ``content_sha256``). ``progress(done, total)`` is called as
    entries are read, ``total`` being the entries to read for every format chosen.
    The snapshot must be blinded exactly when the options ask for a blinded bundle.
    """
    if snapshot.blinded != options.blinded:
        raise BundleError(
            "The snapshot was opened "
            + ("blinded" if snapshot.blinded else "unblinded")
            + " but the export asks for the other: nothing was written"
        )
    formats = choose_formats(options.formats)
    options = replace(options, formats=formats)
    chosen = dict(writers) if writers is not None else default_writers()
    sha256 = content_sha256 if content_sha256 is not None else _content_hash(snapshot)
    entry_count = int(getattr(snapshot, "entry_count", 0) or 0)
    view = _ExportView(snapshot, options, progress, entry_count * len(formats))
    if not out.seekable():
        # A zip written to a pipe carries data descriptors: other bytes. Written to a
        # file first, it is the same whatever ``out`` is.
        with tempfile.TemporaryFile() as spooled:
            bundle = _write_zip(view, options, cast(BinaryIO, spooled), formats, chosen, sha256)
            spooled.seek(0)
            shutil.copyfileobj(spooled, out)
        return bundle
    return _write_zip(view, options, out, formats, chosen, sha256)


def _content_hash(snapshot: Snapshot) -> str:
    return str(getattr(snapshot, "content_sha256", "") or "")


def _write_zip(
    view: _ExportView,
    options: ExportOptions,
    out: BinaryIO,
    formats: tuple[str, ...],
    writers: Mapping[str, Writer],
    content_sha256: str,
) -> Bundle:
    info = view.info
    interim = info.kind == "interim"
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        sink = ZipSink(archive, _date_time(info.taken_at))
        for name in formats:
            writer = writers.get(name)
            if writer is None:
                raise BundleError(f"this installation cannot write the {name} format")
            writer(cast(Snapshot, view), options, sink)
        manifest = manifest_of(cast(Snapshot, view), options, sink.files, content_sha256)
        sink.write_manifest(manifest_text(manifest).encode("utf-8"))
        archive.comment = (
            f"BHP CTMS dataset bundle of {info.study_code}: "
            + ("INTERIM snapshot, not the locked dataset" if interim else "locked dataset")
            + f"; {'blinded' if view.blinded else 'UNBLINDED'}. See {MANIFEST}."
        ).encode("ascii", "replace")[:65535]
    view.finish()
    return Bundle(tuple(sink.files), manifest, view.read)


def bundle_name(study_code: str, snapshot_id: int, interim: bool, export_id: int) -> str:
    """The file name a bundle is downloaded as."""
    kind = "INTERIM" if interim else "lock"
    return f"{study_code}-{kind}-snapshot-{snapshot_id}-export-{export_id}.zip"
