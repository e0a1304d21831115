"""Benchmarks of the ingest path against the plain tools, on this machine, in one run.

``make bench`` (``python -m bench``) generates its own data, starts its own
locked-down SeaweedFS, and measures ``strongroom ingest`` / ``strongroom run``
next to ``aws s3 cp`` and ``openssl dgst`` on the same files and server, so
every figure is a ratio taken in the same run. See ``bench/README.md``.
"""
