"""Alembic migrations of the catalog schema (see :mod:`archive.schema`).

Every schema change ships a migration here: a new file in ``versions/`` whose
``down_revision`` is the previous head, and :data:`HEAD` set to its revision
(a test checks that it matches the scripts). Opening a catalog only compares
its ``alembic_version`` with :data:`HEAD`, so start-up does not load Alembic.
"""

#: the newest revision; a catalog at any other revision is refused until upgraded
HEAD = "0008"
#: the revision that is today's schema of catalogs made before Alembic
BASELINE = "0001"
