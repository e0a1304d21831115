"""The disclosure receipt: a PDF listing what was shared with whom until when,
and a DSSE envelope, signed with the station key like the manifests, whose
payload names the PDF's SHA-256 – so a receipt on paper can be checked."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from archive.context import Archive
from archive.dsse import envelope_bytes, sign_envelope
from archive.shares import Created

RECEIPT_PAYLOAD_TYPE = "application/vnd.strongroom.share-receipt+json"


@dataclass
class Receipt:
    pdf: bytes
    envelope: bytes
    sha256: str


def make_receipt(archive: Archive, created: Created) -> Receipt:
    from verify.report_pdf import render_receipt

    zone = archive.settings.station.tzinfo
    share = created.share

    def local(value: datetime) -> str:
        return value.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S %z")

    document = {
        "share_id": share.share_id,
        "case_id": share.case_id,
        "recipient": share.recipient,
        "allow": share.allow,
        "created_at": local(share.created_at),
        "created_by": share.created_by,
        "expires_at": local(share.expires_at),
        "station": archive.station,
        "items": created.items,
    }
    pdf = render_receipt(document)
    digest = hashlib.sha256(pdf).hexdigest()
    payload = {
        "schema": "strongroom/share-receipt/v1",
        "receipt_sha256": digest,
        **{k: v for k, v in document.items() if k != "items"},
        "items": [{"evidence_id": i["evidence_id"], "sha256": i["sha256"]} for i in created.items],
    }
    envelope = envelope_bytes(sign_envelope(payload, RECEIPT_PAYLOAD_TYPE, archive.key.signing_key))
    return Receipt(pdf, envelope, digest)
