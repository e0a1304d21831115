"""Signing key commands: ``keys rotate``."""

from __future__ import annotations

import typer

from archive.custody import cli_actor, record_event
from archive.keys import load_station_key, station_trust_entry
from archive.layout import public_key_key
from archive.rotation import rotate
from archive.store import StoreError
from frontdoors.cli.app import app
from frontdoors.cli.common import EXIT_FAILED, ConfigOpt, JsonOpt, console, emit_json, open_archive

keys_app = typer.Typer(help="The station's signing keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@keys_app.command("rotate")
def keys_rotate(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Make a new signing key, publish it under keys/ with a statement signed by
    the old key, and retire the old key (kept beside the key file).

    Add the printed ``[[signing.trusted]]`` entry to the configuration so what
    the old key signed keeps verifying, then restart the daemon and the API."""
    with open_archive(config) as archive:
        try:
            rotation = rotate(archive)
        except (OSError, StoreError) as exc:
            console.print(f"[red]rotation failed:[/] {exc}", highlight=False)
            raise typer.Exit(EXIT_FAILED) from None
        with archive.db.session() as session:
            record_event(
                session,
                "key_rotated",
                actor=cli_actor(),
                evidence_id=None,
                details={
                    "old_keyid": rotation.old.keyid,
                    "new_keyid": rotation.new.keyid,
                    "new_public_key": rotation.new.public_key.hex(),
                    "statement": rotation.statement_key,
                },
            )
    entry = rotation.trusted_entry()
    if as_json:
        emit_json(
            {
                "old_keyid": rotation.old.keyid,
                "new_keyid": rotation.new.keyid,
                "old_public_key": rotation.old.public_key.hex(),
                "new_public_key": rotation.new.public_key.hex(),
                "retired_at": rotation.at.isoformat(),
                "statement": rotation.statement_key,
                "public_key_object": rotation.public_key_key,
                "trusted_entry": entry,
            }
        )
        return
    console.print(
        f"new signing key {rotation.new.keyid} (published {rotation.public_key_key}, "
        f"hand-over signed by {rotation.old.keyid}: {rotation.statement_key}).\n"
        "Add this to the configuration so what the old key signed keeps verifying, "
        f"then restart the daemon and the API:\n\n{entry}",
        highlight=False,
        markup=False,
    )


@keys_app.command("show")
def keys_show(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """This station's signing key: its key id, public key, and the
    ``[[signing.trusted]]`` entry every other station of the archive adds so it
    verifies what this station signs (manifests, ledger checkpoints)."""
    with open_archive(config) as archive:
        key = load_station_key(archive.settings)
        entry = station_trust_entry(archive.station, key)
        trusted = sorted(k for k in key.public_keys() if k != key.keyid)
    if as_json:
        emit_json(
            {
                "station": archive.station,
                "keyid": key.keyid,
                "public_key": key.public_key.hex(),
                "published": public_key_key(key.keyid),
                "trusted_keyids": trusted,
                "trusted_entry": entry,
            }
        )
        return
    published = public_key_key(key.keyid)
    console.print(
        f"station {archive.station} signs with key {key.keyid} (published {published});"
        f" also trusted here: {', '.join(trusted) or 'none'}.\n"
        "Every other station and API server of this archive adds:\n\n" + entry,
        highlight=False,
        markup=False,
    )
