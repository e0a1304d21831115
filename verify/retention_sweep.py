"""The retention sweep: which items' retention has ended, written as a
disposition plan for two people to approve (see :mod:`archive.disposition`).

An item is planned when the disposal rule (:func:`archive.holds.disposal_refusal`:
retention ended, no case link, no legal hold in the catalog, a dated category,
no playback copy pending) allows it – and the store's own HEAD of every version
to delete agrees (no hold, lock expired, same size). Items that the catalog
calls due but the store does not, or whose playback copy is still being made,
are listed as *deferred* with the reason. Items already in a plan awaiting
approval are not planned twice. Nothing is deleted.
"""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from archive import leases
from archive.context import Archive
from archive.custody import record_event, system_actor
from archive.db import utcnow
from archive.derivatives import Derivative
from archive.disposition import PLAN_SCHEMA, WHY, content_sha256, store_refusal
from archive.disposition_models import DispositionPlan
from archive.holds import disposal_refusal
from archive.instants import iso_z as _iso
from archive.metrics import DISPOSITION_PLANS, ERRORS
from archive.models import Evidence
from archive.states import GONE_STATES, CopyState, PlanState

log = logging.getLogger("strongroom.retention_sweep")


@dataclass
class PlanOutcome:
    plan_id: str
    content_sha256: str
    document: dict[str, Any]
    files: list[Path] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "plan_id": self.plan_id,
            "content_sha256": self.content_sha256,
            "files": [str(p) for p in self.files],
            "plan": self.document,
        }


def plan_disposition(
    archive: Archive,
    *,
    actor: str,
    now: datetime | None = None,
    plans_dir: Path | None = None,
    lease: leases.Lease | None = None,
) -> PlanOutcome | None:
    """Sweep the catalog and write a plan of what is due; None if nothing new is.

    Items already in a plan awaiting approval are left out (they are not
    planned twice). The plan is saved in the catalog and as
    ``<plans_dir>/<plan_id>.json`` plus a ``.txt`` summary (default
    ``<data_dir>/dispositions``). With a lease (the scheduled sweep), the plan
    is written only while the lease is still this node's (fencing).
    """
    now = now or utcnow()
    settings = archive.settings
    plan_id = f"dp-{now.strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(3)}"
    with archive.db.session() as session:
        pending = _pending_items(session)
        items: list[dict[str, Any]] = []
        deferred: list[dict[str, str]] = []
        for evidence in session.scalars(_due_query(now)):
            if evidence.evidence_id in pending:
                continue
            refusal = disposal_refusal(session, archive, evidence, now)
            if refusal is not None:  # linked, held, permanent: not even a candidate
                if refusal.passing:
                    deferred.append({"evidence_id": evidence.evidence_id, "reason": refusal.why})
                continue
            entry, why_not = _plan_item(session, archive, evidence, now)
            if entry is None:
                deferred.append({"evidence_id": evidence.evidence_id, "reason": why_not})
            else:
                items.append(entry)
        if not items:
            if deferred:
                log.info("retention sweep: nothing to plan; %d item(s) deferred", len(deferred))
            return None
        document = {
            "schema": PLAN_SCHEMA,
            "plan_id": plan_id,
            "station": settings.station.name,
            "bucket": settings.store.bucket,
            "created_at": _iso(now),
            "created_by": actor,
            "why": WHY,
            "approvers_required": settings.retention.approvers_required,
            "items": items,
            "deferred": deferred,
            "totals": {
                "items": len(items),
                "objects": sum(len(i["delete"]) for i in items),
                "bytes": sum(o["size"] or 0 for i in items for o in i["delete"]),
            },
        }
        digest = content_sha256(document)
        if lease is not None:
            leases.check(session, lease)
        session.add(
            DispositionPlan(
                plan_id=plan_id,
                created_at=now,
                created_by=actor,
                state=PlanState.PLANNED,
                content_sha256=digest,
                document=document,
                items=len(items),
            )
        )
        for item in items:
            record_event(
                session,
                "disposition_planned",
                actor=actor,
                evidence_id=item["evidence_id"],
                details={
                    "plan_id": plan_id,
                    "plan_sha256": digest,
                    "retain_until": item["retain_until"],
                    "delete": [[o["key"], o["version_id"]] for o in item["delete"]],
                },
            )
    DISPOSITION_PLANS.inc()
    outcome = PlanOutcome(plan_id, digest, document)
    folder = plans_dir or settings.data_dir / "dispositions"
    outcome.files = write_plan_files(document, folder)
    return outcome


def write_plan_files(document: dict[str, Any], folder: Path) -> list[Path]:
    """``<plan_id>.json`` (the document) and ``<plan_id>.txt`` (for people)."""
    folder.mkdir(parents=True, exist_ok=True)
    base = folder / document["plan_id"]
    json_path, text_path = base.with_suffix(".json"), base.with_suffix(".txt")
    json_path.write_text(
        json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    text_path.write_text(plan_summary(document), encoding="utf-8")
    return [json_path, text_path]


def plan_summary(document: dict[str, Any], approvals: list[str] | None = None) -> str:
    """The plan in plain words, for the people asked to approve it."""
    totals = document["totals"]
    lines = [
        f"Disposition plan {document['plan_id']}  (sha256 {content_sha256(document)})",
        f"made {document['created_at']} by {document['created_by']} on station "
        f"{document['station']}, bucket {document['bucket']}",
        f"why: {document['why']}",
        f"{totals['items']} item(s), {totals['objects']} object version(s), "
        f"{_size(totals['bytes'])} to delete; manifests and ledger leaves are kept",
        "",
    ]
    for item in document["items"]:
        copies = sum(1 for o in item["delete"] if o["kind"] == "derivative")
        lines.append(
            f"  {item['evidence_id']}  {item['category']:<10} retained until "
            f"{item['retain_until']}  {item['file_name']}  "
            f"original {_size(item['size'])}"
            + (f" + {copies} playback copy(ies)" if copies else "")
        )
    if document["deferred"]:
        lines += ["", f"Deferred ({len(document['deferred'])}), not in this plan:"]
        lines += [f"  {d['evidence_id']}: {d['reason']}" for d in document["deferred"]]
    needed = document["approvers_required"]
    lines += [
        "",
        f"Needs {needed} different approvers"
        + (f" (so far: {', '.join(approvals)})" if approvals else "")
        + f": strongroom retention approve {document['plan_id']} --by NAME",
        f"then: strongroom retention apply {document['plan_id']}",
        "",
    ]
    return "\n".join(lines)


def _due_query(now: datetime) -> Select[Evidence]:
    """Items whose retention date has passed: the indexed narrowing of the
    candidates; :func:`archive.holds.disposal_refusal` decides each one."""
    return (
        select(Evidence)
        .where(
            Evidence.state.not_in(GONE_STATES),
            Evidence.retain_until.is_not(None),
            Evidence.retain_until <= now,
        )
        .order_by(Evidence.retain_until, Evidence.evidence_id)
    )


def _pending_items(session: Session) -> set[str]:
    ids: set[str] = set()
    for document in session.scalars(
        select(DispositionPlan.document).where(DispositionPlan.state == PlanState.PLANNED)
    ):
        ids.update(item["evidence_id"] for item in document["items"])
    return ids


def _plan_item(
    session: Session, archive: Archive, evidence: Evidence, now: datetime
) -> tuple[dict[str, Any] | None, str]:
    """The item's entry (objects to delete and to keep), or why the store says wait."""
    copies = list(
        session.scalars(
            select(Derivative)
            .where(Derivative.evidence_id == evidence.evidence_id)
            .order_by(Derivative.id)
        )
    )
    delete = [
        _obj(
            "original",
            evidence.original_key,
            evidence.original_version_id,
            evidence.sha256,
            evidence.size,
        )
    ]
    keep = [_obj("manifest", evidence.manifest_key, evidence.manifest_version_id)]
    for copy in copies:
        if copy.state != CopyState.STORED:
            continue
        if copy.key:
            delete.append(_obj("derivative", copy.key, copy.version_id, copy.sha256, copy.size))
        if copy.manifest_key:
            keep.append(_obj("derivative_manifest", copy.manifest_key, copy.manifest_version_id))
    for entry in delete:
        why = store_refusal(archive, entry, now)
        if why:
            return None, why
    item = {
        "evidence_id": evidence.evidence_id,
        "sha256": evidence.sha256,
        "size": evidence.size,
        "file_name": evidence.file_name,
        "category": evidence.category,
        "ingested_at": _iso(evidence.ingested_at),
        "retain_until": _iso(evidence.retain_until),
        "officer": evidence.officer,
        "device": evidence.device,
        "delete": delete,
        "keep": keep,
    }
    return item, ""


def _obj(
    kind: str, key: str, version_id: str | None, sha256: str | None = None, size: int | None = None
) -> dict[str, Any]:
    entry: dict[str, Any] = {"kind": kind, "key": key, "version_id": version_id}
    if kind in ("original", "derivative"):
        entry.update(sha256=sha256, size=size)
    return entry


#: how long one node may hold the retention planning before another takes it over
PLAN_LEASE = timedelta(minutes=30)


def scheduled_plan(archive: Archive) -> str | None:
    """The daily sweep (APScheduler): plan only, never delete; on one node at a
    time (the ``retention-plan`` lease). Returns the plan id."""
    try:
        _ran, outcome = leases.run_once(
            archive.db,
            "retention-plan",
            archive.station,
            PLAN_LEASE,
            lambda lease: plan_disposition(
                archive, actor=system_actor(archive.station), lease=lease
            ),
        )
    except Exception:
        ERRORS.labels(where="retention-sweep").inc()
        raise
    if outcome is None:
        return None
    log.info(
        "retention sweep planned %s: %d item(s); needs %d approvers",
        outcome.plan_id,
        outcome.document["totals"]["items"],
        outcome.document["approvers_required"],
    )
    return outcome.plan_id


def _size(n: int | None) -> str:
    value = float(n or 0)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value} B"
