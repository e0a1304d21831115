"""Reading the signed lineage payload's fields, the same way online and offline.

The lineage manifest layout is written by ``archive.lineage``; the fixity
sweep and the offline verifier both read it back through this module, so the
layout is read in exactly one place.
Standard library only: the offline verifier ships this module.
"""

from __future__ import annotations

from typing import Any


def derivative_sha256(payload: dict[str, Any]) -> str | None:
    """The playback copy's SHA-256 a lineage manifest signs (``derivative.sha256``)."""
    derivative = payload.get("derivative")
    value = derivative.get("sha256") if isinstance(derivative, dict) else None
    return value if isinstance(value, str) else None
