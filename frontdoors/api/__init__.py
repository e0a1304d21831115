"""The case-system HTTP API (FastAPI): evidence search and reading, case links
with legal hold, playback URLs, bundles, ledger proofs, keys, health, metrics.

Every route needs a bearer token except ``/healthz``; every access to one
item's content is a custody event. See :mod:`frontdoors.api.app`.
"""
