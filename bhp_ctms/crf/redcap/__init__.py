"""Importing REDCap data dictionaries as form definition files.

``import_dictionary(dictionary, out)`` writes ``out/forms/<instrument>.yaml`` for each
REDCap instrument, lists the fields it cannot import (``skipped``) and what it imports
differently (``notes``), and refuses a malformed dictionary with every problem by row
and column (:class:`DictionaryError`), writing nothing.
"""

from bhp_ctms.crf.redcap.dictionary import DictionaryError
from bhp_ctms.crf.redcap.importer import (
    ImportedForm,
    ImportNote,
    RedcapImport,
    SkippedField,
    import_dictionary,
)

__all__ = [
    "DictionaryError",
    "ImportNote",
    "ImportedForm",
    "RedcapImport",
    "SkippedField",
    "import_dictionary",
]
