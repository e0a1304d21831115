"""Disclosure shares: expiring, revocable, logged links to a case's evidence.

The one implementation the CLI and the API share. A share holds a random
secret (``secrets.token_urlsafe(32)``, 256 bits) shown once to its creator;
the catalog keeps only its SHA-256. :func:`open_share` is how every request
through a share starts: a malformed or unknown secret is :class:`ShareNotFound`
(404, no detail), an expired or revoked one :class:`ShareGone` (410).

Who may share what is decided in one place, :func:`may_share`, which takes
the sharer's unit scope. Scopes answer like the rest of the API: an item
outside the sharer's units is treated exactly like an id that is not in the
case (the same refusal), a case with no item in scope like an unknown case;
a scoped caller lists and revokes only shares whose items all lie in its
units (a share it cannot see is an unknown share); all-unit callers (the CLI,
all-unit tokens) see every share.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from archive.caselinks import check_case_id, filter_by_case
from archive.context import Archive
from archive.custody import record_event
from archive.db import utcnow
from archive.derivatives import Derivative
from archive.models import Evidence
from archive.scope import ALL_UNITS, Scope
from archive.share_models import Share
from archive.states import GONE_STATES, CopyState, ShareStatus
from config.errors import BadInputError, NotFoundError, RefusedError

ALLOW = ("view", "download")
MAX_DAYS = 365
SECRET_PATTERN = re.compile(r"^[A-Za-z0-9_-]{43}$")
_DURATION = re.compile(r"^\s*(\d{1,4})\s*([dhwm])\s*$")
_UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class ShareError(BadInputError, ValueError):
    """A share request that cannot be done (the message says why)."""


class ShareRefused(RefusedError, ShareError):
    """The sharer may not share an item (outside their scope, not in the case)."""

    code = "share_refused"


class ShareNotFound(NotFoundError, LookupError):
    """No share has this secret (or it is malformed): answered 404 without detail."""

    code = "share_not_found"


class ShareGone(NotFoundError):
    """The share expired or was revoked: answered 410 without detail."""

    code = "share_gone"


#: (actor, evidence) -> may this actor share this item?
ScopeCheck = Callable[[str, Evidence], bool]


def may_share(actor: str, evidence: Evidence, scope: Scope = ALL_UNITS) -> bool:
    """Whether ``actor`` (whose units are ``scope``) may share ``evidence``:
    an item of its units that has not been disposed of."""
    return evidence.state not in GONE_STATES and scope.covers(evidence.unit)


def parse_expiry(value: str) -> timedelta:
    """``14d``, ``36h``, ``2w``, ``90m`` → a duration (at most a year)."""
    match = _DURATION.match(value or "")
    if not match or int(match.group(1)) == 0:
        raise ShareError(f"expiry {value!r}: give a number and d, h, w or m (e.g. 14d)")
    duration = timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])
    if duration > timedelta(days=MAX_DAYS):
        raise ShareError(f"expiry {value!r}: at most {MAX_DAYS} days")
    return duration


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


@dataclass
class Created:
    share: Share
    secret: str
    items: list[dict[str, Any]]


def item_dict(evidence: Evidence) -> dict[str, Any]:
    return {
        "evidence_id": evidence.evidence_id,
        "file_name": evidence.file_name,
        "size": evidence.size,
        "sha256": evidence.sha256,
        "media_type": evidence.media_type,
        "recorded_start": evidence.recorded_start.isoformat() if evidence.recorded_start else None,
        "officer": evidence.officer,
    }


def create_share(
    archive: Archive,
    *,
    case_id: str,
    recipient: str,
    expires_in: timedelta,
    allow: str = "view",
    evidence_ids: list[str] | None = None,
    actor: str,
    units: Scope = ALL_UNITS,
    scope: ScopeCheck | None = None,
) -> Created:
    """A new share of the case's items in ``units`` (or of ``evidence_ids``,
    each of which must be linked to the case and within the sharer's scope).
    Items outside ``units`` are left out as if not linked, so the refusal
    cannot tell them from missing ones. ``scope`` defaults to :func:`may_share`
    with ``units``. Records a ``share_created`` event per item."""
    allowed = scope if scope is not None else partial(may_share, scope=units)
    case_id = check_case_id(case_id)
    recipient = (recipient or "").strip()
    if not recipient or len(recipient) > 500:
        raise ShareError("--to: name the recipient (at most 500 characters)")
    if allow not in ALLOW:
        raise ShareError(f"allow {allow!r}: use view or download")
    with archive.db.session() as session:
        linked = {
            ev.evidence_id: ev
            for ev in session.scalars(units.where(filter_by_case(select(Evidence), case_id)))
        }
        if not linked:
            raise ShareError(f"case {case_id!r} has no evidence linked to it")
        wanted = (
            list(dict.fromkeys(evidence_ids))
            if evidence_ids
            else sorted(linked, key=lambda i: (linked[i].recorded_start or linked[i].sealed_at, i))
        )
        outside = [i for i in wanted if i not in linked]
        if outside:
            raise ShareRefused(f"not linked to case {case_id}: {', '.join(outside)}")
        refused = [i for i in wanted if not allowed(actor, linked[i])]
        if refused:
            raise ShareRefused(f"outside what {actor} may share: {', '.join(refused)}")
        secret = secrets.token_urlsafe(32)
        now = utcnow()
        share = Share(
            share_id="sh-" + secrets.token_hex(8),
            secret_sha256=hash_secret(secret),
            case_id=case_id,
            recipient=recipient,
            allow=allow,
            evidence_ids=wanted,
            created_by=actor,
            created_at=now,
            expires_at=now + expires_in,
        )
        session.add(share)
        for evidence_id in wanted:
            record_event(
                session,
                "share_created",
                actor=actor,
                evidence_id=evidence_id,
                details={
                    "share": share.share_id,
                    "case_id": case_id,
                    "recipient": recipient,
                    "allow": allow,
                    "expires_at": share.expires_at.isoformat(),
                },
            )
        items = [item_dict(linked[i]) for i in wanted]
        session.flush()
        session.expunge(share)
    return Created(share, secret, items)


def set_receipt(archive: Archive, share_id: str, sha256: str) -> None:
    with archive.db.session() as session:
        share = session.get(Share, share_id)
        if share is not None:
            share.receipt_sha256 = sha256


def status_of(share: Share, now: datetime) -> ShareStatus:
    """The one rule of a share's life: revoked beats expired; expired at ``expires_at``."""
    if share.revoked_at is not None:
        return ShareStatus.REVOKED
    if share.expires_at <= now:
        return ShareStatus.EXPIRED
    return ShareStatus.ACTIVE


def share_dict(share: Share, now: datetime | None = None) -> dict[str, Any]:
    status = status_of(share, now or utcnow())
    return {
        "share_id": share.share_id,
        "case_id": share.case_id,
        "recipient": share.recipient,
        "allow": share.allow,
        "evidence_ids": list(share.evidence_ids or []),
        "created_by": share.created_by,
        "created_at": share.created_at.isoformat(),
        "expires_at": share.expires_at.isoformat(),
        "revoked_at": share.revoked_at.isoformat() if share.revoked_at else None,
        "revoked_by": share.revoked_by,
        "receipt_sha256": share.receipt_sha256,
        "status": status,
    }


def _visible(session: Session, shares: list[Share], units: Scope) -> list[Share]:
    """The shares whose items all lie in ``units`` (every share for all units).
    A share discloses every item it holds, so one item outside is enough to
    hide it: its recipient, case and item ids are another agency's business."""
    if units.all_units:
        return shares
    ids = {i for share in shares for i in share.evidence_ids or []}
    unit_of = dict(
        session.execute(
            select(Evidence.evidence_id, Evidence.unit).where(Evidence.evidence_id.in_(ids))
        ).all()
    )
    return [
        share
        for share in shares
        if share.evidence_ids
        and all(i in unit_of and units.covers(unit_of[i]) for i in share.evidence_ids)
    ]


def list_shares(
    archive: Archive, case_id: str | None = None, units: Scope = ALL_UNITS
) -> list[dict[str, Any]]:
    """Every share (of ``case_id``) a caller of ``units`` may see."""
    with archive.db.session() as session:
        query = select(Share).order_by(Share.created_at, Share.share_id)
        if case_id is not None:
            query = query.where(Share.case_id == case_id)
        return [share_dict(s) for s in _visible(session, list(session.scalars(query)), units)]


def revoke_share(
    archive: Archive, share_id: str, *, actor: str, units: Scope = ALL_UNITS
) -> dict[str, Any]:
    """Revoke at once (idempotent: a second revoke changes nothing). KeyError
    if unknown – or not visible to ``units``, which is answered the same."""
    with archive.db.session() as session:
        share = session.get(Share, share_id)
        if share is None or not _visible(session, [share], units):
            raise KeyError(share_id)
        if share.revoked_at is None:
            share.revoked_at = utcnow()
            share.revoked_by = actor
            for evidence_id in share.evidence_ids or []:
                record_event(
                    session,
                    "share_revoked",
                    actor=actor,
                    evidence_id=evidence_id,
                    details={"share": share.share_id, "case_id": share.case_id},
                )
        return share_dict(share)


def open_share(session: Session, secret: str) -> Share:
    """The live share of ``secret``; ShareNotFound or ShareGone otherwise."""
    if not SECRET_PATTERN.match(secret or ""):
        raise ShareNotFound()
    share = session.scalars(select(Share).where(Share.secret_sha256 == hash_secret(secret))).first()
    if share is None:
        raise ShareNotFound()
    if status_of(share, utcnow()) is not ShareStatus.ACTIVE:
        raise ShareGone()
    return share


def shared_items(session: Session, share: Share) -> list[tuple[Evidence, Derivative | None]]:
    """The share's items with their newest stored playback copy (if any)."""
    out = []
    for evidence_id in share.evidence_ids or []:
        evidence = session.get(Evidence, evidence_id)
        if evidence is None:
            continue
        copy = session.scalars(
            select(Derivative)
            .where(Derivative.evidence_id == evidence_id, Derivative.state == CopyState.STORED)
            .where(Derivative.key.is_not(None))
            .order_by(Derivative.id.desc())
            .limit(1)
        ).first()
        out.append((evidence, copy))
    return out


def record_access(
    session: Session, kind: str, share: Share, evidence_id: str, client: str | None, **details: Any
) -> None:
    """A share_viewed / share_played / share_downloaded event naming the share
    and the client's address, in the caller's transaction."""
    record_event(
        session,
        kind,
        actor=f"share:{share.share_id}",
        evidence_id=evidence_id,
        details={
            "share": share.share_id,
            "case_id": share.case_id,
            "recipient": share.recipient,
            "client": client,
            **details,
        },
    )


def open_range(
    archive: Archive, key: str, version_id: str | None, start: int, end: int
) -> Iterator[bytes]:
    """Stream bytes ``start..end`` (inclusive) of one object version, in chunks."""
    args: dict[str, Any] = {
        "Bucket": archive.store.bucket,
        "Key": key,
        "Range": f"bytes={start}-{end}",
    }
    if version_id:
        args["VersionId"] = version_id
    body = archive.store.client.get_object(**args)["Body"]
    try:
        while chunk := body.read(1024 * 1024):
            yield chunk
    finally:
        body.close()
