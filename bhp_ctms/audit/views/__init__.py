"""The audit trail's pages: a study's trail, a record's history, exports, the system trail."""
