"""Rotating the station's signing key (``strongroom keys rotate``).

The new key is published as ``keys/<new>.pub`` with a statement signed by the
old key (``keys/<new>.rotation.dsse.json``: old keyid, new keyid and public
key, the time), so whoever trusted the old key can follow the hand-over. The
old key is retired, not forgotten: the operator adds it to
``[[signing.trusted]]`` with ``valid_until`` (the command prints the entry),
and everything sealed before the rotation keeps verifying with it. Verifiers
trust only the configured keys, never a key merely found in the bucket.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from archive.context import Archive
from archive.dsse import envelope_bytes, sign_envelope
from archive.keys import StationKey, rotate_key
from archive.layout import rotation_key
from archive.seal import publish_public_key
from archive.store import Retention

ROTATION_PAYLOAD_TYPE = "application/vnd.strongroom.key-rotation+json"


@dataclass(frozen=True)
class Rotation:
    old: StationKey
    new: StationKey
    at: datetime
    statement_key: str
    public_key_key: str

    def trusted_entry(self) -> str:
        """The ``[[signing.trusted]]`` TOML for the retired key."""
        return (
            "[[signing.trusted]]\n"
            f'public_key = "{self.old.public_key.hex()}"\n'
            f'valid_until = "{self.at.isoformat()}"\n'
            f'note = "retired by keys rotate; successor {self.new.keyid}"\n'
        )


def rotate(archive: Archive) -> Rotation:
    """Make a new key, publish it with the old key's statement, retire the old."""
    settings = archive.settings
    default = settings.category(settings.retention.default_category)
    retention = Retention.for_days(default.days or 183, default.lock_mode)
    old, new = rotate_key(settings.key_file)
    at = datetime.now(UTC)
    published = publish_public_key(archive.store, new, retention)
    statement = sign_envelope(
        {
            "type": "key-rotation",
            "old_keyid": old.keyid,
            "new_keyid": new.keyid,
            "new_public_key": new.public_key.hex(),
            "at": at.isoformat(),
            "station": settings.station.name,
        },
        ROTATION_PAYLOAD_TYPE,
        old.signing_key,
    )
    statement_key = rotation_key(new.keyid)
    archive.store.put_bytes(
        statement_key, envelope_bytes(statement), retention, content_type="application/json"
    )
    return Rotation(old, new, at, statement_key, published)
