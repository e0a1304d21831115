"""Everything Strongroom writes to last: stored objects, signed manifests, catalog
rows and custody-ledger leaves.

Modules here never import :mod:`ingest`. The pure modules (``canonical``,
``dsse``, ``merkle``, ``note``) need only the standard library and PyNaCl, so the
offline verifier can use them on an auditor's machine; keep this ``__init__``
free of imports for that reason.
"""
