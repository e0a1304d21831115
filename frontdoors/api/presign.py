"""Presigned playback URLs: SigV4, at the address clients reach, signed by a
read-only identity.

The URL is handed to a case system, so three things matter. It is signed with
AWS Signature Version 4 (botocore's default for a custom endpoint is the
legacy SigV2 query signature). It points at ``[api] public_store_url`` – the
store as clients reach it, typically HTTPS through a proxy – rather than the
internal ``store.endpoint_url``. And it is signed by ``[store]
read_access_key_id``/``read_secret_access_key`` (or ``read_credentials_file``)
when configured: an identity the store allows only to read, so a leaked URL's
credential can never write, delete or unlock. Without one the archive's own
identity signs, and a warning says so at start-up.

Signing is local computation: no request reaches the store here.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import boto3
from botocore.config import Config

from archive.store import load_credentials
from config.settings import ConfigError, Settings, read_private_file

log = logging.getLogger("strongroom.api")


def read_identity(settings: Settings) -> tuple[str, str] | None:
    """The read-only store identity, if one is configured (env/settings, then file)."""
    store = settings.store
    key_id = store.read_access_key_id.get_secret_value() if store.read_access_key_id else None
    secret = (
        store.read_secret_access_key.get_secret_value() if store.read_secret_access_key else None
    )
    if (key_id is None or secret is None) and store.read_credentials_file is not None:
        path = settings.resolve(store.read_credentials_file)
        try:
            data = json.loads(read_private_file(path))
        except OSError as exc:
            raise ConfigError(
                f"store.read_credentials_file {path}: cannot read it: {exc.strerror or exc}"
            ) from None
        except ValueError:
            raise ConfigError(f"store.read_credentials_file {path}: not a JSON object") from None
        if not isinstance(data, dict):
            raise ConfigError(f"store.read_credentials_file {path}: not a JSON object")
        key_id = key_id or data.get("access_key_id")
        secret = secret or data.get("secret_access_key")
    if key_id is None and secret is None:
        return None
    if not key_id or not secret:
        raise ConfigError(
            "the read-only store identity needs both read_access_key_id and "
            "read_secret_access_key (STRONGROOM_STORE__READ_ACCESS_KEY_ID, "
            "STRONGROOM_STORE__READ_SECRET_ACCESS_KEY, or store.read_credentials_file)"
        )
    return str(key_id), str(secret)


class Presigner:
    """Makes presigned GET URLs of exact object versions for playback."""

    def __init__(self, settings: Settings) -> None:
        store = settings.store
        self.bucket = store.bucket
        self.endpoint = settings.api.public_store_url or store.endpoint_url
        identity = read_identity(settings)
        self.read_only = identity is not None
        if identity is None:
            key_id, secret = load_credentials(store)
            log.warning(
                "presigned playback URLs are signed with the archive's own store identity; "
                "configure a read-only one ([store] read_credentials_file)"
            )
        else:
            key_id, secret = identity
        self.client: Any = boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint.rstrip("/") if self.endpoint else None,
            aws_access_key_id=key_id,
            aws_secret_access_key=secret,
            config=Config(
                region_name=store.region,
                signature_version="s3v4",
                s3={"addressing_style": "path"},
            ),
        )

    def url(self, key: str, version_id: str | None, expires_s: int) -> str:
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if version_id:
            params["VersionId"] = version_id
        return self.client.generate_presigned_url("get_object", Params=params, ExpiresIn=expires_s)
