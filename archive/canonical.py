"""Canonical JSON: the one byte form that Strongroom signs and hashes.

Sorted keys, no insignificant whitespace, UTF-8 (non-ASCII kept as is), no NaN.
Two parties that hold the same document always produce the same bytes, so a
signature or a ledger leaf hash made here can be checked anywhere. Standard
library only: the offline verifier uses it.
"""

from __future__ import annotations

import json
from typing import Any


def canonical_json(value: Any) -> bytes:
    """Return the canonical UTF-8 encoding of ``value``.

    Raises ``ValueError`` for NaN/Infinity, which have no JSON form.
    """
    return json.dumps(
        value,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    ).encode("utf-8")
