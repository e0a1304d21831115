"""Ledger and key routes: the latest signed checkpoint, an item's inclusion
proofs, and the station's public keys."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from archive.dsse import key_fingerprint, key_id
from archive.ledger import checkpoint_document, ledger_key_name, proof_document
from archive.note import encode_vkey
from frontdoors.api import auth
from frontdoors.api.auth import Principal
from frontdoors.api.deps import audit, evidence_or_404, get_archive, not_found
from frontdoors.api.errors import ApiError
from frontdoors.api.schemas import KeysOut

router = APIRouter(tags=["ledger"])


@router.get(
    "/v1/ledger/checkpoint",
    response_model=dict[str, Any],
    summary="The latest signed checkpoint (C2SP tlog-checkpoint)",
)
def get_checkpoint(
    request: Request, principal: Annotated[Principal, Depends(auth.require(auth.AUDIT))]
) -> dict[str, Any]:
    """origin, size, root_hash, the signed note text, key name and vkey."""
    try:
        return checkpoint_document(get_archive(request))
    except LookupError:
        raise ApiError(404, "no_checkpoint", "the ledger has no checkpoint yet") from None


@router.get(
    "/v1/ledger/proof/{evidence_id}",
    response_model=dict[str, Any],
    summary="An item's ledger leaves with inclusion proofs (recorded as downloaded)",
)
def get_proof(
    evidence_id: str,
    request: Request,
    principal: Annotated[Principal, Depends(auth.require(auth.AUDIT))],
) -> dict[str, Any]:
    """Every leaf of the item that the latest checkpoint covers, each with its
    RFC 9162 inclusion proof against that checkpoint."""
    archive = get_archive(request)
    with archive.db.session() as session:
        evidence_or_404(session, evidence_id, principal)
    try:
        document = proof_document(archive, evidence_id)
    except KeyError:
        raise not_found(evidence_id) from None
    except LookupError:
        raise ApiError(404, "no_checkpoint", "the ledger has no checkpoint yet") from None
    checkpoint = document.get("checkpoint") or {}
    with archive.db.session() as session:
        audit(
            session,
            "downloaded",
            principal,
            request,
            evidence_id,
            what="inclusion_proof",
            checkpoint_size=checkpoint.get("size"),
            leaves=len(document.get("leaves") or []),
        )
    return document


@router.get("/v1/keys", response_model=KeysOut, summary="The station's public keys")
def get_keys(
    request: Request, principal: Annotated[Principal, Depends(auth.require(auth.READ))]
) -> dict[str, Any]:
    """Manifests (DSSE) name the key by ``keyid``; checkpoints (signed notes)
    by ``vkey``. Both are the same Ed25519 key. The current key comes first,
    then the retired keys still trusted (``[[signing.trusted]]``) with the
    time each was valid."""
    key = get_archive(request).key
    name = ledger_key_name(get_archive(request).settings)
    keys = [_key_document(name, key.public_key, True, None, None)]
    for raw, valid_from, valid_until in key.trusted:
        if raw != key.public_key:
            keys.append(_key_document(name, raw, False, valid_from, valid_until))
    return {"keys": keys}


def _key_document(name: str, raw: bytes, current: bool, valid_from, valid_until) -> dict[str, Any]:
    return {
        "keyid": key_id(raw),
        "fingerprint": key_fingerprint(raw),
        "algorithm": "ed25519",
        "public_key_hex": raw.hex(),
        "key_name": name,
        "vkey": encode_vkey(name, raw),
        "current": current,
        "valid_from": valid_from,
        "valid_until": valid_until,
    }
