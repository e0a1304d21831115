"""Configuration: the contract's keys, env overrides, and clear refusals."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from config.settings import ConfigError, load_settings


def _write(path, text, mode=0o600):
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


def test_design_example_loads_with_paths_relative_to_the_file(tmp_path):
    from pathlib import Path

    example = Path(__file__).parent.parent / "config" / "strongroom.example.toml"
    config = _write(tmp_path / "strongroom.toml", example.read_text())
    settings = load_settings(config)
    assert settings.station.name == "dock-01"
    assert settings.dock_path(settings.docks[0]) == tmp_path / "var" / "dock"
    assert settings.catalog_url == f"sqlite:///{tmp_path / 'var' / 'catalog.db'}"
    assert settings.category("routine").days == 183
    assert settings.category("evidence").permanent


def test_environment_overrides_one_key_and_keeps_the_rest(tmp_path, monkeypatch):
    config = _write(tmp_path / "s.toml", '[store]\nbucket = "from-file"\nregion = "cn-north-1"\n')
    monkeypatch.setenv("STRONGROOM_STORE__BUCKET", "from-env")
    monkeypatch.setenv("STRONGROOM_STORE__SECRET_ACCESS_KEY", "s3cr3t")
    settings = load_settings(config)
    assert settings.store.bucket == "from-env"
    assert settings.store.region == "cn-north-1"
    assert "s3cr3t" not in repr(settings), "secrets must not show in reprs or logs"


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[[docks]]\npath = "d"\nafter_archive = "shred"\n', "docks.0.after_archive"),
        ('[[docks]]\npath = "d"\nname_pattern = "(?P<colour>x)"\n', "docks.0.name_pattern"),
        ('[[docks]]\npath = "d"\nname_pattern = "(unclosed"\n', "docks.0.name_pattern"),
        ("[store]\nbukket = 1\n", "store.bukket"),
        ("[retention.categories.short]\n", "retention.categories.short"),
        ('[station]\ntimezone = "Mars/Olympus"\n', "station.timezone"),
    ],
)
def test_invalid_config_names_the_key(tmp_path, text, key):
    config = _write(tmp_path / "bad.toml", text)
    with pytest.raises(ConfigError) as error:
        load_settings(config)
    assert key in str(error.value)


def test_cli_exits_2_with_the_key_named(tmp_path):
    config = _write(tmp_path / "bad.toml", '[[docks]]\npath = "d"\nsettle_seconds = -1\n')
    result = subprocess.run(
        [sys.executable, "-m", "frontdoors.main", "status", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "docks.0.settle_seconds" in result.stderr


def test_secret_in_a_world_readable_config_is_refused(tmp_path):
    config = _write(tmp_path / "open.toml", '[store]\nsecret_access_key = "x"\n', mode=0o644)
    with pytest.raises(ConfigError, match="0600"):
        load_settings(config)
    config.chmod(0o600)
    assert load_settings(config).store.secret_access_key.get_secret_value() == "x"


def test_signing_key_file_must_be_private(tmp_path):
    from archive.keys import create_key, load_key

    path = tmp_path / "keys" / "signing.key"
    key, created = create_key(path)
    assert created and (path.stat().st_mode & 0o777) == 0o600
    again, created_again = create_key(path)
    assert not created_again and again.keyid == key.keyid, "an existing key is never replaced"
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_key(path)


@pytest.mark.parametrize(
    "text",
    [
        '[catalog]\nurl = "postgresql+psycopg://archive:s3cret@db.example/strongroom"\n',
        '[catalog]\nurl = "postgresql+psycopg://db.example/strongroom?password=s3cret"\n',
        '[store]\nread_secret_access_key = "s3cret"\n',
    ],
)
def test_a_password_in_a_readable_config_is_refused_wherever_it_sits(tmp_path, text):
    """Issue 11: a password in catalog.url escaped the config-file-mode check."""
    config = _write(tmp_path / "open.toml", text, mode=0o644)
    with pytest.raises(ConfigError, match="0600") as error:
        load_settings(config)
    assert "s3cret" not in str(error.value), "the refusal never repeats the secret"
    config.chmod(0o600)
    load_settings(config)


def test_a_catalog_url_without_a_password_may_sit_in_a_readable_file(tmp_path, monkeypatch):
    config = _write(
        tmp_path / "open.toml",
        '[catalog]\nurl = "postgresql+psycopg://archive@db.example/strongroom"\n',
        mode=0o644,
    )
    monkeypatch.setenv("STRONGROOM_CATALOG__URL", "postgresql+psycopg://a:pw@db.example/s")
    assert load_settings(config).catalog.url.endswith("a:pw@db.example/s"), "env is the way"


def test_tls_needs_both_files(tmp_path):
    config = _write(tmp_path / "tls.toml", '[api]\ntls_cert = "api.crt"\n')
    with pytest.raises(ConfigError, match="tls_key"):
        load_settings(config)


# --- categories as the design contract writes them (issue 14) -------------------

CONTRACT_RETENTION = """
[retention]
default_category = "routine"
[retention.categories.routine]
days = 183
[retention.categories.evidence]
permanent = true
"""


def test_the_contracts_routine_and_evidence_categories_load_and_imp_goes_to_the_default(
    tmp_path, caplog
):
    config = _write(tmp_path / "s.toml", CONTRACT_RETENTION)
    with caplog.at_level("WARNING", logger="strongroom.config"):
        settings = load_settings(config)
    retention = settings.retention
    assert retention.important_category == "routine"
    assert retention.category_for(["IMP"]) == "routine"
    assert retention.category_for([]) == "routine"
    (warning,) = [r.getMessage() for r in caplog.records if r.name == "strongroom.config"]
    assert "IMP" in warning and "'routine'" in warning and "important" in warning


def test_an_important_category_the_user_wrote_must_exist(tmp_path):
    text = CONTRACT_RETENTION.replace(
        'default_category = "routine"', 'default_category = "routine"\nimportant_category = "vip"'
    )
    with pytest.raises(ConfigError, match="important_category 'vip'"):
        load_settings(_write(tmp_path / "s.toml", text))


def test_the_default_categories_keep_important_without_a_warning(tmp_path, caplog):
    with caplog.at_level("WARNING", logger="strongroom.config"):
        settings = load_settings(_write(tmp_path / "s.toml", '[station]\nname = "a"\n'))
    assert settings.retention.category_for(["IMP"]) == "important"
    assert not [r for r in caplog.records if r.name == "strongroom.config"]


def test_the_warning_is_printed_when_a_command_starts(tmp_path):
    config = _write(tmp_path / "s.toml", CONTRACT_RETENTION)
    result = subprocess.run(
        [sys.executable, "-m", "frontdoors.main", "names", "profiles", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "files flagged IMP go to the default category 'routine'" in result.stderr


def test_after_archive_forms_are_read_in_one_place():
    from config.settings import keep_days, move_to

    assert keep_days("keep:3") == 3 and keep_days("delete") is None and keep_days("keep:x") is None
    assert move_to("move:done") == Path("done") and move_to("move:") is None
    assert move_to("keep:3") is None


def test_store_endpoints_list_names_endpoint_url_and_keeps_the_single_form(tmp_path, monkeypatch):
    """``[store] endpoints``: tried in order; ``endpoint_url`` alone still works;
    with only the list, ``endpoint_url`` is its first entry; bad entries are named."""
    config = tmp_path / "strongroom.toml"
    config.write_text('[store]\nendpoints = ["http://127.0.0.1:40000", "http://127.0.0.1:40001"]\n')
    store = load_settings(config).store
    assert store.endpoint_list == ["http://127.0.0.1:40000", "http://127.0.0.1:40001"]
    assert store.endpoint_url == "http://127.0.0.1:40000"
    config.write_text('[store]\nendpoint_url = "http://10.0.0.5:8333"\n')
    store = load_settings(config).store
    assert store.endpoint_list == ["http://10.0.0.5:8333"]
    monkeypatch.setenv("STRONGROOM_STORE__ENDPOINTS", '["http://a:1", "http://b:2"]')
    assert load_settings(config).store.endpoint_list == ["http://a:1", "http://b:2"]
    monkeypatch.delenv("STRONGROOM_STORE__ENDPOINTS")
    for bad in ('["127.0.0.1:40000"]', '["http://a:1", "http://a:1"]'):
        config.write_text(f"[store]\nendpoints = {bad}\n")
        with pytest.raises(ConfigError, match="endpoints"):
            load_settings(config)
