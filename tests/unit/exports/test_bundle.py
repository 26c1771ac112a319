"""Bundles: a deterministic zip of the chosen formats' files and a manifest giving the
SHA-256 and size of each. The same snapshot with the same options gives the same
bytes; an interim snapshot is marked as such; a blinded bundle names no arm."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import replace

import pytest

from bhp_ctms.exports.bundles import (
    FORMATS,
    MANIFEST,
    BundleError,
    choose_formats,
    write_bundle,
)
from bhp_ctms.exports.records import ExportOptions, RecordSnapshot
from tests.factories.snapshots import TAKEN_AT, example_snapshot

CONTENT = "c0ffee" * 10 + "abcd"


def record_writer(name: str):
    """A writer of every record it reads, as text, into ``<name>/records.txt`` (and
    an empty ``<name>/empty.txt``): enough to test the bundle without the formats."""

    def write(snapshot, options, sink) -> None:
        with sink.open(f"{name}/records.txt") as out:
            out.write(repr(snapshot.info).encode() + b"\n")
            for record in (*snapshot.participants(), *snapshot.entries()):
                out.write(repr(record).encode() + b"\n")
        with sink.open(f"{name}/empty.txt"):
            pass

    return write


WRITERS = {name: record_writer(name) for name in FORMATS}


def bundle_of(snapshot, options: ExportOptions, **values) -> bytes:
    values.setdefault("writers", WRITERS)
    values.setdefault("content_sha256", CONTENT)
    out = io.BytesIO()
    write_bundle(snapshot, options, out, **values)
    return out.getvalue()


def members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


def test_the_same_snapshot_and_options_give_the_same_bytes():
    options = ExportOptions(formats=("all",), blinded=True, labels=True)
    first = bundle_of(example_snapshot(blinded=True), options)
    second = bundle_of(example_snapshot(blinded=True), options)
    assert first == second
    # Other options, other bytes.
    assert bundle_of(example_snapshot(blinded=True), replace(options, labels=False)) != first


def test_the_manifest_gives_every_file_with_a_hash_that_verifies():
    snapshot = example_snapshot(blinded=True)
    options = ExportOptions(formats=("odm", "csv"), blinded=True, audit_trail=True)
    files = members(bundle_of(snapshot, options))
    manifest = json.loads(files.pop(MANIFEST))
    assert [entry["name"] for entry in manifest["files"]] == sorted(files)
    for entry in manifest["files"]:
        content = files[entry["name"]]
        assert entry["sha256"] == hashlib.sha256(content).hexdigest()
        assert entry["size"] == len(content)
    assert manifest["format"] == "bhp-ctms-dataset-bundle/1"
    assert manifest["snapshot"]["content_sha256"] == CONTENT
    assert manifest["snapshot"]["taken_at"] == TAKEN_AT
    assert manifest["snapshot"]["kind"] == "lock"
    assert manifest["kind"] == "lock"
    assert manifest["study"] == {
        "code": "WALK",
        "title": "Walking after stroke",
        "blinding": "double",
    }
    assert manifest["protocol_versions"][0]["label"] == "1.0"
    assert manifest["blinded"] is True
    # The formats in writing order, whatever order they were asked in.
    assert manifest["export"] == {
        "formats": ["csv", "odm"],
        "blinded": True,
        "labels": False,
        "audit_trail": True,
        "forms": [],
    }


def test_every_member_has_the_snapshots_time_and_fixed_attributes_and_the_manifest_is_last():
    data = bundle_of(example_snapshot(blinded=True), ExportOptions(formats=("csv", "xpt")))
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        infos = archive.infolist()
        assert archive.comment.startswith(b"BHP CTMS dataset bundle of WALK: locked dataset")
    assert [info.filename for info in infos] == [
        "csv/records.txt",
        "csv/empty.txt",
        "xpt/records.txt",
        "xpt/empty.txt",
        MANIFEST,
    ]
    for info in infos:
        assert info.date_time == (2026, 11, 20, 14, 5, 8)  # zip times count in 2 s steps
        assert info.compress_type == zipfile.ZIP_DEFLATED
        assert info.external_attr >> 16 == 0o100644
        assert info.create_system == 3


def test_an_interim_bundle_says_so():
    snapshot = example_snapshot(blinded=True)
    interim = replace(snapshot, info=replace(snapshot.info, kind="interim"))
    data = bundle_of(interim, ExportOptions(formats=("csv",)))
    manifest = json.loads(members(data)[MANIFEST])
    assert manifest["kind"] == "INTERIM"
    assert manifest["snapshot"]["interim"] is True
    assert "INTERIM SNAPSHOT" in manifest["notice"]
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert b"INTERIM snapshot, not the locked dataset" in archive.comment


def test_a_pipe_gets_the_same_bytes_as_a_file():
    class Pipe(io.BytesIO):
        def seekable(self) -> bool:
            return False

    options = ExportOptions(formats=("csv",))
    pipe = Pipe()
    write_bundle(
        example_snapshot(blinded=True), options, pipe, writers=WRITERS, content_sha256=CONTENT
    )
    assert pipe.getvalue() == bundle_of(example_snapshot(blinded=True), options)


def test_progress_counts_the_entries_read_by_every_format():
    snapshot = example_snapshot(blinded=True)
    entries = len(snapshot.entry_records)
    counted = replace(snapshot)
    object.__setattr__(counted, "entry_count", entries)  # as a stored snapshot has it
    seen: list[tuple[int, int]] = []
    bundle_of(
        counted,
        ExportOptions(formats=("csv", "odm")),
        progress=lambda done, total: seen.append((done, total)),
    )
    assert seen[-1] == (2 * entries, 2 * entries)
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)


def test_the_forms_chosen_are_the_only_ones_exported():
    snapshot = example_snapshot(blinded=True)
    files = members(bundle_of(snapshot, ExportOptions(formats=("csv",), forms=("vitals",))))
    records = files["csv/records.txt"].decode()
    assert "form='vitals'" in records
    assert "form='demographics'" not in records
    assert "form_code='demographics'" not in records.splitlines()[0]


def test_a_blinded_export_needs_a_blinded_snapshot():
    with pytest.raises(BundleError, match="opened unblinded"):
        bundle_of(example_snapshot(blinded=False), ExportOptions(formats=("csv",), blinded=True))


def test_formats_are_checked_and_all_means_every_one():
    assert choose_formats(["all"]) == FORMATS == ("csv", "dta", "odm", "sav", "xpt")
    assert choose_formats(["xpt", "csv", "xpt"]) == ("csv", "xpt")
    with pytest.raises(BundleError, match="'pdf' is not an export format"):
        choose_formats(["pdf"])
    with pytest.raises(BundleError, match="at least one format"):
        choose_formats([])


@pytest.mark.parametrize("name", ["../escape.txt", "/abs.txt", "csv/../x", MANIFEST, "a b.txt"])
def test_a_writer_cannot_write_outside_the_bundle_or_over_the_manifest(name):
    def writer(snapshot, options, sink) -> None:
        with sink.open(name) as out:
            out.write(b"x")

    with pytest.raises(BundleError):
        bundle_of(example_snapshot(blinded=True), ExportOptions(), writers={"csv": writer})


def test_a_file_cannot_be_written_twice():
    def writer(snapshot, options, sink) -> None:
        for _ in range(2):
            with sink.open("csv/same.csv") as out:
                out.write(b"x")

    with pytest.raises(BundleError, match=r"already has a file named csv/same\.csv"):
        bundle_of(example_snapshot(blinded=True), ExportOptions(), writers={"csv": writer})


def test_a_blinded_csv_bundle_names_no_arm_and_is_the_same_twice():
    """With the CSV writer itself (the other formats are tested on their own)."""
    snapshot = example_snapshot(blinded=True).as_blinded()
    options = ExportOptions(formats=("csv",), blinded=True, labels=True)
    first = bundle_of(snapshot, options, writers=None)
    assert first == bundle_of(example_snapshot(blinded=True).as_blinded(), options, writers=None)
    for name, content in members(first).items():
        text = content.decode("utf-8")
        for arm in ("usual_care", "Usual Care"):
            assert arm not in text, name
    unblinded = bundle_of(
        example_snapshot(blinded=False), replace(options, blinded=False), writers=None
    )
    assert any(b"usual_care" in content for content in members(unblinded).values())


def test_record_snapshot_is_a_snapshot():
    # The in-memory snapshot the tests use carries no content hash of its own.
    snapshot: RecordSnapshot = example_snapshot(blinded=True)
    manifest = json.loads(
        members(bundle_of(snapshot, ExportOptions(), content_sha256=None))[MANIFEST]
    )
    assert manifest["snapshot"]["content_sha256"] == ""
