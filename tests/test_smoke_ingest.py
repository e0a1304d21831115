"""`strongroom ingest` archives files in place: originals at their hash keys,
locked, with manifests that verify against the station's public key."""

from __future__ import annotations

import hashlib
import json
import threading

import pytest
from botocore.exceptions import ClientError
from ingest_helpers import as_json, catalog_rows

from archive.dsse import verify_envelope
from archive.models import JobState
from ingest import pipeline as pipeline_module
from ingest.pipeline import Pipeline
from ingest.scan import Candidate
from tests import media_clips
from tests.test_media_metadata import make_clip

pytestmark = pytest.mark.catalogs("sqlite", "postgresql")


@pytest.mark.stores("mini", "cluster")
def test_ingest_archives_locked_original_with_verifiable_manifest(station, tmp_path):
    source = tmp_path / "outside" / "ABC1234_012345_20260301083015_0001.MP4"
    source.parent.mkdir()
    data = b"not really video " * 5000
    source.write_bytes(data)
    result = station.cli("ingest", str(source), "--json")
    item = json.loads(result.stdout)["items"][0]
    sha = hashlib.sha256(data).hexdigest()
    assert item["sha256"] == sha and item["state"] == "released"
    assert item["original_key"] == f"originals/sha256/{sha}"
    assert source.read_bytes() == data, "ingest outside a dock must leave the file untouched"

    s3 = station.s3
    head = s3.head_object(Bucket=station.bucket, Key=item["original_key"])
    assert head["ObjectLockMode"] == "COMPLIANCE"
    assert s3.get_object(Bucket=station.bucket, Key=item["original_key"])["Body"].read() == data
    with pytest.raises(ClientError):
        s3.delete_object(
            Bucket=station.bucket, Key=item["original_key"], VersionId=head["VersionId"]
        )

    envelope = s3.get_object(Bucket=station.bucket, Key=item["manifest_key"])["Body"].read()
    archive = station.archive()
    try:
        payload = verify_envelope(envelope, archive.key.public_keys()).payload
    finally:
        archive.close()
    assert payload["original"]["sha256"] == sha
    assert payload["source"]["device"] == "ABC1234"
    assert payload["source"]["officer"] == "012345"


def test_find_show_status_and_json_logs(station, tmp_path):
    folder = tmp_path / "drop"
    folder.mkdir()
    (folder / "ABC1234_012345_20260301083015_0001.MP4").write_bytes(b"one" * 1000)
    (folder / "XYZ9876_054321_20260302090000_0001_IMP.MP4").write_bytes(b"two" * 1000)
    (folder / "again.MP4").write_bytes(b"one" * 1000)  # a re-drop: a sighting
    result = station.cli("--log-format", "json", "ingest", str(folder), "--json")
    items = json.loads(result.stdout)["items"]
    assert sorted(i["state"] for i in items) == ["duplicate", "released", "released"]
    log_lines = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    steps = {(line.get("file"), line.get("step")) for line in log_lines}
    name = "XYZ9876_054321_20260302090000_0001_IMP.MP4"
    # archived in place: stored, then sealed and done in one commit
    assert {(name, "stored"), (name, "released")} <= steps
    assert all("time" in line and "level" in line for line in log_lines)

    found = json.loads(station.cli("find", "--officer", "054321", "--json").stdout)["items"]
    assert [i["device"] for i in found] == ["XYZ9876"]
    important = json.loads(station.cli("find", "--device", "XYZ9876", "--json").stdout)["items"]
    assert important[0]["category"] == "important" and "IMP" in important[0]["flags"]
    window = station.cli(
        "find", "--since", "2026-03-02T00:00:00+08:00", "--until", "2026-04-01", "--json"
    ).stdout
    assert [i["device"] for i in json.loads(window)["items"]] == ["XYZ9876"]

    duplicate = next(i for i in items if i["state"] == "duplicate")
    twice = duplicate["evidence_id"]
    shown = json.loads(station.cli("show", twice, "--json").stdout)
    kinds = [e["kind"] for e in shown["events"]]
    assert {"stored", "sealed", "released", "sighted"} <= set(kinds)
    assert len(shown["sightings"]) == 1
    assert shown["sightings"][0]["details"]["path"] == duplicate["file"]
    assert station.cli("show", "ev-000000000000000000000000", check=False).returncode == 1

    status = json.loads(station.cli("status", "--json").stdout)
    assert status["jobs"] == {"released": 2, "duplicate": 1}
    assert status["evidence"] == {"sealed": 2}


def test_an_original_found_stored_without_a_lock_is_not_sealed(station, tmp_path):
    """The HEAD after the PUT is the only proof of the lock (the PUT's answer has
    none): an object already at the original's key without an Object Lock – here
    written by someone else into the bucket once its default retention was
    removed – is refused, never recorded as locked evidence."""
    s3 = station.s3
    s3.put_object_lock_configuration(
        Bucket=station.bucket, ObjectLockConfiguration={"ObjectLockEnabled": "Enabled"}
    )
    data = b"unlocked twin " * 3000
    sha = hashlib.sha256(data).hexdigest()
    s3.put_object(Bucket=station.bucket, Key=f"originals/sha256/{sha}", Body=data)
    assert "ObjectLockMode" not in s3.head_object(
        Bucket=station.bucket, Key=f"originals/sha256/{sha}"
    )
    source = tmp_path / "outside" / "ABC1234_012345_20260301083015_0002.MP4"
    source.parent.mkdir()
    source.write_bytes(data)
    fast_retries = {
        "STRONGROOM_PIPELINE__RETRY_INITIAL_SECONDS": "0.01",
        "STRONGROOM_PIPELINE__RETRY_MAX_SECONDS": "0.05",
    }
    result = station.cli("ingest", str(source), "--json", check=False, env=fast_retries)
    assert result.returncode == 1, result.stderr[-2000:]
    item = json.loads(result.stdout)["items"][0]
    assert item["state"] == "quarantined", item
    assert "no Object Lock in force" in (item.get("error") or ""), item
    assert source.read_bytes() == data
    assert catalog_rows(station, "SELECT evidence_id FROM evidence") == []


def test_the_seals_probe_runs_while_the_original_uploads(station, monkeypatch):
    """Issue 16: ffprobe for the seal starts beside the upload, not after it. The
    upload here waits (on a condition, not a clock) until the probe has begun:
    without the overlap the probe only starts after the upload and the wait
    runs out. The seal then takes that probe's result into the manifest."""
    station.dock.mkdir(exist_ok=True)
    clip = media_clips.make_h264_mp4(station.dock / "ABC1234_012345_20260301083015_0001.MP4")
    probing = threading.Event()
    real_probe = pipeline_module.probe_report

    def probe_report(*args, **kwargs):
        probing.set()
        return real_probe(*args, **kwargs)

    monkeypatch.setattr(pipeline_module, "probe_report", probe_report)
    archive = station.archive()
    real_put = archive.store.put_file
    probed_during_upload: list[bool] = []

    def put_once_probing(*args, **kwargs):
        probed_during_upload.append(probing.wait(timeout=60))
        return real_put(*args, **kwargs)

    archive.store.put_file = put_once_probing
    try:
        pipeline = Pipeline(archive)
        st = clip.stat()
        job_id = pipeline.claim(
            archive.settings.docks[0], Candidate(str(clip), st.st_size, st.st_mtime_ns)
        )
        outcome = pipeline.advance(job_id)
        pipeline.close()
    finally:
        archive.close()
    assert probed_during_upload == [True], "ffprobe had not started while the original uploaded"
    assert outcome.state == JobState.RELEASED, outcome
    (row,) = catalog_rows(
        station, "SELECT probe FROM evidence WHERE evidence_id = :e", e=outcome.evidence_id
    )
    assert as_json(row["probe"])["kind"] == "video"


def test_a_probe_of_bytes_that_changed_during_the_upload_is_not_sealed(
    station, monkeypatch, tmp_path
):
    """The probe started beside an upload that finds the file changed (the store
    refuses the stale checksum) is dropped with it: the manifest states what the
    probe of the bytes finally stored says, never the first probe's answer."""
    station.dock.mkdir(exist_ok=True)
    clip = station.dock / "ABC1234_012345_20260301083015_0002.mp4"
    make_clip(clip, "+31.2304+121.4737/", "2026-05-01T08:30:00Z", ())
    second = make_clip(tmp_path / "b.mp4", "+31.2304+121.4737/", "2026-06-02T09:40:00Z", ())
    assert second.stat().st_size == clip.stat().st_size  # same length, other bytes
    probed = threading.Event()
    real_probe = pipeline_module.probe_report

    def probe_report(*args, **kwargs):
        try:
            return real_probe(*args, **kwargs)
        finally:
            probed.set()

    monkeypatch.setattr(pipeline_module, "probe_report", probe_report)
    archive = station.archive()
    real_put = archive.store.put_file
    rewritten: list[bool] = []

    def put_after_a_rewrite(key, path, *args, **kwargs):
        """Once: the first probe has read the old bytes, then the file changes."""
        if not rewritten:
            rewritten.append(probed.wait(timeout=60))
            path.write_bytes(second.read_bytes())
        return real_put(key, path, *args, **kwargs)

    archive.store.put_file = put_after_a_rewrite
    try:
        pipeline = Pipeline(archive)
        st = clip.stat()
        job_id = pipeline.claim(
            archive.settings.docks[0], Candidate(str(clip), st.st_size, st.st_mtime_ns)
        )
        outcome = pipeline.advance(job_id)
        pipeline.close()
    finally:
        archive.close()
    assert rewritten == [True]
    assert outcome.state == JobState.RELEASED, outcome
    assert outcome.sha256 == hashlib.sha256(second.read_bytes()).hexdigest()
    (row,) = catalog_rows(
        station, "SELECT probe FROM evidence WHERE evidence_id = :e", e=outcome.evidence_id
    )
    assert as_json(row["probe"])["creation_time"].startswith("2026-06-02T09:40:00")
