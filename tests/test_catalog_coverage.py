"""Every test module runs on the catalogs it should, and says why if not both.

A county runs PostgreSQL, a single station SQLite: a test whose subject is
the catalog (its queries, rows, transactions, scopes) runs on both
(``pytest.mark.catalogs("sqlite", "postgresql")``, see ``conftest.py``).
Modules whose subject is the pipeline, the store, the media tools or a file
format stay on SQLite, and those that need several stations run on
PostgreSQL alone – each with its reason here. A new test module fails this
test until it is entered below, so no catalog test slips onto one database
unnoticed; a module whose marker disagrees with its entry fails too.
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent
BOTH = ("sqlite", "postgresql")
SQLITE = ("sqlite",)
POSTGRESQL = ("postgresql",)

#: module → (catalogs, why not both; None when both)
PLAN: dict[str, tuple[tuple[str, ...], str | None]] = {
    # the catalog is the subject: both databases
    "test_agencies": (BOTH, None),
    "test_api_roles": (BOTH, None),
    "test_api_routes": (BOTH, None),
    "test_api_scopes": (BOTH, None),
    "test_api_serve": (BOTH, None),
    "test_caselinks": (BOTH, None),
    "test_catalog_cost": (BOTH, None),
    "test_catalog_rebuild": (BOTH, None),
    "test_catalog_schema": (BOTH, None),
    "test_disposition": (BOTH, None),
    "test_fixity": (BOTH, None),
    "test_ingest_catalog": (BOTH, None),
    "test_leases": (BOTH, None),
    "test_ledger": (BOTH, None),
    "test_reports": (BOTH, None),
    "test_retention": (BOTH, None),
    "test_shares": (BOTH, None),
    "test_smoke_ingest": (BOTH, None),
    "test_stations": (BOTH, None),
    "test_incidents": (BOTH, None),
    "test_recorder_hashes": (BOTH, None),
    "test_states": (BOTH, None),
    "test_uploads": (BOTH, None),
    "test_media_metadata": (BOTH, None),
    # several stations on one catalog: PostgreSQL only
    "test_catalog_faults": (POSTGRESQL, "PostgreSQL stopped, restarted, wrong password"),
    "test_fixity_shared": (POSTGRESQL, "three nodes split one sweep"),
    "test_ledger_stations": (POSTGRESQL, "four station processes into one ledger"),
    "test_playback_shared": (POSTGRESQL, "stations share the playback queue"),
    "test_station_keys": (POSTGRESQL, "two stations, own keys, one catalog"),
    # the subject is not the catalog: SQLite (the default)
    "test_api_hardening": (SQLITE, "HTTP hardening: headers, limits, TLS"),
    "test_api_schemathesis": (SQLITE, "the OpenAPI contract, fuzzed"),
    "test_bad_input": (SQLITE, "hostile files in the dock: the pipeline"),
    "test_bench": (SQLITE, "the benchmark's own arithmetic"),
    "test_catalog_backup": (SQLITE, "backs up the SQLite file; PostgreSQL has its own PITR"),
    "test_changed_after_hash": (SQLITE, "a file changed under the pipeline"),
    "test_claim_race": (SQLITE, "dock folders swapped during the claim"),
    "test_crash": (SQLITE, "kill -9 after each pipeline step"),
    "test_custody_report": (SQLITE, "the report's PDF/CSV/JSON rendering"),
    "test_daemon": (SQLITE, "watching, settling, claiming"),
    "test_deploy_units": (SQLITE, "systemd unit files"),
    "test_export_bundle": (SQLITE, "the BagIt bundle format"),
    "test_faults": (SQLITE, "disk full, hung store, damaged SQLite file"),
    "test_forwarder": (SQLITE, "log forwarding"),
    "test_identify": (SQLITE, "file-name parsing"),
    "test_key_rotation": (SQLITE, "signing keys and the trust set"),
    "test_media": (SQLITE, "ffprobe on generated media"),
    "test_merkle": (SQLITE, "proof math, no I/O"),
    "test_names_cli": (SQLITE, "naming profiles on the command line"),
    "test_names_daemon": (SQLITE, "naming profiles in the daemon"),
    "test_note": (SQLITE, "signed notes, no I/O"),
    "test_offline_verifier": (SQLITE, "the bundle verifier, without a catalog"),
    "test_offline_verifier_fuzz": (SQLITE, "the bundle verifier, fuzzed"),
    "test_playback": (SQLITE, "ffmpeg and the copies' objects"),
    "test_playback_holds": (SQLITE, "locks and holds on the copies' objects"),
    "test_playback_retry": (SQLITE, "ffmpeg failures and retries"),
    "test_prehash": (SQLITE, "hashing while files settle"),
    "test_recorded_time": (SQLITE, "recording-time rules, no I/O"),
    "test_sandbox": (SQLITE, "the ffmpeg sandbox"),
    "test_settings": (SQLITE, "the configuration file"),
    "test_settle": (SQLITE, "the settle rule, no I/O"),
    "test_share_browser": (SQLITE, "share pages in Chromium"),
    "test_store_doors": (SQLITE, "the store's ports"),
    "test_store_outage": (SQLITE, "the store down under ingest"),
    "test_store_upload": (SQLITE, "uploads and checksums"),
    "test_transcode_output": (SQLITE, "what ffmpeg writes"),
    "test_web_browser": (SQLITE, "web pages in Chromium"),
    "test_catalog_coverage": (SQLITE, "this list"),
    "test_cli_documents": (SQLITE, "how show/find/status print (the documents' shape)"),
    "test_cli_render": (SQLITE, "rendering for a terminal, no I/O"),
    "test_errors": (SQLITE, "error classes and their codes, no I/O"),
    "test_cluster": (SQLITE, "the SeaweedFS cluster and its faults"),
    "test_layout": (SQLITE, "bucket key names, no I/O"),
    "test_lockcheck": (SQLITE, "the store's Object Lock self-test; the catalog is not involved"),
    "test_manifests": (SQLITE, "signed manifest bytes, no I/O"),
    "test_iso6709": (SQLITE, "ISO 6709 points, tags and distances, no I/O"),
    "test_seal_adopt": (SQLITE, "a seal adopting a stored manifest"),
    "test_stations_health": (
        SQLITE,
        "alert rules and metrics; its heartbeat tests are marked for both one by one",
    ),
}


def catalogs_of(path: Path) -> tuple[str, ...]:
    """The catalogs a module's ``pytestmark`` names (``("sqlite",)`` without a marker)."""
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if not (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets)
        ):
            continue
        marks = node.value.elts if isinstance(node.value, ast.List | ast.Tuple) else [node.value]
        for mark in marks:
            if (
                isinstance(mark, ast.Call)
                and isinstance(mark.func, ast.Attribute)
                and mark.func.attr == "catalogs"
            ):
                return tuple(ast.literal_eval(arg) for arg in mark.args)
    return SQLITE


def test_every_test_module_runs_on_the_catalogs_its_entry_names():
    modules = {path.stem: path for path in TESTS.glob("test_*.py")}
    unlisted = sorted(set(modules) - set(PLAN))
    assert not unlisted, f"enter these modules in PLAN (both catalogs, or why not): {unlisted}"
    gone = sorted(set(PLAN) - set(modules))
    assert not gone, f"PLAN names modules that no longer exist: {gone}"
    wrong = {
        name: (catalogs_of(path), PLAN[name][0])
        for name, path in modules.items()
        if catalogs_of(path) != PLAN[name][0]
    }
    assert not wrong, f"marker vs PLAN: {wrong}"
    for name, (catalogs, why) in PLAN.items():
        assert (why is None) == (catalogs == BOTH), f"{name}: say why it is not on both"
