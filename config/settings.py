"""The settings tree: one TOML file, overridden key by key by ``STRONGROOM_*``
environment variables (``STRONGROOM_STORE__BUCKET=…``), then defaults.

Relative paths in the file are taken relative to the file's own folder, so a
config can be moved together with its data folder. Secrets (the store's keys,
API tokens) come from the environment or from files of mode 0600; a secret
found in a config file that others can read is refused, because the file is
then no longer a secret.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from config.transcode import TranscodeSettings

LockMode = Literal["COMPLIANCE", "GOVERNANCE"]

#: GA/T 947-style recorder file names: ``ABC1234_012345_20260301083015_0001_IMP.MP4``
#: (7-character device serial, 6-digit police number, start time, optional
#: sequence, optional ``IMP`` = marked important). Matched against the path
#: relative to the dock root, so vendors that sort into folders still match.
DEFAULT_NAME_PATTERN = (
    r"(?:^|/)(?P<device>[A-Za-z0-9]{7})_(?P<officer>\d{6})_(?P<start>\d{14})"
    r"(?:_(?P<end>\d{14}))?(?:_(?P<seq>\d{1,6}))?(?:_(?P<flag>[A-Za-z]+))?\.[A-Za-z0-9]+$"
)
NAME_PATTERN_GROUPS = frozenset({"device", "officer", "unit", "start", "end", "seq", "flag"})


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
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @property
    def tzinfo(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class DockSettings(_Section):
    path: Path
    name: str | None = Field(None, description="defaults to the folder's own name")
    settle_seconds: float = Field(5.0, ge=0.0)
    after_archive: str = "delete"
    name_pattern: str = DEFAULT_NAME_PATTERN
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

    @field_validator("after_archive")
    @classmethod
    def _after_archive(cls, value: str) -> str:
        if value == "delete":
            return value
        kind, _, arg = value.partition(":")
        if kind == "keep" and arg.isdigit():
            return value
        if kind == "move" and arg:
            return value
        raise ValueError('must be "delete", "keep:<days>" or "move:<dir>"')

    @field_validator("name_pattern")
    @classmethod
    def _name_pattern(cls, value: str) -> str:
        try:
            compiled = re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from exc
        unknown = set(compiled.groupindex) - NAME_PATTERN_GROUPS
        if unknown:
            raise ValueError(
                f"unknown named groups {sorted(unknown)}; allowed: {sorted(NAME_PATTERN_GROUPS)}"
            )
        return value

    @property
    def label(self) -> str:
        return self.name or self.path.name or str(self.path)

    @property
    def keep_days(self) -> int | None:
        kind, _, arg = self.after_archive.partition(":")
        return int(arg) if kind == "keep" else None

    @property
    def move_to(self) -> Path | None:
        kind, _, arg = self.after_archive.partition(":")
        return Path(arg) if kind == "move" else None


class StoreSettings(_Section):
    endpoint_url: str | None = "http://127.0.0.1:8333"
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


class SigningSettings(_Section):
    key_file: Path = Path("var/keys/signing.key")


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


class RetentionSettings(_Section):
    default_category: str = "routine"
    important_category: str = "important"
    case_category: str = "evidence"
    categories: dict[str, RetentionCategory] = Field(default_factory=_default_categories)
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

    def model_post_init(self, _context: Any) -> None:
        for key in ("default_category", "important_category", "case_category"):
            name = getattr(self, key)
            if name not in self.categories:
                raise ValueError(
                    f"{key} {name!r} is not one of the categories {sorted(self.categories)}"
                )


class PipelineSettings(_Section):
    workers: int = Field(4, ge=1, le=64, description="files moved through the pipeline at once")
    rescan_seconds: float = Field(30.0, gt=0, description="full dock rescan, events are only hints")
    retry_initial_seconds: float = Field(2.0, gt=0)
    retry_max_seconds: float = Field(300.0, gt=0)
    probe_timeout_seconds: float = Field(30.0, gt=0)


ApiRole = Literal["case-system", "auditor", "admin"]


class ApiToken(_Section):
    """One bearer token, kept only as the SHA-256 of its text (never the token)."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]*$")
    role: ApiRole
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="hex SHA-256 of the token")


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
    ledger: LedgerSettings = Field(default_factory=LedgerSettings)
    fixity: FixitySettings = Field(default_factory=FixitySettings)

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


# pydantic-settings builds sources from the class; the file to read is passed
# through this one-slot holder while load_settings runs (single-threaded CLI
# start-up), instead of a global the rest of the program could see change.
_CURRENT_FILE: dict[str, Path | None] = {"path": None}


class ConfigError(Exception):
    """A configuration that cannot be used; the message names every bad key."""


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
    return settings


def _describe(exc: ValidationError, path: Path | None) -> str:
    where = f" in {path}" if path else ""
    lines = [f"invalid configuration{where}:"]
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"]) or "(top level)"
        lines.append(f"  {key}: {error['msg']}")
    return "\n".join(lines)


def _check_secrets_are_private(settings: Settings, path: Path | None) -> None:
    if path is None:
        return
    mode = stat.S_IMODE(path.stat().st_mode)
    private = mode & 0o077 == 0
    text = path.read_text(encoding="utf-8")
    for key in ("access_key_id", "secret_access_key"):
        if re.search(rf"^\s*{key}\s*=", text, re.MULTILINE) and not private:
            raise ConfigError(
                f"store.{key} is set in {path}, which others can read (mode {mode:o}); "
                f"put it in STRONGROOM_STORE__{key.upper()} or make the file mode 0600"
            )


def read_private_file(path: Path) -> bytes:
    """Read a secret file, refusing one that group or others can read."""
    st = path.stat()
    if stat.S_IMODE(st.st_mode) & 0o077:
        raise ConfigError(
            f"{path} holds a secret but has mode {stat.S_IMODE(st.st_mode):o}; run chmod 600 {path}"
        )
    return path.read_bytes()
