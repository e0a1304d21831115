"""The station's Ed25519 signing key: created once, mode 0600, never overwritten.

The key file holds the 32-byte seed hex-encoded on one line, which an operator
can back up on paper. The public half is published in the bucket as
``keys/<keyid>.pub`` so verifiers can find it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from nacl.signing import SigningKey

from archive.dsse import key_id
from config.settings import ConfigError, Settings, read_private_file


@dataclass(frozen=True)
class StationKey:
    """A signing key with its derived public identity."""

    signing_key: SigningKey
    #: the configured retired keys (``[[signing.trusted]]``): raw 32-byte public
    #: key, valid from, valid until
    trusted: tuple[tuple[bytes, datetime | None, datetime | None], ...] = field(default=())

    @property
    def public_key(self) -> bytes:
        return bytes(self.signing_key.verify_key)

    @property
    def keyid(self) -> str:
        return key_id(self.public_key)

    def public_keys(self) -> dict[str, bytes]:
        """The trust map (keyid → raw key) this station verifies with: the
        current key and the configured retired ones – never a key merely
        found in the bucket."""
        keys = {key_id(raw): raw for raw, _, _ in self.trusted}
        keys[self.keyid] = self.public_key
        return keys

    def window_problem(self, keyid: str, payload: Any) -> str | None:
        """Why a verified signature by ``keyid`` is out of its key's time, or
        None. The time is the payload's own (``sealed_at``, ``created_at``,
        ``applied_at`` or ``at``); a configured key signed only between its
        ``valid_from`` and ``valid_until``."""
        window = next(((f, u) for raw, f, u in self.trusted if key_id(raw) == keyid), None)
        if window is None or not isinstance(payload, dict):
            return None
        signed = _payload_time(payload)
        if signed is None:
            return None
        valid_from, valid_until = window
        if valid_from is not None and signed < valid_from:
            return f"signed {signed.isoformat()}, before key {keyid} was valid ({valid_from})"
        if valid_until is not None and signed > valid_until:
            return f"signed {signed.isoformat()}, after key {keyid} was retired ({valid_until})"
        return None


def _payload_time(payload: dict[str, Any]) -> datetime | None:
    for name in ("sealed_at", "created_at", "applied_at", "at"):
        value = payload.get(name)
        if isinstance(value, str):
            try:
                parsed = datetime.fromisoformat(value)
            except ValueError:
                return None
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def create_key(path: Path) -> tuple[StationKey, bool]:
    """Create the key file if absent. Returns the key and whether it was created.

    ``O_EXCL`` makes creation atomic: two ``init`` runs never both write a key,
    and an existing key is never replaced.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    seed = os.urandom(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return load_key(path), False
    with os.fdopen(fd, "w") as handle:
        handle.write(seed.hex() + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    return StationKey(SigningKey(seed)), True


def load_key(
    path: Path, trusted: tuple[tuple[bytes, datetime | None, datetime | None], ...] = ()
) -> StationKey:
    """Load the signing key, refusing a file that group or others can read.
    ``trusted``: the retired public keys verifiers also accept."""
    if not path.exists():
        raise ConfigError(f"signing key {path} does not exist; run `strongroom init` first")
    text = read_private_file(path).decode("ascii", "replace").strip()
    try:
        seed = bytes.fromhex(text)
    except ValueError:
        seed = b""
    if len(seed) != 32:
        raise ConfigError(f"signing key {path} is not a 64-hex-digit Ed25519 seed")
    return StationKey(SigningKey(seed), trusted)


def trusted_keys(settings: Settings) -> tuple[tuple[bytes, datetime | None, datetime | None], ...]:
    """The ``[[signing.trusted]]`` keys: raw public key and validity window (UTC)."""
    return tuple(
        (bytes.fromhex(e.public_key), _utc(e.valid_from), _utc(e.valid_until))
        for e in settings.signing.trusted
    )


def station_trust_entry(station: str, key: StationKey) -> str:
    """The ``[[signing.trusted]]`` TOML other nodes add to trust this station's
    key: no validity window (it signs now); ``keys rotate`` prints the entry
    with ``valid_until`` when it retires."""
    return (
        "[[signing.trusted]]\n"
        f'public_key = "{key.public_key.hex()}"\n'
        f'note = "station {station}, key {key.keyid}"\n'
    )


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def load_station_key(settings: Settings) -> StationKey:
    """The signing key with the configured trust set."""
    return load_key(settings.key_file, trusted_keys(settings))


def rotate_key(path: Path) -> tuple[StationKey, StationKey]:
    """Replace the key file's seed by a new one; the old seed is kept beside it
    as ``<file>.<keyid>.retired`` (0600, never overwritten). Returns (old, new).

    The new file is written under a temporary name and renamed over the old
    one, so a crash leaves either key whole, never half of one."""
    old = load_key(path)
    retired = path.with_name(f"{path.name}.{old.keyid}.retired")
    fd = os.open(retired, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(bytes(old.signing_key).hex() + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    seed = os.urandom(32)
    temporary = path.with_name(f".{path.name}.new")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(seed.hex() + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    return old, StationKey(SigningKey(seed))
