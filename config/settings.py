"""The settings tree: one TOML file, overridden key by key by ``STRONGROOM_*``
environment variables (``STRONGROOM_STORE__BUCKET=…``), then defaults.

Relative paths in the file are taken relative to the file's own folder, so a
config can be moved together with its data folder. Secrets (the store's keys,
API tokens) come from the environment or from files of mode 0600; a secret
found in a config file that others can read is refused, because the file is
then no longer a secret.
"""

from __future__ import annotations

import logging
import os
import re
import stat
import tomllib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from config.errors import StrongroomError
from config.intake import HeartbeatSettings, IncidentSettings
from config.names import (
    BUILTIN_PROFILES,
    DEFAULT_NAME_PATTERN,
    IMPORTANT_FLAG,
    NAME_PATTERN_GROUPS,
    NameProfile,
    check_name_pattern,
    check_time_format,
)
from config.recorder import DEFAULT_READERS, check_marks, check_readers, sidecar_patterns
from config.transcode import TranscodeSettings

log = logging.getLogger("strongroom.config")

__all__ = ["DEFAULT_NAME_PATTERN", "NAME_PATTERN_GROUPS"]  # re-exported: older imports

LockMode = Literal["COMPLIANCE", "GOVERNANCE"]

#: a unit code: letters, digits, ``._-`` (GA/T 947 uses 12 digits; agencies pick their own)
UNIT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StationSettings(_Section):
    name: str = Field("dock-01", min_length=1, max_length=64)
    data_dir: Path = Path("var")
    timezone: str = Field("Asia/Shanghai", description="zone of recorder clocks (file names)")
    min_free_mb: float = Field(
        256.0,
        ge=0,
        description="free space the data folder (catalog, keys) must keep; below it the daemon "
        "stops claiming new files until space returns",
    )

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        return _check_zone(value)

    @property
    def tzinfo(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def keep_days(after_archive: str) -> int | None:
    """``keep:<days>`` → the days; anything else → None. A job carries the
    dock's ``after_archive`` as it was when the file was registered, so the
    release and the sweep of kept copies read that string, not today's dock."""
    kind, _, arg = after_archive.partition(":")
    return int(arg) if kind == "keep" and arg.isdigit() else None


def move_to(after_archive: str) -> Path | None:
    """``move:<dir>`` → the folder (relative to the dock when not absolute); else None."""
    kind, _, arg = after_archive.partition(":")
    return Path(arg) if kind == "move" and arg else None


class DockSettings(_Section):
    path: Path
    name: str | None = Field(None, description="defaults to the folder's own name")
    settle_seconds: float = Field(5.0, ge=0.0)
    after_archive: str = "delete"
    name_profile: str | None = Field(
        None, description="a recorder naming profile (`strongroom names profiles`); default gat947"
    )
    name_pattern: str | None = Field(
        None, description="a regex of your own instead of a profile (named groups: config/names.py)"
    )
    timezone: str | None = Field(
        None, description="zone of this dock's recorder clocks; default the profile's, then station"
    )
    time_format: str | None = Field(
        None, description="strptime format for the start/end groups, when digits alone will not do"
    )
    unit: str | None = Field(
        None,
        max_length=64,
        pattern=UNIT_PATTERN,
        description="the unit (agency) whose recorders dock here; overrides the file name's",
    )
    poll: bool = Field(False, description="poll instead of inotify (network mounts)")
    poll_interval: float = Field(2.0, gt=0.0)
    min_free_mb: float = Field(
        64.0,
        ge=0,
        description="free space the dock's file system (spool, kept copies) must keep; "
        "below it this dock's files wait where they are",
    )
    ignore: list[str] = Field(
        default_factory=lambda: ["*.part", "*.tmp", "*.crdownload", ".*"],
        description="glob patterns of names never taken (dotfiles include our own folder)",
    )
    recorder_hashes: list[str] = Field(
        default_factory=lambda: list(DEFAULT_READERS),
        description="the recorder's own hashes to compare at claim (config/recorder.py): "
        "sidecar-md5, sidecar-sha256 (NAME.EXT.md5 or NAME.md5 beside the file), "
        "list-md5, list-sha256 (MD5SUMS / SHA256SUMS per folder); [] for none",
    )
    recorder_marks: dict[str, str] = Field(
        default_factory=dict,
        description='sidecar marks: suffix → flag, e.g. {imp = "IMP"} makes NAME.imp beside '
        "a file flag it IMP (then [retention] flag_categories / important_category decide)",
    )

    @field_validator("after_archive")
    @classmethod
    def _after_archive(cls, value: str) -> str:
        if value == "delete" or keep_days(value) is not None or move_to(value) is not None:
            return value
        raise ValueError('must be "delete", "keep:<days>" or "move:<dir>"')

    @field_validator("recorder_hashes")
    @classmethod
    def _recorder_hashes(cls, value: list[str]) -> list[str]:
        return check_readers(value)

    @field_validator("recorder_marks")
    @classmethod
    def _recorder_marks(cls, value: dict[str, str]) -> dict[str, str]:
        return check_marks(value)

    @property
    def skip_patterns(self) -> list[str]:
        """The ignore globs plus the recorder's sidecars: names never taken as items."""
        return [*self.ignore, *sidecar_patterns(self.recorder_hashes, self.recorder_marks)]

    @field_validator("name_pattern")
    @classmethod
    def _name_pattern(cls, value: str | None) -> str | None:
        return None if value is None else check_name_pattern(value)

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str | None) -> str | None:
        return None if value is None else _check_zone(value)

    @field_validator("time_format")
    @classmethod
    def _time_format(cls, value: str | None) -> str | None:
        return check_time_format(value)

    def model_post_init(self, _context: Any) -> None:
        if self.name_profile is not None and self.name_pattern is not None:
            raise ValueError("set name_profile or name_pattern, not both")

    @property
    def label(self) -> str:
        return self.name or self.path.name or str(self.path)


class NameProfileSettings(_Section):
    """An operator's own naming profile, ``[names.profiles.<name>]``."""

    pattern: str
    description: str = ""
    timezone: str | None = None
    time_format: str | None = None
    examples: list[str] = Field(default_factory=list)

    @field_validator("pattern")
    @classmethod
    def _pattern(cls, value: str) -> str:
        return check_name_pattern(value)

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str | None) -> str | None:
        return None if value is None else _check_zone(value)

    @field_validator("time_format")
    @classmethod
    def _time_format(cls, value: str | None) -> str | None:
        return check_time_format(value)


class NamesSettings(_Section):
    """How recorder file names are read, and when a time read from one is refused."""

    profiles: dict[str, NameProfileSettings] = Field(
        default_factory=dict, description="profiles of your own, beside the built-in ones"
    )
    future_skew_minutes: float = Field(
        60.0,
        ge=0,
        description="a name time later than now by more than this is bad_timestamp "
        "(a recorder clock or zone set wrong)",
    )
    earliest_year: int = Field(
        2000, ge=1970, description="a name time before this year is bad_timestamp"
    )

    def model_post_init(self, _context: Any) -> None:
        clash = sorted(set(self.profiles) & set(BUILTIN_PROFILES))
        if clash:
            raise ValueError(f"profiles {clash} are built in; give yours another name")


@dataclass(frozen=True)
class NameRule:
    """What a dock reads its file names with: the resolved profile or pattern."""

    profile: str  # a profile name, or "custom" for a dock's own name_pattern
    pattern: str
    timezone: str
    time_format: str | None
    future_skew_minutes: float
    earliest_year: int

    @property
    def tzinfo(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class StoreSettings(_Section):
    endpoint_url: str | None = "http://127.0.0.1:8333"
    endpoints: list[str] = Field(
        default_factory=list,
        description="several S3 endpoints of one store (e.g. the gateways of a SeaweedFS "
        "cluster), tried in order: a call that cannot reach one goes to the next; "
        "default [endpoint_url]",
    )
    bucket: str = Field("evidence", min_length=3, max_length=63)
    region: str = "us-east-1"
    access_key_id: SecretStr | None = None
    secret_access_key: SecretStr | None = None
    credentials_file: Path | None = Field(
        None, description='0600 JSON file {"access_key_id": …, "secret_access_key": …}'
    )
    allow_unlocked: bool = Field(
        False, description="development only: accept a store without Object Lock"
    )
    read_access_key_id: SecretStr | None = Field(
        None, description="a read-only store identity for presigned playback URLs"
    )
    read_secret_access_key: SecretStr | None = None
    read_credentials_file: Path | None = Field(
        None,
        description='0600 JSON {"access_key_id": …, "secret_access_key": …} of a read-only '
        "identity; presigned playback URLs are signed with it instead of the archive's own",
    )
    multipart_threshold_mb: int = Field(64, ge=5)
    part_size_mb: int = Field(16, ge=5, le=5120)
    max_concurrency: int = Field(8, ge=1, le=64)
    connect_timeout: float = Field(5.0, gt=0)
    read_timeout: float = Field(
        60.0, gt=0, description="socket timeout of calls that move data: uploads, parts, GETs"
    )
    request_timeout: float = Field(
        10.0, gt=0, description="socket timeout of small calls: HEAD, locks, holds, listings"
    )
    max_attempts: int = Field(4, ge=1, le=20)
    probe_seconds: float = Field(
        5.0,
        gt=0,
        description="the daemon asks the store whether it answers this often (every second "
        "while it does not); when it answers again, waiting jobs are retried at once",
    )

    @field_validator("endpoints")
    @classmethod
    def _endpoints_are_urls(cls, value: list[str]) -> list[str]:
        for url in value:
            if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc:
                raise ValueError(f"not an http(s) URL: {url!r}")
        if len(set(value)) != len(value):
            raise ValueError("an endpoint is listed twice")
        return value

    @model_validator(mode="after")
    def _endpoint_url_from_endpoints(self) -> StoreSettings:
        # endpoint_url is what other parts name (presigned URLs, tools): with only a
        # list given, it is the list's first entry, not the one-machine default
        if self.endpoints and "endpoint_url" not in self.model_fields_set:
            self.endpoint_url = self.endpoints[0]
        return self

    @property
    def endpoint_list(self) -> list[str | None]:
        """The endpoints in the order they are tried (one, ``None`` for AWS itself)."""
        return list(self.endpoints) if self.endpoints else [self.endpoint_url]


class CatalogSettings(_Section):
    url: str = "sqlite:///var/catalog.db"
    backup_hours: float = Field(
        24.0, ge=0, description="SQLite catalog backup to the bucket every N hours; 0 = off"
    )
    backup_retention_days: float = Field(
        30.0, gt=0, description="Object Lock on each catalog backup (fractions allowed)"
    )
    backup_lock_mode: LockMode = Field(
        "GOVERNANCE",
        description="backups are not evidence: GOVERNANCE lets an admin remove them early",
    )


class TrustedKey(_Section):
    """A signing key verifiers trust besides the current one: a retired key
    after ``strongroom keys rotate`` (with the time it was in use), or another
    station's key when stations sign with their own keys (``keys show``)."""

    public_key: str = Field(pattern=r"^[0-9a-f]{64}$", description="Ed25519 public key, hex")
    valid_from: datetime | None = Field(None, description="signed nothing before this")
    valid_until: datetime | None = Field(None, description="retired at this time")
    note: str | None = Field(None, max_length=200)


class SigningSettings(_Section):
    key_file: Path = Path("var/keys/signing.key")
    trusted: list[TrustedKey] = Field(
        default_factory=list,
        description="[[signing.trusted]]: retired keys still trusted for what they signed, "
        "and the other stations' keys; "
        "a key in the bucket but not here (nor the key_file's) is not trusted",
    )


class RetentionCategory(_Section):
    label: str | None = None
    days: float | None = Field(None, gt=0, description="fractions allowed (tests use seconds)")
    permanent: bool = False
    lock_mode: LockMode = "COMPLIANCE"

    def model_post_init(self, _context: Any) -> None:
        if self.permanent == (self.days is not None):
            raise ValueError('set exactly one of "days" or "permanent = true"')


def _default_categories() -> dict[str, RetentionCategory]:
    return {
        "routine": RetentionCategory(label="Routine footage (≥ 6 months)", days=183),
        "important": RetentionCategory(label="Marked important", days=3 * 365 + 1),
        "evidence": RetentionCategory(label="Case evidence (permanent)", permanent=True),
    }


def _kept_for(category: RetentionCategory) -> float:
    """How long a category keeps an item, for choosing the longest (permanent: for ever)."""
    return float("inf") if category.permanent else float(category.days or 0)


class RetentionSettings(_Section):
    default_category: str = "routine"
    important_category: str = Field(
        "important",
        description="where a file flagged important (IMP) goes; when not set and there is "
        "no 'important' category, the default category (with a warning at start)",
    )
    case_category: str = "evidence"
    categories: dict[str, RetentionCategory] = Field(default_factory=_default_categories)
    flag_categories: dict[str, str] = Field(
        default_factory=dict,
        description='recorder marks → categories, e.g. {"重要" = "important", KEY = '
        '"evidence"}; a file with several marks gets the longest-kept category',
    )
    archive_deadline_hours: float = Field(24.0, gt=0)
    deadline_warning_hours: float = Field(
        2.0, ge=0, description="status warns about pipeline items this close to the deadline"
    )
    approvers_required: int = Field(
        2, ge=1, le=10, description="distinct approvers a disposition plan needs before apply"
    )
    sweep_hour: int = Field(
        3, ge=0, le=23, description="hour of day (station time zone) of the daily retention sweep"
    )

    #: what the configuration left to a default the reader should know about
    _notices: list[str] = PrivateAttr(default_factory=list)

    def model_post_init(self, _context: Any) -> None:
        if (
            "important_category" not in self.model_fields_set
            and self.important_category not in self.categories
            and self.default_category in self.categories
        ):
            # categories such as the contract's routine + evidence: the user never
            # wrote important_category, so its default must not refuse the file
            self._notices.append(
                f"retention: no {self.important_category!r} category and no "
                f"important_category set: files flagged {IMPORTANT_FLAG} go to the "
                f"default category {self.default_category!r}"
            )
            self.important_category = self.default_category
        for key in ("default_category", "important_category", "case_category"):
            name = getattr(self, key)
            if name not in self.categories:
                raise ValueError(
                    f"{key} {name!r} is not one of the categories {sorted(self.categories)}"
                )
        for flag, name in self.flag_categories.items():
            if name not in self.categories:
                raise ValueError(
                    f"flag_categories: {flag!r} → {name!r} is not one of the categories "
                    f"{sorted(self.categories)}"
                )

    def category_for(self, flags: list[str]) -> str:
        """The category of a new item from the recorder's marks: flagged important
        (IMP) → the important category, a mark in ``flag_categories`` → its
        category; several → the one kept longest (retention only grows); none →
        the default."""
        chosen = [self.flag_categories[f] for f in flags if f in self.flag_categories]
        if IMPORTANT_FLAG in flags:
            chosen.append(self.important_category)
        if not chosen:
            return self.default_category
        return max(chosen, key=lambda name: _kept_for(self.categories[name]))

    @property
    def notices(self) -> list[str]:
        return list(self._notices)


class PipelineSettings(_Section):
    workers: int = Field(4, ge=1, le=64, description="files moved through the pipeline at once")
    rescan_seconds: float = Field(30.0, gt=0, description="full dock rescan, events are only hints")
    retry_initial_seconds: float = Field(2.0, gt=0)
    retry_max_seconds: float = Field(300.0, gt=0)
    probe_timeout_seconds: float = Field(30.0, gt=0)


ApiRole = Literal["case-system", "auditor", "admin"]


class UnitSettings(_Section):
    """One node of the unit tree, ``[units.<code>]`` (county → agency → brigade).

    A token scoped to a unit sees that unit's items and every descendant's."""

    name: str | None = Field(None, max_length=200, description="display name (公安局, 城管局 …)")
    parent: str | None = Field(None, max_length=64, pattern=UNIT_PATTERN)


class ApiToken(_Section):
    """One bearer token, kept only as the SHA-256 of its text (never the token).

    ``units`` limits what the token sees to those units and their descendants.
    A token without units sees every unit – allowed for ``auditor`` and ``admin``,
    and for a ``case-system`` token only when ``all_units = true`` says so
    (a forgotten ``--unit`` must not hand one agency every agency's footage)."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]*$")
    role: ApiRole
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="hex SHA-256 of the token")
    units: list[Annotated[str, Field(max_length=64, pattern=UNIT_PATTERN)]] = Field(
        default_factory=list, description="unit codes this token may see (with descendants)"
    )
    all_units: bool = Field(False, description="explicitly every unit (case-system tokens)")

    def model_post_init(self, _context: Any) -> None:
        if self.units and self.all_units:
            raise ValueError("set units or all_units = true, not both")
        if not self.units and not self.all_units and self.role == "case-system":
            raise ValueError(
                "a case-system token needs units (--unit) or an explicit all_units = true"
            )


class ApiSettings(_Section):
    listen: str | None = "127.0.0.1:8080"
    tokens_file: Path | None = Field(
        None, description="0600 TOML/JSON list of {name, role, sha256} bearer tokens"
    )
    tokens: list[ApiToken] = Field(
        default_factory=list,
        description="STRONGROOM_API__TOKENS: JSON list of {name, role, sha256}",
    )
    playback_expiry_seconds: int = Field(
        300, ge=1, le=7 * 24 * 3600, description="lifetime of presigned playback URLs"
    )
    metrics_unauthenticated_on_loopback: bool = Field(
        False,
        description="let 127.0.0.1/::1 scrape /metrics without a token "
        "(off: behind a local reverse proxy every client looks like loopback)",
    )
    max_body_bytes: int = Field(
        1024 * 1024,
        ge=1024,
        le=1024**3,
        description="largest request body accepted (413 beyond), checked before routing "
        "and authentication",
    )
    tls_cert: Path | None = Field(None, description="PEM certificate (chain) to serve HTTPS")
    tls_key: Path | None = Field(None, description="PEM private key of tls_cert, mode 0600")
    allow_plain_http: bool = Field(
        False, description="serve plain HTTP on a non-loopback address (behind a TLS proxy)"
    )
    public_store_url: str | None = Field(
        None,
        pattern=r"^https?://[^/?#\s]+/?$",
        description="the store's address as clients reach it; presigned playback URLs "
        "point there (default: store.endpoint_url)",
    )

    public_lookups_per_minute: int = Field(
        30,
        ge=1,
        le=100_000,
        description="verify-your-copy: hash lookups one client address may make per minute "
        "(429 beyond)",
    )
    public_show_details: bool = Field(
        False,
        description="verify-your-copy: also show the file name, officer, unit, the signed "
        "manifest's payload and ledger leaf texts (off: only hashes, times and proofs)",
    )
    ui_language: Literal["zh", "en"] = Field(
        "zh", description="default language of the web pages (?lang=en|zh switches)"
    )

    def model_post_init(self, _context: Any) -> None:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("set both tls_cert and tls_key, or neither")


class LedgerSettings(_Section):
    """The custody ledger's checkpoints (C2SP signed notes in the bucket)."""

    checkpoint_minutes: float = Field(5.0, gt=0, description="scheduled checkpoint interval")
    origin: str | None = Field(
        None, description="checkpoint origin line; default strongroom.local/<bucket>"
    )
    key_name: str | None = Field(
        None, description="signed-note key name; default strongroom-<station>"
    )
    category: str | None = Field(
        None,
        description="retention category of ledger objects; default the case category, "
        "because the ledger must outlive the longest-kept evidence it describes",
    )


class FixitySettings(_Section):
    """Fixity sweeps: re-read stored objects and check them against their seals."""

    interval_minutes: float = Field(60.0, gt=0, description="how often a sweep runs")
    bytes_per_run: int = Field(50 * 1024**3, ge=1, description="read budget of one sweep")
    cycle_days: float = Field(
        30.0, gt=0, description="every item is verified at least once per cycle"
    )


class PlaybackSettings(_Section):
    """How the playback-copy workers share the queue (what to make is ``[transcode]``)."""

    lease_seconds: float = Field(
        120.0,
        gt=0,
        description="a running copy whose worker stopped renewing its lease this long ago "
        "(a crashed process) is taken over by another worker",
    )
    poll_seconds: float = Field(2.0, gt=0, description="how often an idle worker looks for work")
    retry_initial_seconds: float = Field(30.0, gt=0, description="first retry delay, doubling")
    retry_max_seconds: float = Field(1800.0, gt=0)


class UploadSettings(_Section):
    """Resumable uploads through the API (tus 1.0.0; ``/v1/uploads``)."""

    enabled: bool = Field(True, description="accept uploads from outside the docks")
    folder: Path | None = Field(
        None,
        description="where partial uploads and their spool live (default <data_dir>/uploads); "
        "one file system, so the claim is a rename",
    )
    max_bytes: int = Field(
        16 * 1024**3, ge=1, description="largest upload (Upload-Length) accepted, in bytes"
    )
    max_active_per_token: int = Field(
        4, ge=1, le=1000, description="unfinished uploads one token may hold at once"
    )
    expire_hours: float = Field(
        24.0, gt=0, description="an upload untouched this long is discarded (partial removed)"
    )
    sync_every_mb: int = Field(
        64,
        ge=1,
        le=4096,
        description="during a long PATCH, fsync and record the offset after this many MiB",
    )


class Settings(BaseSettings):
    """The whole configuration. Build with :func:`load_settings`."""

    model_config = SettingsConfigDict(
        env_prefix="STRONGROOM_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    station: StationSettings = Field(default_factory=StationSettings)
    docks: list[DockSettings] = Field(default_factory=list)
    store: StoreSettings = Field(default_factory=StoreSettings)
    catalog: CatalogSettings = Field(default_factory=CatalogSettings)
    signing: SigningSettings = Field(default_factory=SigningSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    pipeline: PipelineSettings = Field(default_factory=PipelineSettings)
    transcode: TranscodeSettings = Field(default_factory=TranscodeSettings)
    playback: PlaybackSettings = Field(default_factory=PlaybackSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    uploads: UploadSettings = Field(default_factory=UploadSettings)
    ledger: LedgerSettings = Field(default_factory=LedgerSettings)
    fixity: FixitySettings = Field(default_factory=FixitySettings)
    names: NamesSettings = Field(default_factory=NamesSettings)
    incidents: IncidentSettings = Field(default_factory=IncidentSettings)
    heartbeat: HeartbeatSettings = Field(default_factory=HeartbeatSettings)
    units: dict[str, UnitSettings] = Field(
        default_factory=dict, description="the unit tree, [units.<code>] name, parent"
    )

    #: the file these settings came from, if any (not a config key)
    source_file: Path | None = Field(None, exclude=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = _CURRENT_FILE.get("path")
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)

    # -- derived paths ------------------------------------------------------

    @property
    def base_dir(self) -> Path:
        return self.source_file.parent if self.source_file else Path.cwd()

    def resolve(self, path: Path) -> Path:
        """A config path made absolute against the config file's folder."""
        return path if path.is_absolute() else (self.base_dir / path).resolve()

    @property
    def data_dir(self) -> Path:
        return self.resolve(self.station.data_dir)

    @property
    def uploads_dir(self) -> Path:
        """Partial uploads and their spool (``[uploads] folder``)."""
        folder = self.uploads.folder
        return self.resolve(folder) if folder is not None else self.data_dir / "uploads"

    @property
    def key_file(self) -> Path:
        return self.resolve(self.signing.key_file)

    @property
    def catalog_url(self) -> str:
        """The catalog URL with a relative SQLite path made absolute."""
        url = self.catalog.url
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/") and url != "sqlite://":
            rest = url[len(prefix) :]
            path, sep, query = rest.partition("?")
            return f"{prefix}{self.resolve(Path(path))}{sep}{query}"
        return url

    def dock_path(self, dock: DockSettings) -> Path:
        return self.resolve(dock.path)

    def category(self, name: str) -> RetentionCategory:
        return self.retention.categories[name]

    def unit_scope(self, codes: list[str] | tuple[str, ...]) -> frozenset[str]:
        """``codes`` with every descendant in the ``[units]`` tree (a code not in
        the tree stands for itself alone)."""
        children: dict[str, list[str]] = {}
        for code, unit in self.units.items():
            if unit.parent is not None:
                children.setdefault(unit.parent, []).append(code)
        found: set[str] = set()
        todo = list(codes)
        while todo:
            code = todo.pop()
            if code not in found:
                found.add(code)
                todo.extend(children.get(code, ()))
        return frozenset(found)

    def model_post_init(self, _context: Any) -> None:
        for code, unit in self.units.items():
            if not re.fullmatch(UNIT_PATTERN, code):
                raise ValueError(f"units.{code}: not a valid unit code")
            seen = {code}
            parent = unit.parent
            while parent is not None:
                if parent not in self.units:
                    raise ValueError(f"units.{code}.parent: unknown unit {parent!r}")
                if parent in seen:
                    raise ValueError(f"units.{code}: the parent chain loops through {parent!r}")
                seen.add(parent)
                parent = self.units[parent].parent
        known = self.name_profiles()
        for n, dock in enumerate(self.docks):
            if dock.name_profile is not None and dock.name_profile not in known:
                raise ValueError(
                    f"docks.{n}.name_profile: unknown profile {dock.name_profile!r}; "
                    f"known: {', '.join(sorted(known))}"
                )

    # -- recorder file names --------------------------------------------------

    def name_profiles(self) -> dict[str, NameProfile]:
        """The built-in profiles and ``[names.profiles.*]``, by name."""
        profiles = dict(BUILTIN_PROFILES)
        for name, own in self.names.profiles.items():
            profiles[name] = NameProfile(
                name=name,
                pattern=own.pattern,
                description=own.description or "(configured)",
                timezone=own.timezone,
                time_format=own.time_format,
                sources=("strongroom.toml [names.profiles]",),
                examples=tuple(own.examples),
            )
        return profiles

    def name_rule(self, dock: DockSettings | None) -> NameRule:
        """How ``dock``'s names are read (None: files outside any dock, the default).

        The zone: the dock's ``timezone``, else the profile's, else the station's.
        A dock with only ``name_pattern`` reads exactly as before profiles existed.
        """
        if dock is not None and dock.name_pattern is not None:
            profile = NameProfile("custom", dock.name_pattern, "the dock's own name_pattern")
        else:
            profile = self.name_profiles()[(dock.name_profile if dock else None) or "gat947"]
        zone = (dock.timezone if dock else None) or profile.timezone or self.station.timezone
        time_format = (dock.time_format if dock else None) or profile.time_format
        return NameRule(
            profile=profile.name,
            pattern=profile.pattern,
            timezone=zone,
            time_format=time_format,
            future_skew_minutes=self.names.future_skew_minutes,
            earliest_year=self.names.earliest_year,
        )


def _check_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {value!r}") from exc
    return value


# pydantic-settings builds sources from the class; the file to read is passed
# through this one-slot holder while load_settings runs (single-threaded CLI
# start-up), instead of a global the rest of the program could see change.
_CURRENT_FILE: dict[str, Path | None] = {"path": None}


class ConfigError(StrongroomError):
    """A configuration that cannot be used; the message names every bad key."""

    code = "config_error"


def default_config_path() -> Path | None:
    """``$STRONGROOM_CONFIG``, then ``./strongroom.toml`` if it exists."""
    env = os.environ.get("STRONGROOM_CONFIG")
    if env:
        return Path(env)
    local = Path("strongroom.toml")
    return local if local.exists() else None


def load_settings(path: Path | None = None, **overrides: Any) -> Settings:
    """Read, validate and return the settings, or raise :class:`ConfigError`."""
    if path is not None:
        path = path.resolve()
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
    _CURRENT_FILE["path"] = path
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, path)) from None
    except ValueError as exc:  # TOML syntax errors
        raise ConfigError(f"{path}: {exc}") from None
    finally:
        _CURRENT_FILE["path"] = None
    settings.source_file = path
    _check_secrets_are_private(settings, path)
    for notice in settings.retention.notices:
        log.warning("%s", notice)
    return settings


def _describe(exc: ValidationError, path: Path | None) -> str:
    where = f" in {path}" if path else ""
    lines = [f"invalid configuration{where}:"]
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"]) or "(top level)"
        lines.append(f"  {key}: {error['msg']}")
    return "\n".join(lines)


_STORE_SECRETS = (
    "access_key_id",
    "secret_access_key",
    "read_access_key_id",
    "read_secret_access_key",
)


def _check_secrets_are_private(settings: Settings, path: Path | None) -> None:
    if path is None:
        return
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077 == 0:
        return
    text = path.read_text(encoding="utf-8")
    for key in _STORE_SECRETS:
        if re.search(rf"^\s*{key}\s*=", text, re.MULTILINE):
            raise ConfigError(
                f"store.{key} is set in {path}, which others can read (mode {mode:o}); "
                f"put it in STRONGROOM_STORE__{key.upper()} or make the file mode 0600"
            )
    if _url_has_password(_file_catalog_url(text)):
        raise ConfigError(
            f"catalog.url in {path} holds a password, and others can read the file (mode "
            f"{mode:o}); put the URL in STRONGROOM_CATALOG__URL or make the file mode 0600"
        )


def _file_catalog_url(text: str) -> str:
    """``catalog.url`` as written in the file itself (the environment may override it)."""
    try:
        catalog = tomllib.loads(text).get("catalog")
    except tomllib.TOMLDecodeError:
        return ""
    url = catalog.get("url") if isinstance(catalog, dict) else None
    return url if isinstance(url, str) else ""


def _url_has_password(url: str) -> bool:
    """``scheme://user:password@host/…`` (or a ``password=`` query parameter)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    query = {key.lower() for key, _ in parse_qsl(parts.query)}
    return bool(parts.password) or "password" in query


def read_private_file(path: Path) -> bytes:
    """Read a secret file, refusing one that group or others can read."""
    st = path.stat()
    if stat.S_IMODE(st.st_mode) & 0o077:
        raise ConfigError(
            f"{path} holds a secret but has mode {stat.S_IMODE(st.st_mode):o}; run chmod 600 {path}"
        )
    return path.read_bytes()
