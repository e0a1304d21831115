"""The one error base every Strongroom error derives from.

An error's *kind* is its type, and its ``code`` a stable name: the HTTP API
answers ``{"error": {"code": …}}`` with that code and a status chosen by the
kind (frontdoors/api/errors.py), the command line exits with a code chosen by
the kind (frontdoors/cli/common.py). A client branches on the code, never on
the text.

It lives in ``config``, the bottom layer, so that every package – the
configuration's own :class:`ConfigError` included – can derive from it. The
offline verifier's modules (and the pure archive modules it shares) cannot:
an auditor's copy has no ``config``, so their errors stay plain ``ValueError``s.
Errors that also behave as a built-in error (``KeyError``, ``ValueError``,
``OSError``…) keep that base as a second parent: code written to catch the
built-in kind still does.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar


class StrongroomError(Exception):
    """Every error Strongroom raises on purpose."""

    #: the stable name clients see; subclasses name themselves
    code: ClassVar[str] = "internal_error"


class NotFoundError(StrongroomError):
    """What was asked for does not exist (or is outside the caller's scope): HTTP 404."""

    code = "not_found"


class ConflictError(StrongroomError):
    """The request is sound but the item's state forbids it now: HTTP 409."""

    code = "conflict"


class RefusedError(StrongroomError):
    """This caller may not do this, whatever the state: HTTP 403."""

    code = "forbidden"


class UnavailableError(StrongroomError):
    """Something outside the code (store, catalog, a tool) cannot serve now: HTTP 503."""

    code = "unavailable"


class BadInputError(StrongroomError):
    """The input itself is wrong (a value, a file, a document): HTTP 422."""

    code = "invalid_request"


class UnknownEvidence(NotFoundError, KeyError):
    """Ids that name no evidence item – or none the caller's scope covers, which
    is the same answer on purpose (a scope cannot probe for existence).

    A ``KeyError`` too: ``args[0]`` is the id (several are joined with ", ").
    """

    code = "evidence_not_found"

    def __init__(self, ids: str | Iterable[str]) -> None:
        self.ids = [ids] if isinstance(ids, str) else list(ids)
        super().__init__(", ".join(self.ids))

    def __str__(self) -> str:
        return "no evidence " + ", ".join(repr(i) for i in self.ids)
