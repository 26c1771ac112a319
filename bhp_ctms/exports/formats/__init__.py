"""The export formats: each writes a snapshot's records into a bundle's files.

A writer reads only a :class:`bhp_ctms.exports.records.Snapshot` and writes through
a :class:`Sink`, which names each file within the bundle; what it writes must depend
on nothing but the snapshot and the export's options, so that the same snapshot
always gives the same bytes.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import BinaryIO, Protocol


class Sink(Protocol):
    """Where a writer puts its files: ``open("csv/vitals.csv")`` gives a binary file
    to write, closed when the block ends."""

    def open(self, name: str) -> AbstractContextManager[BinaryIO]: ...
