"""Bearer tokens and roles.

Tokens are configured only as SHA-256 hashes (``[api] tokens`` /
``STRONGROOM_API__TOKENS`` and the 0600 ``[api] tokens_file``), so neither the
config nor a catalog backup can be replayed as a credential. A presented
token is hashed and compared with *every* configured hash in constant time.

The tokens file is re-read when it changes on disk, so an operator revokes a
token by deleting its line – no restart. A file that stops being readable or
valid is refused as a whole (fail closed) and logged; the environment's tokens
keep working.

Roles: ``case-system`` reads, links and plays; ``auditor`` reads, plays and
fetches bundles and proofs; ``admin`` does everything.

Scopes: a token's ``units`` (widened to their descendants in ``[units]``)
limit every route to those units' items (:mod:`archive.scope`); a token
without units sees all of them.
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import TypeAdapter, ValidationError

from archive.scope import ALL_UNITS, Scope
from archive.tokens import (  # noqa: F401  (re-exported: the API's names for them)
    ADMIN,
    AUDITOR,
    CASE_SYSTEM,
    ROLES,
    TOKEN_PREFIX,
    hash_token,
    new_token,
)
from config.settings import ApiToken, ConfigError, Settings, read_private_file
from frontdoors.api.errors import ApiError

log = logging.getLogger("strongroom.api.auth")

#: who may do what (the issue's role table, in one place)
READ = frozenset(ROLES)
LINK = frozenset({CASE_SYSTEM, ADMIN})
PLAYBACK = frozenset(ROLES)
AUDIT = frozenset({AUDITOR, ADMIN})  # bundles, proofs, checkpoints
METRICS = frozenset({AUDITOR, ADMIN})
UPLOAD = frozenset({CASE_SYSTEM, ADMIN})  # evidence from outside the docks (routes_uploads)

_MAX_TOKEN = 512
_TOKENS = TypeAdapter(list[ApiToken])
bearer = HTTPBearer(auto_error=False, description="a Strongroom API token (sr_…)")


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token's configured name, role and unit scope."""

    name: str
    role: str
    scope: Scope = ALL_UNITS

    @property
    def actor(self) -> str:
        """How the custody ledger names this caller."""
        return f"token:{self.name}"


def parse_tokens_file(data: bytes, path: Path) -> list[ApiToken]:
    """``[[tokens]]`` tables in TOML, or a JSON list (or ``{"tokens": [...]}``)."""
    text = data.decode("utf-8")
    document: object
    try:
        if path.suffix.lower() == ".json":
            document = json.loads(text)
        else:
            try:
                document = tomllib.loads(text)
            except tomllib.TOMLDecodeError:
                document = json.loads(text)  # a JSON list in a file not named .json
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML or JSON: {exc}") from None
    entries = document.get("tokens", []) if isinstance(document, dict) else document
    try:
        return _TOKENS.validate_python(entries)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5]
        )
        raise ConfigError(f"{path}: invalid token entries: {problems}") from None


class TokenBook:
    """The configured token hashes, with the tokens file re-read on change."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._static = self._known_units(list(settings.api.tokens), "[api] tokens")
        self._path = (
            settings.resolve(settings.api.tokens_file) if settings.api.tokens_file else None
        )
        self._lock = threading.Lock()
        self._stamp: tuple[int, ...] | None = None
        self._from_file: list[ApiToken] = []
        if self._path is not None:
            # a missing, unreadable or broken file at start-up is a configuration
            # error, said in one line (exit 2), never a traceback
            try:
                data = read_private_file(self._path)
            except OSError as exc:
                raise ConfigError(
                    f"api.tokens_file {self._path}: cannot read it: {exc.strerror or exc}"
                ) from None
            except UnicodeDecodeError:
                raise ConfigError(f"api.tokens_file {self._path}: not UTF-8 text") from None
            self._from_file = self._known_units(
                parse_tokens_file(data, self._path), str(self._path)
            )
            self._stamp = self._file_stamp()

    def _known_units(self, entries: list[ApiToken], where: str) -> list[ApiToken]:
        """With a ``[units]`` tree configured, a token may name only its units:
        a typo would otherwise silently scope the token to nothing."""
        tree = self._settings.units
        for entry in entries:
            unknown = [u for u in entry.units if tree and u not in tree]
            if unknown:
                raise ConfigError(
                    f"{where}: token {entry.name!r} names unit(s) not in [units]: "
                    f"{', '.join(unknown)}"
                )
        return entries

    def _file_stamp(self) -> tuple[int, ...] | None:
        assert self._path is not None
        try:
            st = self._path.stat()
        except OSError:
            return None
        # ctime and mode too: a chmod that makes the file readable to others must count
        return (st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_mode)

    def _current(self) -> list[ApiToken]:
        if self._path is None:
            return self._static
        with self._lock:
            stamp = self._file_stamp()
            if stamp != self._stamp:
                self._stamp = stamp
                try:
                    self._from_file = self._known_units(
                        parse_tokens_file(read_private_file(self._path), self._path),
                        str(self._path),
                    )
                    log.info("reloaded %d API token(s) from %s", len(self._from_file), self._path)
                except (OSError, ConfigError, UnicodeDecodeError) as exc:
                    self._from_file = []
                    log.error("API tokens file refused, its tokens are disabled: %s", exc)
            return [*self._static, *self._from_file]

    def count(self) -> int:
        return len(self._current())

    def lookup(self, token: str) -> Principal | None:
        """The principal of a presented token, or None. Every entry is compared."""
        if not token or len(token) > _MAX_TOKEN:
            return None
        presented = hash_token(token).encode("ascii")
        found: ApiToken | None = None
        for entry in self._current():
            if hmac.compare_digest(presented, entry.sha256.encode("ascii")) and found is None:
                found = entry
        if found is None:
            return None
        scope = Scope(self._settings.unit_scope(found.units)) if found.units else ALL_UNITS
        return Principal(found.name, found.role, scope)


_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def authenticate(request: Request, credentials: HTTPAuthorizationCredentials | None) -> Principal:
    if credentials is None:
        raise ApiError(401, "unauthenticated", "a bearer token is required", _CHALLENGE)
    book: TokenBook = request.app.state.tokens
    principal = book.lookup(credentials.credentials)
    if principal is None:
        raise ApiError(401, "unauthenticated", "unknown or revoked token", _CHALLENGE)
    return principal


def require(roles: frozenset[str]) -> Callable[..., Principal]:
    """A dependency admitting only callers whose role is in ``roles``."""

    def dependency(
        request: Request,
        credentials: HTTPAuthorizationCredentials | None = Depends(bearer),  # noqa: B008
    ) -> Principal:
        principal = authenticate(request, credentials)
        if principal.role not in roles:
            raise ApiError(
                403,
                "forbidden",
                f"role {principal.role} may not do this (needs {' or '.join(sorted(roles))})",
            )
        return principal

    return dependency


def is_loopback(request: Request) -> bool:
    host = request.client.host if request.client else ""
    return host in ("127.0.0.1", "::1") or host.startswith("127.")
