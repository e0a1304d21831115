"""API roles and token primitives, without the web framework.

The CLI's ``token create`` needs these; importing them from
:mod:`frontdoors.api.auth` would load FastAPI into every CLI command (~0.2 s of
start-up). The API's authentication re-exports them.
"""

from __future__ import annotations

import hashlib
import secrets

CASE_SYSTEM = "case-system"
AUDITOR = "auditor"
ADMIN = "admin"
ROLES = (CASE_SYSTEM, AUDITOR, ADMIN)

TOKEN_PREFIX = "sr_"  # noqa: S105 (a prefix that makes leaked tokens greppable)


def hash_token(token: str) -> str:
    """What the config stores: the token's SHA-256, never the token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    """A fresh random token (256 bits), shown once to the operator."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)
