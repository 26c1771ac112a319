"""Dataset snapshots and exports: a study's data frozen at a lock or an interim cut,
content-hashed and immutable, and bundles of files for statisticians made from them
(CSV, CDISC ODM, SAS transport, Stata, SPSS) by a worker, with a manifest of hashes.
"""

from __future__ import annotations

from typing import Any


def includeme(config: Any) -> None:
    datasets = "/studies/{code}/datasets"
    factory = "bhp_ctms.exports.resources.DatasetsFactory"
    export = "bhp_ctms.exports.resources.ExportFactory"
    config.add_route("datasets", datasets, factory=factory)
    config.add_route("datasets_snapshot", datasets + "/snapshots", factory=factory)
    config.add_route("datasets_export", datasets + "/exports", factory=factory)
    config.add_route("datasets_status", datasets + "/exports.json", factory=factory)
    # One export's files: ?export=<id>.
    config.add_route("dataset_bundle", datasets + "/bundle.zip", factory=export)
    config.add_route("dataset_manifest", datasets + "/manifest.json", factory=export)
    config.include("bhp_ctms.exports.tasks")
