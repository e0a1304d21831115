"""The systemd units in deploy/systemd: they parse, carry the hardening the
README promises, and start commands and options the CLI really has."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess

import pytest
from conftest import REPO, STRONGROOM

UNITS = REPO / "deploy" / "systemd"
INSTALLED = "/opt/strongroom/.venv/bin/strongroom"

COMMON = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "PrivateTmp": "yes",
    "ProtectHome": "yes",
    "UMask": "0027",
}
REQUIRED = {
    "strongroom.service": {
        **COMMON,
        "User": "strongroom",
        "Group": "strongroom",
        "CapabilityBoundingSet": "",
    },
    "strongroom-store.service": {
        **COMMON,
        "RestrictNamespaces": "net mnt",
        "IPAddressDeny": "any",
        "IPAddressAllow": "localhost",
    },
}


def directives(name: str) -> dict[str, list[str]]:
    """``{key: [values]}`` of a unit's [Service] section (systemd allows repeats)."""
    found: dict[str, list[str]] = {}
    section = None
    for raw in (UNITS / name).read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
            continue
        if section == "[Service]":
            key, _, value = line.partition("=")
            found.setdefault(key.strip(), []).append(value.strip())
    return found


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_unit_has_the_hardening(name):
    found = directives(name)
    for key, value in REQUIRED[name].items():
        assert found.get(key) == [value], f"{name}: {key}={found.get(key)}, want {value!r}"
    writable = " ".join(found["ReadWritePaths"]).split()
    state = "/var/lib/" + found["StateDirectory"][0]
    assert state in writable, f"{name}: the data folder {state} must be writable"
    assert found["Restart"] == ["on-failure"]


def test_service_config_is_valid_and_points_at_the_units_folders():
    """deploy/systemd/strongroom.toml loads, and every path it writes is one the
    daemon's unit makes writable."""
    from config.settings import load_settings

    settings = load_settings(UNITS / "strongroom.toml")
    writable = " ".join(directives("strongroom.service")["ReadWritePaths"]).split()
    for path in (settings.data_dir, settings.signing.key_file, *(d.path for d in settings.docks)):
        assert any(str(path).startswith(folder) for folder in writable), path
    store = directives("strongroom-store.service")
    store_folder = "/var/lib/" + store["StateDirectory"][0]
    assert str(settings.store.credentials_file) == f"{store_folder}/credentials.json"
    assert directives("strongroom-store.service")["Type"] == ["notify"]
    # a port below 1024: no ordinary process can squat it while the store
    # restarts and pose as the store (answer HEADs for objects never stored)
    from urllib.parse import urlparse

    url = urlparse(settings.store.endpoint_url)
    assert url.hostname == "127.0.0.1" and url.port < 1024
    assert "CAP_NET_BIND_SERVICE" in store["CapabilityBoundingSet"][0].split()


def test_daemon_cannot_read_what_the_store_owns():
    daemon = directives("strongroom.service")
    store = directives("strongroom-store.service")
    store_folder = "/var/lib/" + store["StateDirectory"][0]
    assert store_folder not in " ".join(daemon["ReadWritePaths"])
    command = shlex.split(store["ExecStart"][0])
    assert command[command.index("--user") + 1] == "strongroom-store"
    assert command[command.index("--credentials-owner") + 1] == daemon["User"][0]
    assert command[command.index("--folder") + 1] == store_folder
    sysusers = (UNITS / "strongroom.sysusers.conf").read_text()
    assert re.search(r"^u strongroom\s", sysusers, re.M)
    assert re.search(r"^u strongroom-store\s", sysusers, re.M)


COMMANDS = [
    (name, line)
    for name in sorted(REQUIRED)
    for key in ("ExecStartPre", "ExecStart")
    for line in directives(name).get(key, [])
]


@pytest.mark.parametrize(("name", "line"), COMMANDS)
def test_unit_starts_a_real_command_with_real_options(name, line):
    """Every ``--option`` in ExecStart(Pre) is one the command's --help lists."""
    command = shlex.split(line)
    assert command[0] == INSTALLED
    subcommand = command[1]
    result = subprocess.run(
        [*STRONGROOM, subcommand, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin", "TERM": "dumb"},
        check=True,
    )
    for option in (arg for arg in command[2:] if arg.startswith("--")):
        assert option in result.stdout, f"{name}: {subcommand} has no {option}"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_units_pass_systemd_analyze_verify(tmp_path):
    """``systemd-analyze verify`` with the installed path pointed at this checkout:
    no unknown key, no bad value, an executable ExecStart."""
    here = str(REPO / ".venv" / "bin" / "strongroom")
    paths = []
    for name in REQUIRED:
        copy = tmp_path / name
        copy.write_text((UNITS / name).read_text().replace(INSTALLED, here))
        paths.append(str(copy))
    result = subprocess.run(
        ["systemd-analyze", "verify", *paths],
        capture_output=True,
        text=True,
        timeout=120,
    )
    problems = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        if str(tmp_path) in line or "Unknown" in line or "nvalid" in line
    ]
    assert result.returncode == 0 and problems == [], result.stdout + result.stderr
