"""The recorder's own hashes and marks (issue 19, part 2), with real files, the real
store and both catalogs: a matching MD5/SHA-256 is stated in the signed manifest;
a mismatch is archived, flagged, held in the dock and shown by ``status`` and
``/metrics``; a good copy docked later is its own item; sidecars are never items,
leave with their file, and hostile ones are ignored; marks map to categories."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from archive.dsse import verify_envelope
from archive.hashing import hash_file
from archive.heartbeat import HeartbeatCollector
from archive.models import JobState
from ingest.pipeline import Pipeline
from ingest.prehash import PreHasher
from ingest.scan import Candidate
from tests.conftest import wait_until
from tests.ingest_helpers import all_jobs_done, as_json, catalog_rows, jobs

pytestmark = pytest.mark.catalogs("sqlite", "postgresql")

NAME = "ABC1234_012345_20260301083015_0001.MP4"


def md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def drop(station, name: str, data: bytes, **sidecars: bytes | str) -> Path:
    """A dock file and its sidecars (keyword: the sidecar's file name with ``_`` for ``.``)."""
    station.dock.mkdir(exist_ok=True)
    path = station.dock / name
    path.write_bytes(data)
    for sidecar, content in sidecars.items():
        target = station.dock / sidecar.replace("__", ".")
        target.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def archive_one(station, path: Path):
    """Claim and run one dock file through the real pipeline; its outcome."""
    archive = station.archive()
    try:
        pipeline = Pipeline(archive)
        dock = archive.settings.docks[0]
        st = path.stat()
        candidate = Candidate(str(path), st.st_size, st.st_mtime_ns, f"{st.st_dev}:{st.st_ino}")
        job_id = pipeline.claim(dock, candidate)
        outcome = pipeline.advance(job_id)
        pipeline.close()
        return outcome
    finally:
        archive.close()


def manifest_payload(station, evidence_id: str) -> dict:
    (row,) = catalog_rows(station, "SELECT * FROM evidence WHERE evidence_id = :e", e=evidence_id)
    envelope = station.s3.get_object(Bucket=station.bucket, Key=row["manifest_key"])["Body"].read()
    archive = station.archive()
    try:
        return verify_envelope(envelope, archive.key.public_keys()).payload
    finally:
        archive.close()


def test_matching_recorder_hashes_are_stated_in_the_signed_manifest(station, tmp_path):
    """``NAME.MP4.md5`` in md5sum format and ``NAME.sha256`` bare: both compared,
    both stated (match) in the signed manifest, the catalog says "match", a rebuilt
    catalog says so too, the sidecars leave the dock with the file, and an export of
    the item verifies offline."""
    data = os.urandom(300_000)
    path = drop(
        station,
        NAME,
        data,
        **{
            f"{NAME}__md5": f"{md5(data)}  {NAME}\n",
            f"{Path(NAME).stem}__sha256": sha(data).upper(),
        },
    )
    outcome = archive_one(station, path)
    assert outcome.state == JobState.RELEASED, outcome.error
    source = manifest_payload(station, outcome.evidence_id)["source"]
    hashes = {h["kind"]: h for h in source["recorder_hashes"]}
    assert hashes["md5"]["value"] == md5(data) and hashes["md5"]["match"] is True
    assert hashes["md5"]["from"] == f"{NAME}.md5" and hashes["md5"]["reader"] == "sidecar-md5"
    assert hashes["sha256"]["value"] == sha(data) and hashes["sha256"]["match"] is True
    assert "recorder-hash-mismatch" not in source["flags"]
    (row,) = catalog_rows(station, "SELECT recorder_hash FROM evidence")
    assert row["recorder_hash"] == "match"
    shown = json.loads(station.cli("show", outcome.evidence_id, "--json").stdout)
    assert shown["recorder_hash"] == "match"
    assert sorted(os.listdir(station.dock)) == [".strongroom"], "sidecars leave with the file"

    from tests.test_catalog_rebuild import rebuild

    target = tmp_path / "rebuilt" / "catalog.db"
    _, summary = rebuild(station, target)
    assert summary["ok"] is True, summary["problems"]
    from sqlalchemy import create_engine, text

    engine = create_engine(f"sqlite:///{target}")
    try:
        with engine.connect() as connection:
            assert connection.execute(text("SELECT recorder_hash FROM evidence")).scalar() == (
                "match"
            )
    finally:
        engine.dispose()

    out = tmp_path / "bundle"
    station.cli("export", outcome.evidence_id, "-o", str(out))
    key = tmp_path / "station.pem"
    key.write_bytes(next((out / "data" / "keys").glob("*.pem")).read_bytes())
    report = json.loads(
        station.cli("verify-bundle", str(out), "--pubkey", str(key), "--json").stdout
    )
    assert report["ok"], report


def test_a_mismatch_is_archived_flagged_held_and_shown_then_a_good_copy_is_its_own_item(
    station,
):
    """The recorder's MD5 disagrees: the bytes are archived and sealed all the same,
    flagged, the dock copy is held (not released) with a reason, ``status`` and the
    ``/metrics`` gauge show it. The good copy docked later under the same name is a
    second item, matched and released."""
    bad = os.urandom(200_000)
    good = os.urandom(200_000)
    path = drop(station, NAME, bad, **{f"{NAME}__md5": md5(good)})
    outcome = archive_one(station, path)
    assert outcome.state == JobState.HELD, outcome
    bad_item = outcome.evidence_id
    assert bad_item is not None
    body = station.s3.get_object(Bucket=station.bucket, Key=f"originals/sha256/{sha(bad)}")
    assert body["Body"].read() == bad, "the mismatching bytes are archived"
    payload = manifest_payload(station, bad_item)
    assert "recorder-hash-mismatch" in payload["source"]["flags"]
    (wrong,) = payload["source"]["recorder_hashes"]
    assert (wrong["match"], wrong["computed"]) == (False, md5(bad))
    (row,) = catalog_rows(station, "SELECT * FROM evidence")
    assert row["recorder_hash"] == "mismatch"
    assert "recorder-hash-mismatch" in as_json(row["flags"])
    held = station.dock / ".strongroom" / "held" / str(outcome.job_id)
    assert held.read_bytes() == bad, "the dock copy is kept, not released"
    assert "md5" in (held.parent / f"{outcome.job_id}.reason.txt").read_text()
    assert (station.dock / f"{NAME}.md5").exists(), "the recorder's sidecar stays"
    (job,) = jobs(station)
    assert job["released_at"] is None and job["state"] == "held"

    status = json.loads(station.cli("status", "--json").stdout)
    assert status["jobs"]["held"] == 1
    section = status["recorder_hashes"]
    assert section["mismatched_items"] == 1
    assert [h["evidence_id"] for h in section["held"]] == [bad_item]
    assert any(p["state"] == "held" and NAME in p["file"] for p in status["problems"])
    shown = station.cli("status").stderr  # the human view (rich, on stderr)
    assert "recorder hash mismatch" in shown
    assert f"held {NAME} ({bad_item}) kept at" in " ".join(shown.split())

    archive = station.archive()
    try:
        gauges = {f.name: f for f in HeartbeatCollector(archive.db).collect()}
    finally:
        archive.close()
    assert gauges["strongroom_recorder_hash_held_files"].samples[0].value == 1

    # the recorder docks the good copy: same name, right bytes, its sidecar rewritten
    path = drop(station, NAME, good, **{f"{NAME}__md5": md5(good)})
    again = archive_one(station, path)
    assert again.state == JobState.RELEASED, again
    assert again.evidence_id not in (None, bad_item), "the good copy is its own item"
    rows = {
        r["evidence_id"]: r["recorder_hash"]
        for r in catalog_rows(station, "SELECT * FROM evidence")
    }
    assert rows == {bad_item: "mismatch", again.evidence_id: "match"}
    assert held.read_bytes() == bad, "the held copy is still there"


def test_sidecars_are_not_items_and_leave_with_their_file_in_the_daemon(station):
    """The running daemon: a clip with ``NAME.md5``, a mark ``NAME.imp`` and a folder
    ``MD5SUMS`` makes one item; the sidecar and mark go with the file, the shared
    list stays (counted as ignored, never archived)."""
    config = station.config.read_text()
    config = config.replace(
        'after_archive = "delete"\n',
        'after_archive = "delete"\nrecorder_hashes = ["sidecar-md5", "list-md5"]\n'
        'recorder_marks = {imp = "IMP"}\n',
        1,
    )
    station.config.write_text(config)
    data = os.urandom(150_000)
    other = os.urandom(100_000)
    station.dock.mkdir(exist_ok=True)
    (station.dock / f"{Path(NAME).stem}.md5").write_text(md5(data))
    (station.dock / f"{NAME}.imp").write_bytes(b"")
    (station.dock / "MD5SUMS").write_text(f"{md5(data)}  {NAME}\n{md5(other)} *other.MP4\n")
    daemon = station.start_daemon()
    try:
        (station.dock / NAME).write_bytes(data)
        (station.dock / "other.MP4").write_bytes(other)
        rows = wait_until(lambda: all_jobs_done(station, 2), message="both files archived")
    finally:
        assert daemon.stop() == 0, daemon.output()
    assert len(rows) == 2, [r["display_name"] for r in rows]
    assert {r["state"] for r in rows} == {"released"}, rows
    items = {r["file_name"]: r for r in catalog_rows(station, "SELECT * FROM evidence")}
    assert set(items) == {NAME, "other.MP4"}
    assert items[NAME]["recorder_hash"] == "match" and items["other.MP4"]["recorder_hash"] == (
        "match"
    )
    assert items[NAME]["category"] == "important", "the sidecar mark flags it IMP"
    assert "IMP" in as_json(items[NAME]["flags"])
    assert sorted(os.listdir(station.dock)) == [".strongroom", "MD5SUMS"]


@pytest.mark.parametrize(
    "hostile",
    ["huge", "symlink-out", "garbage", "other-file", "link-in-subfolder"],
)
def test_a_hostile_sidecar_is_ignored_with_a_log_line(station, tmp_path, hostile, caplog):
    """Whatever lies beside the file, the file is archived and released normally, no
    value is taken from it, a link is never followed (its target outside the dock is
    neither read nor deleted), and the log says why."""
    data = os.urandom(100_000)
    outside = tmp_path / "outside.md5"
    outside.write_text(md5(data))  # the right value: taken only if the link were followed
    station.dock.mkdir(exist_ok=True)
    path = station.dock / NAME
    sidecar = station.dock / f"{NAME}.md5"
    if hostile == "huge":
        sidecar.write_bytes(md5(data).encode() + b" " * 100_000)
    elif hostile == "symlink-out":
        sidecar.symlink_to(outside)
    elif hostile == "garbage":
        sidecar.write_bytes(b"\xff\xfe\x00garbage\x00" * 10)
    elif hostile == "other-file":
        sidecar.write_text(f"{md5(data)}  SOMETHING_ELSE.MP4\n")
    else:  # in a sub-folder, the sidecar a link to a file outside the dock
        real = tmp_path / "real"
        real.mkdir()
        (real / f"{NAME}.md5").write_text(md5(data))
        (station.dock / "sub").mkdir()
        path = station.dock / "sub" / NAME
        sidecar = station.dock / "sub" / f"{NAME}.md5"
        sidecar.symlink_to(real / f"{NAME}.md5")
    path.write_bytes(data)
    with caplog.at_level("WARNING", logger="strongroom.recorder"):
        outcome = archive_one(station, path)
    assert outcome.state == JobState.RELEASED, outcome
    (job,) = jobs(station)
    assert job["recorder_hashes"] is None
    (row,) = catalog_rows(station, "SELECT recorder_hash FROM evidence")
    assert row["recorder_hash"] is None
    assert any("ignored" in r.getMessage() for r in caplog.records), caplog.text
    assert outside.read_text() == md5(data), "nothing outside the dock is touched"
    assert os.path.lexists(sidecar), "an unusable sidecar is left where it is"


def test_marks_map_to_categories_by_configuration(station):
    """``_IMP`` in the name → the important category; a sidecar mark ``NAME.key``
    configured as flag KEY, and ``[retention] flag_categories`` KEY → evidence
    (the longer-kept category wins when both apply)."""
    config = station.config.read_text().replace(
        'after_archive = "delete"\n',
        'after_archive = "delete"\nrecorder_marks = {key = "KEY"}\n',
        1,
    )
    station.config.write_text(config + '\n[retention]\nflag_categories = {KEY = "evidence"}\n')
    imp = drop(station, "ABC1234_012345_20260301083015_0002_IMP.MP4", os.urandom(10_000))
    assert archive_one(station, imp).state == JobState.RELEASED
    both = drop(
        station,
        "ABC1234_012345_20260301083015_0003_IMP.MP4",
        os.urandom(10_000),
        **{"ABC1234_012345_20260301083015_0003_IMP__key": ""},
    )
    assert archive_one(station, both).state == JobState.RELEASED
    plain = drop(station, "ABC1234_012345_20260301083015_0004.MP4", os.urandom(10_000))
    assert archive_one(station, plain).state == JobState.RELEASED
    categories = {
        r["file_name"]: r["category"]
        for r in catalog_rows(station, "SELECT file_name, category FROM evidence")
    }
    assert categories == {
        imp.name: "important",
        both.name: "evidence",
        plain.name: "routine",
    }
    assert sorted(os.listdir(station.dock)) == [".strongroom"], "the mark left with its file"


def test_md5_is_taken_in_the_same_pass_only_when_asked(tmp_path):
    """No MD5 unless a recorder gave one; with it, the same read pass yields both
    (single PUT and multipart); a pre-hashed digest without MD5 is not handed to a
    claim that needs one."""
    data = os.urandom(3 * 1024 * 1024 + 17)
    path = tmp_path / "clip.MP4"
    path.write_bytes(data)
    assert hash_file(path).md5 is None
    for part_size in (None, 1024 * 1024):
        digest = hash_file(path, part_size, md5=True)
        assert (digest.sha256, digest.md5) == (sha(data), md5(data))
    prehasher = PreHasher(lambda size: None, min_size=1)
    try:
        prehasher.offer(str(path), len(data))
        prehasher.drain()
        identity = hash_file(path).identity
        assert identity is not None
        assert prehasher.take(identity, None, md5=True) is None
        prehasher.offer(str(path), len(data), lambda _: True)
        prehasher.drain()
        early = prehasher.take(identity, None, md5=True)
        assert early is not None and early.md5 == md5(data)
    finally:
        prehasher.close()


def test_strongroom_ingest_of_a_folder_takes_no_sidecar_as_an_item(station, tmp_path):
    """`strongroom ingest FOLDER` reads a folder with its dock's rules: inside a dock
    the sidecar is compared and leaves with its file; outside the docks it is
    skipped (not an item) and, like the file archived in place, left untouched."""
    data = os.urandom(50_000)
    batch = station.dock / "batch"
    batch.mkdir(parents=True)
    (batch / NAME).write_bytes(data)
    (batch / f"{NAME}.md5").write_text(f"{md5(data)}  {NAME}\n")
    done = json.loads(station.cli("ingest", str(batch), "--json").stdout)
    [item] = done["items"]
    assert item["state"] == "released" and done["skipped"] == [f"{batch / NAME}.md5"]
    shown = json.loads(station.cli("show", item["evidence_id"], "--json").stdout)
    assert shown["recorder_hash"] == "match"
    assert not list(batch.iterdir()), "the sidecar left the dock with its file"

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    other = os.urandom(50_000)
    (elsewhere / NAME).write_bytes(other)
    (elsewhere / f"{NAME}.md5").write_text(f"{md5(other)}  {NAME}\n")
    (elsewhere / "clip.MP4.part").write_bytes(b"half a copy")
    done = json.loads(station.cli("ingest", str(elsewhere), "--json").stdout)
    assert [i["file_name"] for i in done["items"]] == [NAME]
    assert sorted(Path(p).name for p in done["skipped"]) == sorted([f"{NAME}.md5", "clip.MP4.part"])
    assert sorted(p.name for p in elsewhere.iterdir()) == sorted(
        [NAME, f"{NAME}.md5", "clip.MP4.part"]
    ), "nothing outside the docks is moved or deleted"
