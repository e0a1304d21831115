"""Incidents and their matches, rebuilt from the custody ledger.

Dispatch incidents come from outside (a CAD export, ``POST /v1/incidents``), so
the bucket holds them only as the ledger recorded them: every
``incidents_imported`` event carries the records it created or changed. The
matches are the replay of what the rule and people did, in ledger order:

* ``link_proposed`` – a pending proposal (its details say which incident);
* ``link_rejected`` – that proposal, rejected by a person, for good;
* ``linked`` by ``rule:incident-window`` – a link the rule made (the event's
  ``match`` says which incident; older events say it only in the reason);
* ``linked`` by a person while a proposal for that item and case was pending
  – the proposal, confirmed.

Every match the live catalog held is written back, so the matcher, which runs
again over the rebuilt catalog, never re-proposes what a person rejected nor
re-links what a person unlinked: a match row is never made twice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from archive.incident_models import Incident, IncidentMatch, IncidentOfficer
from archive.incidents import RULE_ACTOR
from archive.manifests import parse_time

_Details = dict[str, Any]
#: a rule link's reason before the ``linked`` event carried its match
_RULE_REASON = re.compile(r"^incident (\S+): ")


@dataclass
class IncidentReplay:
    """Fed every custody event in ledger order; then writes what it found."""

    incidents: dict[str, dict[str, Any]] = field(default_factory=dict)
    matches: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    #: (case id, item) → the incidents whose proposal for it was made: a person's
    #: ``linked`` then confirms them without a scan of every match
    proposed: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    #: (check, subject, message) for the rebuild's report
    problems: list[tuple[str, str, str]] = field(default_factory=list)

    def take(
        self, kind: str, evidence_id: str, actor: str, at: datetime | None, details: _Details
    ) -> None:
        if kind == "incidents_imported":
            for record in details.get("incidents") or []:
                self._incident(record, actor, at)
        elif kind == "link_proposed" and details.get("incident_id"):
            case_id = str(details.get("case_id") or "")
            self.proposed.setdefault((case_id, evidence_id), []).append(str(details["incident_id"]))
            self.matches[(str(details["incident_id"]), evidence_id)] = {
                "case_id": str(details.get("case_id") or ""),
                "state": "pending",
                "matched_at": at,
                "details": {k: v for k, v in details.items() if k != "match_id"},
            }
        elif kind == "link_rejected" and details.get("incident_id"):
            match = self.matches.get((str(details["incident_id"]), evidence_id))
            if match is not None:
                match.update(state="rejected", decided_by=actor, decided_at=at)
                match["decision_reason"] = details.get("reason")
        elif kind == "linked":
            self._linked(evidence_id, actor, at, details)

    def _incident(self, record: Any, actor: str, at: datetime | None) -> None:
        if not isinstance(record, dict) or not record.get("incident_id"):
            self.problems.append(
                ("incident.format", "incidents_imported", "a record is unreadable")
            )
            return
        start, end = parse_time(record.get("start")), parse_time(record.get("end"))
        if start is None or end is None:
            self.problems.append(
                ("incident.format", f"incident {record['incident_id']}", "has no readable times")
            )
            return
        known = self.incidents.get(str(record["incident_id"]))
        self.incidents[str(record["incident_id"])] = {
            "incident_id": str(record["incident_id"]),
            "case_id": record.get("case_id"),
            "unit": str(record.get("unit") or ""),
            "start": start,
            "end": end,
            "officers": sorted({str(o) for o in record.get("officer_ids") or []}),
            "created_by": known["created_by"] if known else actor,
            "created_at": known["created_at"] if known else at,
            "updated_at": at,
        }

    def _linked(self, evidence_id: str, actor: str, at: datetime | None, details: _Details) -> None:
        case_id = str(details.get("case_id") or "")
        if actor == RULE_ACTOR:
            given = details.get("match")
            match: _Details = given if isinstance(given, dict) else {}
            found = _RULE_REASON.match(str(details.get("reason") or ""))
            incident_id = match.get("incident_id") or (found.group(1) if found else None)
            if incident_id:
                self.matches[(str(incident_id), evidence_id)] = {
                    "case_id": case_id,
                    "state": "linked",
                    "matched_at": at,
                    "details": match,
                }
            return
        for incident_id in self.proposed.get((case_id, evidence_id), ()):
            match = self.matches[(incident_id, evidence_id)]
            if match["state"] == "pending":  # a person confirmed the proposal
                match.update(state="confirmed", decided_by=actor, decided_at=at)
                match["decision_reason"] = details.get("reason")

    def write(self, session: Session, items: set[str], epoch: datetime) -> int:
        """Insert the incidents, their officers and the matches of rebuilt items;
        returns how many incidents. Matching is left owed: the matcher finds what
        no event recorded, and skips every pair written here."""
        for incident in self.incidents.values():
            row = {k: v for k, v in incident.items() if k != "officers"}
            row["created_at"] = row["created_at"] or epoch
            row["updated_at"] = row["updated_at"] or epoch
            session.add(Incident(**row, matched_at=None))
            session.add_all(
                IncidentOfficer(incident_id=incident["incident_id"], officer=o)
                for o in incident["officers"]
            )
        session.flush()
        for (incident_id, evidence_id), match in sorted(self.matches.items()):
            if incident_id not in self.incidents or evidence_id not in items:
                self.problems.append(
                    ("match.orphan", f"{incident_id}/{evidence_id}", "matches what was not rebuilt")
                )
                continue
            session.add(
                IncidentMatch(
                    incident_id=incident_id,
                    evidence_id=evidence_id,
                    **{**match, "matched_at": match["matched_at"] or epoch},
                )
            )
        return len(self.incidents)
