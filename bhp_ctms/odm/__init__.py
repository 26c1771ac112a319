"""CDISC ODM 1.3.2: dataset snapshots exported as ODM, and studies imported from it.

The modules: ``schema`` validates a file against the ODM 1.3.2 schema shipped in
``schema-1.3.2/`` (no network); ``writer`` writes a snapshot as one ODM file, streamed;
``vocabulary`` holds the OIDs and alias contexts both directions share; ``reader``
reads a file into records with their lines (REDCap's project XML leniently);
``planning`` turns a file's metadata into a study folder, ``redcap`` does so for
REDCap's project XML through the REDCap dictionary importer, ``folder`` writes the
folder, and ``importer`` loads it and imports the clinical data (``ctms odm import``).
"""
