"""Disposition: deleting originals whose retention has ended, by two people.

Three steps, each a custody event per item, none of which can delete more
than the step before allowed:

1. **plan** – the retention sweep (:mod:`verify.retention_sweep`, daily and
   ``strongroom retention plan``) lists expired, unlinked, unheld items with
   the exact object versions to delete. Nothing is deleted. The plan is a JSON
   document whose canonical SHA-256 is fixed at creation.
2. **approve** (``--by NAME``, here): a named approval of that exact document.
   The same name twice counts once; ``apply`` needs ``approvers_required``
   distinct names (default 2).
3. **apply** (here): re-checks every item just before deleting (an item that
   gained a link, a hold or a longer lock since the plan is skipped with the
   reason), deletes exactly the planned versions of originals and playback
   copies – but keeps a playback copy another live item still shares
   (identical bytes, one object), which goes with the last item using it –
   keeps every manifest and ledger leaf, marks the item ``disposed``
   and stores a signed **disposition certificate** (DSSE) under lock at
   ``dispositions/<plan_id>.dsse.json``.

Apply is safe to re-run: a plan already applied only (re)writes its
certificate, which is idempotent (create-only, same content).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from archive.canonical import canonical_json
from archive.context import Archive
from archive.custody import record_event
from archive.db import utcnow
from archive.derivatives import Derivative, items_sharing
from archive.disposition_models import DispositionApproval, DispositionPlan
from archive.holds import disposal_refusal
from archive.instants import iso_z as _iso
from archive.layout import certificate_key
from archive.metrics import DISPOSED
from archive.models import CustodyEvent, Evidence
from archive.seal import store_manifest
from archive.states import CopyState, EvidenceState, ItemOutcome, PlanState
from archive.store import NotFound, StoreError
from config.errors import BadInputError, ConflictError

PLAN_SCHEMA = "strongroom/disposition-plan/v1"
CERTIFICATE_SCHEMA = "strongroom/disposition/v1"
DISPOSITION_PAYLOAD_TYPE = "application/vnd.strongroom.disposition+json"
WHY = "retention period ended; no case link; no legal hold"


class DispositionError(BadInputError):
    """No such plan, or a plan whose document does not match its hash."""

    code = "bad_disposition_request"


class DispositionRefused(ConflictError, DispositionError):
    """Not allowed (yet): too few approvers, or the plan was already applied."""

    code = "disposition_refused"


def content_sha256(document: dict[str, Any]) -> str:
    """The plan's identity: SHA-256 of its canonical JSON."""
    return hashlib.sha256(canonical_json(document)).hexdigest()


def store_refusal(archive: Archive, entry: dict[str, Any], now: datetime) -> str:
    """Why the store's own view forbids deleting this version now ('' = it does not)."""
    try:
        info = archive.store.head(entry["key"], entry["version_id"])
    except NotFound:
        return f"{entry['key']} version {entry['version_id']} is missing from the store"
    if info.legal_hold:
        return f"{entry['key']} is under legal hold in the store"
    if info.retain_until is not None and info.retain_until > now:
        return f"{entry['key']} is locked in the store until {_iso(info.retain_until)}"
    if entry["size"] is not None and info.size != entry["size"]:
        return f"{entry['key']} has {info.size} bytes in the store, catalog says {entry['size']}"
    return ""


# -- approve ------------------------------------------------------------------------


@dataclass
class ApprovalOutcome:
    plan_id: str
    approver: str
    new: bool  # False: this name had approved already (counts once)
    approvers: list[str]
    required: int

    @property
    def ready(self) -> bool:
        return len(self.approvers) >= self.required

    def to_dict(self) -> dict[str, Any]:
        return {
            "plan_id": self.plan_id,
            "approver": self.approver,
            "new": self.new,
            "approvers": self.approvers,
            "required": self.required,
            "ready": self.ready,
        }


def approve(
    archive: Archive, ref: str, *, by: str, actor: str, note: str | None = None
) -> ApprovalOutcome:
    """Record ``by``'s approval of the plan's exact content (idempotent per name)."""
    name = " ".join(by.split())
    if not name or len(name) > 200:
        raise DispositionError("an approver name (1–200 characters) is required")
    required = archive.settings.retention.approvers_required
    with archive.db.session() as session:
        plan = load_plan(session, ref, lock=True)
        if plan.state != PlanState.PLANNED:
            raise DispositionRefused(f"plan {plan.plan_id} is {plan.state}; nothing to approve")
        new = session.get(DispositionApproval, (plan.plan_id, name)) is None
        if new:
            session.add(
                DispositionApproval(
                    plan_id=plan.plan_id,
                    approver=name,
                    actor=actor,
                    content_sha256=plan.content_sha256,
                    approved_at=utcnow(),
                    note=note,
                )
            )
            session.flush()
        approvers = _approvers(session, plan)
        if new:
            for item in plan.document["items"]:
                record_event(
                    session,
                    "disposition_approved",
                    actor=actor,
                    evidence_id=item["evidence_id"],
                    details={
                        "plan_id": plan.plan_id,
                        "plan_sha256": plan.content_sha256,
                        "approver": name,
                        "approvals": len(approvers),
                        "required": required,
                    },
                )
        return ApprovalOutcome(plan.plan_id, name, new, approvers, required)


def _approvers(session: Session, plan: DispositionPlan) -> list[str]:
    return list(
        session.scalars(
            select(DispositionApproval.approver)
            .where(
                DispositionApproval.plan_id == plan.plan_id,
                DispositionApproval.content_sha256 == plan.content_sha256,
            )
            .order_by(DispositionApproval.approved_at, DispositionApproval.approver)
        )
    )


def load_plan(session: Session, ref: str, *, lock: bool = False) -> DispositionPlan:
    """A plan by id, or by the path of its JSON file (whose content must be the
    catalog's, byte for byte after canonicalisation)."""
    plan_id, from_file = ref, None
    path = Path(ref)
    if ref.endswith(".json") and path.is_file():
        try:
            from_file = json.loads(path.read_text(encoding="utf-8"))
            plan_id = from_file["plan_id"]
        except (ValueError, KeyError, TypeError) as exc:
            raise DispositionError(f"{ref} is not a disposition plan: {exc!r}") from exc
    if lock:  # a no-op write takes the write lock before we read (see archive.caselinks)
        session.execute(
            update(DispositionPlan)
            .where(DispositionPlan.plan_id == plan_id)
            .values(state=DispositionPlan.state)
            .execution_options(synchronize_session=False)
        )
    plan = session.get(DispositionPlan, plan_id, populate_existing=True)
    if plan is None:
        raise DispositionError(f"no disposition plan {plan_id}")
    if content_sha256(plan.document) != plan.content_sha256:
        raise DispositionError(f"plan {plan_id} in the catalog does not match its recorded hash")
    if from_file is not None and content_sha256(from_file) != plan.content_sha256:
        raise DispositionError(f"{ref} differs from plan {plan_id} as approved in the catalog")
    return plan


def list_plans(session: Session, limit: int = 50) -> list[dict[str, Any]]:
    rows = session.scalars(
        select(DispositionPlan).order_by(DispositionPlan.created_at.desc()).limit(limit)
    )
    return [
        {
            "plan_id": p.plan_id,
            "state": p.state,
            "created_at": _iso(p.created_at),
            "items": p.items,
            "approvers": _approvers(session, p),
            "certificate_key": p.certificate_key,
        }
        for p in rows
    ]


# -- apply ---------------------------------------------------------------------------


@dataclass
class ApplyOutcome:
    plan_id: str
    result: dict[str, Any]
    certificate_key: str
    certificate_version_id: str | None
    already_applied: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "plan_id": self.plan_id,
            "already_applied": self.already_applied,
            "certificate_key": self.certificate_key,
            "certificate_version_id": self.certificate_version_id,
            "disposed": [i["evidence_id"] for i in self.result["disposed"]],
            "skipped": self.result["skipped"],
            "failed": self.result["failed"],
        }


def apply_plan(
    archive: Archive, ref: str, *, actor: str, now: datetime | None = None
) -> ApplyOutcome:
    """Delete what an approved plan lists, item by item, and certify it."""
    required = archive.settings.retention.approvers_required
    with archive.db.session() as session:
        plan = load_plan(session, ref)
        if plan.state == PlanState.APPLIED:
            assert plan.result is not None
            return _certify(archive, plan.plan_id, plan.result, already=True)
        approvers = _approvers(session, plan)
        if len(approvers) < required:
            raise DispositionRefused(
                f"plan {plan.plan_id} needs {required} different approvers, has "
                f"{len(approvers)}" + (f" ({', '.join(approvers)})" if approvers else "")
            )
        plan_id, digest, document = plan.plan_id, plan.content_sha256, plan.document
        approvals = [
            {"by": a.approver, "at": _iso(a.approved_at), "actor": a.actor}
            for a in session.scalars(
                select(DispositionApproval)
                .where(DispositionApproval.plan_id == plan_id)
                .order_by(DispositionApproval.approved_at, DispositionApproval.approver)
            )
        ]
    disposed: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    failed: list[dict[str, Any]] = []
    for item in document["items"]:
        outcome = _apply_item(archive, item, plan_id, digest, actor=actor, now=now)
        kind = outcome.pop("result")
        {
            ItemOutcome.DISPOSED: disposed,
            ItemOutcome.SKIPPED: skipped,
            ItemOutcome.FAILED: failed,
        }[kind].append(outcome)
        DISPOSED.labels(result=kind).inc()
    DISPOSED.labels(result="objects").inc(sum(len(i["deleted"]) for i in disposed))
    result = {
        "schema": CERTIFICATE_SCHEMA,
        "plan_id": plan_id,
        "plan_sha256": digest,
        "station": document["station"],
        "bucket": document["bucket"],
        "why": document["why"],
        "planned": {"at": document["created_at"], "by": document["created_by"]},
        "approvers_required": required,
        "approved": approvals,
        "applied": {"at": _iso(now or utcnow()), "by": actor},
        "disposed": disposed,
        "skipped": skipped,
        "failed": failed,
        "keyid": archive.key.keyid,
    }
    with archive.db.session() as session:
        plan = load_plan(session, plan_id, lock=True)
        if plan.state == PlanState.APPLIED:  # another apply finished first: its result stands
            assert plan.result is not None
            result = plan.result
        else:
            plan.state, plan.result = PlanState.APPLIED, result
            plan.applied_at, plan.applied_by = utcnow(), actor
    return _certify(archive, plan_id, result)


def _apply_item(
    archive: Archive,
    item: dict[str, Any],
    plan_id: str,
    digest: str,
    *,
    actor: str,
    now: datetime | None,
) -> dict[str, Any]:
    """Re-check one item under its row lock and delete its planned versions."""
    evidence_id = item["evidence_id"]
    with archive.db.session() as session:
        evidence = _lock_item(session, evidence_id)
        reason = _skip_reason(session, archive, evidence, item, now or utcnow())
        if reason:
            return {"result": ItemOutcome.SKIPPED, "evidence_id": evidence_id, "reason": reason}
        deleted: list[dict[str, Any]] = []
        shared = _shared_entries(session, evidence_id, item)
        kept = item["keep"] + [
            {**entry, "shared_with": shared[entry["key"]]}
            for entry in item["delete"]
            if entry["key"] in shared
        ]
        error = None
        for entry in item["delete"]:
            if entry["key"] in shared:  # another live item's playback copy too: it stays
                continue
            try:
                archive.store.delete_version(entry["key"], entry["version_id"])
            except StoreError as exc:
                error = str(exc)
                break
            deleted.append(entry)
        details: dict[str, Any] = {
            "plan_id": plan_id,
            "plan_sha256": digest,
            "deleted": [[o["key"], o["version_id"]] for o in deleted],
            "kept": [[o["key"], o["version_id"]] for o in kept],
        }
        if error is not None:
            # the versions already gone are recorded truthfully; the item stays as it was
            details.update(partial=True, error=error)
            record_event(session, "disposed", actor=actor, evidence_id=evidence_id, details=details)
            return {
                "result": ItemOutcome.FAILED,
                "evidence_id": evidence_id,
                "error": error,
                "deleted": deleted,
            }
        evidence.state = EvidenceState.DISPOSED
        for copy in session.scalars(
            select(Derivative).where(
                Derivative.evidence_id == evidence_id, Derivative.state == CopyState.STORED
            )
        ):
            copy.state = CopyState.DISPOSED
        record_event(session, "disposed", actor=actor, evidence_id=evidence_id, details=details)
        return {
            "result": ItemOutcome.DISPOSED,
            "evidence_id": evidence_id,
            "sha256": item["sha256"],
            "size": item["size"],
            "file_name": item["file_name"],
            "category": item["category"],
            "ingested_at": item["ingested_at"],
            "retain_until": item["retain_until"],
            "deleted": deleted,
            "kept": kept,
        }


def _skip_reason(
    session: Session, archive: Archive, evidence: Evidence, item: dict[str, Any], now: datetime
) -> str:
    """Why this item may not be disposed of now, although it was planned ('' = go):
    the disposal rule (:func:`archive.holds.disposal_refusal`) asked again, the
    objects the plan names still the item's, and the store agreeing."""
    refusal = disposal_refusal(session, archive, evidence, now)
    if refusal is not None:
        return refusal.why
    planned = {(o["key"], o["version_id"]) for o in item["delete"]}
    current = {(evidence.original_key, evidence.original_version_id)} | {
        (c.key, c.version_id)
        for c in session.scalars(
            select(Derivative).where(
                Derivative.evidence_id == evidence.evidence_id,
                Derivative.state == CopyState.STORED,
            )
        )
        if c.key
    }
    if current != planned:
        return "its stored objects changed since the plan (a new playback copy?)"
    shared = _shared_entries(session, evidence.evidence_id, item)
    for entry in item["delete"]:
        why = "" if entry["key"] in shared else store_refusal(archive, entry, now)
        if why:
            return why
    return ""


def _shared_entries(
    session: Session, evidence_id: str, item: dict[str, Any]
) -> dict[str, list[str]]:
    """Planned versions another live item still uses (a shared playback copy), by key,
    with those items' ids: kept, and deleted with the last item that uses them."""
    shared: dict[str, list[str]] = {}
    for entry in item["delete"]:
        users = items_sharing(session, entry["key"], entry["version_id"], but=evidence_id)
        if users:
            shared[entry["key"]] = [u.evidence_id for u in users]
    return shared


def _lock_item(session: Session, evidence_id: str) -> Evidence:
    session.execute(
        update(Evidence)
        .where(Evidence.evidence_id == evidence_id)
        .values(state=Evidence.state)
        .execution_options(synchronize_session=False)
    )
    evidence = session.get(Evidence, evidence_id, populate_existing=True)
    if evidence is None:
        raise DispositionError(f"planned item {evidence_id} is not in the catalog")
    return evidence


def _certify(
    archive: Archive, plan_id: str, result: dict[str, Any], *, already: bool = False
) -> ApplyOutcome:
    """Store the signed certificate (create-only; a retry adopts the stored one)."""
    key = certificate_key(plan_id)
    retention = archive.retention_for(archive.settings.retention.case_category)
    sealed = store_manifest(
        archive.store,
        archive.key,
        key,
        result,
        DISPOSITION_PAYLOAD_TYPE,
        retention,
        identity_fields=("plan_id", "plan_sha256", "applied.at"),
    )
    with archive.db.session() as session:
        plan = session.get(DispositionPlan, plan_id)
        assert plan is not None
        plan.certificate_key = key
        plan.certificate_version_id = sealed.stored.version_id
    return ApplyOutcome(plan_id, result, key, sealed.stored.version_id, already)


# -- show -----------------------------------------------------------------------------


def item_disposition(session: Session, evidence_id: str) -> dict[str, Any] | None:
    """``strongroom show``: the latest plan that listed the item – awaiting
    approval, skipped at apply, or the one that disposed of it with its
    certificate; None if no plan ever listed it. Found through the item's own
    custody events (indexed by evidence id), not by reading every plan."""
    plan_id = session.scalar(
        select(CustodyEvent.details)
        .where(
            CustodyEvent.evidence_id == evidence_id,
            CustodyEvent.kind.in_(("disposition_planned", "disposed")),
        )
        .order_by(CustodyEvent.seq.desc())
        .limit(1)
    )
    plan = session.get(DispositionPlan, plan_id["plan_id"]) if plan_id else None
    if plan is None:
        return None
    entry: dict[str, Any] = {"plan_id": plan.plan_id, "plan_state": plan.state}
    if plan.state == PlanState.PLANNED:
        entry["approvers"] = _approvers(session, plan)
        return entry
    result = plan.result or {}
    if any(i["evidence_id"] == evidence_id for i in result.get("disposed", [])):
        entry.update(
            disposed_at=result.get("applied", {}).get("at"),
            certificate_key=plan.certificate_key,
            certificate_version_id=plan.certificate_version_id,
        )
    for group in ("skipped", "failed"):
        for item in result.get(group, []):
            if item["evidence_id"] == evidence_id:
                entry[group] = item.get("reason") or item.get("error")
    return entry
