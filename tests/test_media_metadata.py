"""Issue 19 part 1: what each recording says about itself (start time, device,
place) is read at intake into the signed manifest and the catalog, and can be
searched (``find --near/--radius``, ``--recorded-since/--recorded-until``, the
same in ``GET /v1/evidence``).

Real clips made by ffmpeg with real tags, a real store, both catalogs. A
broken file is archived all the same, without metadata, and the log names it.
"""

from __future__ import annotations

import base64
import json
import sqlite3
from pathlib import Path

import pytest

from tests import media_clips
from tests.conftest import start_api

pytestmark = pytest.mark.catalogs("sqlite", "postgresql")

SHANGHAI = "31.2304,121.4737"
#: name → (ISO 6709 location, creation_time, extra ffmpeg arguments, suffix)
CLIPS = {
    "near": ("+31.2304+121.4737/", "2026-05-01T08:30:00Z", ("-metadata", "make=Acme"), ".mp4"),
    # ~510 m north of "near", with an altitude, in a MOV
    "north": ("+31.2350+121.4737+012.000/", "2026-05-20T09:00:00Z", (), ".mov"),
    # inside the 1 km circle's bounding box but ~1.2 km away: only the exact test drops it
    "corner": ("+31.2379+121.4827/", "2026-05-02T10:00:00Z", (), ".mp4"),
    # Beijing, ~1,067 km away
    "far": ("+39.9042+116.4074/", "2026-06-01T07:00:00Z", (), ".mp4"),
}


def make_clip(path: Path, location: str, created: str, extra: tuple[str, ...]) -> Path:
    """A 1 s clip with a creation time, an ISO 6709 location and make/model tags."""
    flags = ["-movflags", "use_metadata_tags"] if path.suffix == ".mp4" else []
    media_clips.ffmpeg(
        *("-f", "lavfi", "-i", "testsrc2=size=160x120:rate=10:duration=1"),
        *("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-threads", "1"),
        *("-metadata", f"creation_time={created}", "-metadata", f"location={location}"),
        *("-metadata", "model=BWC-9", "-metadata", "serial_number=SN-0042", *extra),
        *flags,
        str(path),
    )
    return path


@pytest.fixture(scope="module")
def archived(module_station, tmp_path_factory):
    """The four clips, a truncated one (moov cut off) and a non-media file, ingested once."""
    station = module_station
    drop = tmp_path_factory.mktemp("drop")
    for name, (location, created, extra, suffix) in CLIPS.items():
        make_clip(drop / f"{name}{suffix}", location, created, extra)
    whole = make_clip(
        tmp_path_factory.mktemp("src") / "whole.mp4", "+31.2304+121.4737/", CLIPS["near"][1], ()
    )
    media_clips.make_truncated_mp4(drop / "broken.mp4", whole)
    (drop / "notes.bin").write_bytes(b"no media here " * 100)
    result = station.cli("ingest", str(drop), "--json")
    items = json.loads(result.stdout)["items"]
    ids = {Path(item["file"]).stem: item["evidence_id"] for item in items}
    assert len(ids) == 6 and all(ids.values()), items
    return station, ids, result.stderr


def found(station, *args: str) -> set[str]:
    return {
        i["evidence_id"] for i in json.loads(station.cli("find", *args, "--json").stdout)["items"]
    }


def names(ids: dict[str, str], got: set[str]) -> set[str]:
    by_id = {v: k for k, v in ids.items()}
    return {by_id[i] for i in got}


def test_show_carries_what_the_file_says(archived):
    station, ids, _ = archived
    shown = json.loads(station.cli("show", ids["near"], "--json").stdout)
    media = shown["media"]
    assert media["recorded_at"] == "2026-05-01T08:30:00Z"
    assert (media["make"], media["model"], media["serial"]) == ("Acme", "BWC-9", "SN-0042")
    assert media["location"]["latitude"] == 31.2304 and media["location"]["longitude"] == 121.4737
    assert media["duration"] == pytest.approx(1.0, abs=0.1)
    north = json.loads(station.cli("show", ids["north"], "--json").stdout)["media"]
    assert north["location"]["altitude"] == 12.0 and north["location"]["tag"] == "location"
    text = station.cli("show", ids["near"], env={"COLUMNS": "120"}).stderr
    assert "metadata" in text and "31.2304, 121.4737" in text and "BWC-9" in text


def test_a_broken_file_is_archived_without_metadata_and_named_in_the_log(archived):
    station, ids, log = archived
    for name in ("broken", "notes"):
        shown = json.loads(station.cli("show", ids[name], "--json").stdout)
        assert shown["state"] == "sealed" and shown["media"] is None
    assert "broken.mp4: no media metadata" in log, log


def test_find_near_keeps_the_circle_and_drops_the_box_corner(archived):
    station, ids, _ = archived
    got = found(station, "--near", SHANGHAI, "--radius", "1000")
    assert names(ids, got) == {"near", "north"}
    assert names(ids, found(station, "--near", SHANGHAI, "--radius", "1300")) == {
        "near",
        "north",
        "corner",
    }
    assert "far" in names(ids, found(station, "--near", SHANGHAI, "--radius", "1100000"))
    assert names(ids, found(station, "--near", "39.9,116.4", "--radius", "5000")) == {"far"}


def test_find_by_the_files_own_recording_time(archived):
    station, ids, _ = archived
    assert names(ids, found(station, "--recorded-since", "2026-05-15")) == {"north", "far"}
    assert names(ids, found(station, "--recorded-until", "2026-05-15")) == {"near", "corner"}
    both = found(
        station,
        "--recorded-since",
        "2026-05-01T08:30:00Z",
        "--recorded-until",
        "2026-05-02",
        "--near",
        SHANGHAI,
        "--radius",
        "2000",
    )
    assert names(ids, both) == {"near"}


@pytest.mark.parametrize(
    "args",
    [
        ("--near", "31.2,121.4"),  # no radius
        ("--radius", "10"),  # no point
        ("--near", "91,0", "--radius", "10"),
        ("--near", "nowhere", "--radius", "10"),
        ("--near", SHANGHAI, "--radius", "-5"),
        ("--recorded-since", "yesterday"),
        ("--since", "yesterday"),  # the code the time options have always had
    ],
)
def test_bad_search_values_are_usage_errors(archived, args):
    station, _, _ = archived
    result = station.cli("find", *args, check=False)
    assert result.returncode == 2, result
    assert "Invalid value" in result.stderr


def _payload(station, evidence_id: str) -> dict:
    shown = json.loads(station.cli("show", evidence_id, "--json").stdout)
    envelope = station.s3.get_object(
        Bucket=station.bucket, Key=shown["manifest_key"], VersionId=shown["manifest_version_id"]
    )["Body"].read()
    return json.loads(base64.b64decode(json.loads(envelope)["payload"]))


def test_the_signed_manifest_carries_it_and_verifies_offline(archived, tmp_path):
    station, ids, _ = archived
    payload = _payload(station, ids["near"])
    assert payload["media"]["location"]["text"] == "+31.2304+121.4737/"
    assert payload["media"]["recorded_at"] == "2026-05-01T08:30:00Z"
    assert "media" not in _payload(station, ids["broken"])  # as manifests were before
    out = tmp_path / "bundle"
    station.cli("export", ids["near"], ids["broken"], "-o", str(out))
    key = tmp_path / "station.pem"
    key.write_bytes(next((out / "data" / "keys").glob("*.pem")).read_bytes())
    report = json.loads(
        station.cli("verify-bundle", str(out), "--pubkey", str(key), "--json").stdout
    )
    assert report["ok"], report


def test_rebuild_restores_the_metadata_columns(archived, tmp_path):
    station, ids, _ = archived
    target = tmp_path / "rebuilt.db"
    result = station.cli("catalog", "rebuild", "--into", str(target), "--json")
    assert json.loads(result.stdout)["items"] == len(ids)
    rebuilt = sqlite3.connect(target)
    rows = {
        r[0]: r[1:]
        for r in rebuilt.execute(
            "SELECT evidence_id, recorded_at, latitude, longitude, media FROM evidence"
        )
    }
    rebuilt.close()
    assert rows[ids["near"]][1:3] == (31.2304, 121.4737)
    assert rows[ids["near"]][0].startswith("2026-05-01 08:30:00")
    assert json.loads(rows[ids["north"]][3])["location"]["altitude"] == 12.0
    assert rows[ids["broken"]][:3] == (None, None, None)
    on_rebuilt = {"STRONGROOM_CATALOG__URL": f"sqlite:///{target}"}
    got = {
        i["evidence_id"]
        for i in json.loads(
            station.cli(
                "find", "--near", SHANGHAI, "--radius", "1000", "--json", env=on_rebuilt
            ).stdout
        )["items"]
    }
    assert names(ids, got) == {"near", "north"}


def test_the_api_searches_the_same_way_within_the_scope(archived):
    station, ids, _ = archived
    api = start_api(station, scoped={"other-agency": ("case-system", ["ZZ"])})
    try:

        def search(role: str = "case-system", **params) -> set[str]:
            response = api.get("/v1/evidence", role, params=params)
            assert response.status_code == 200, response.text
            return {i["evidence_id"] for i in response.json()["items"]}

        assert names(ids, search(near=SHANGHAI, radius=1000)) == {"near", "north"}
        assert names(ids, search(recorded_since="2026-05-15T00:00:00Z")) == {"north", "far"}
        assert names(ids, search(recorded_until="2026-05-15T00:00:00")) == {"near", "corner"}
        assert search("other-agency", near=SHANGHAI, radius=1000) == set()
        # a page at a time: the cursor never skips nor repeats a kept item
        seen, cursor = [], None
        while True:
            params = {"near": SHANGHAI, "radius": 1300, "limit": 1}
            response = api.get(
                "/v1/evidence", params={**params, **({"cursor": cursor} if cursor else {})}
            ).json()
            seen += [i["evidence_id"] for i in response["items"]]
            cursor = response["next_cursor"]
            if not cursor:
                break
        assert len(seen) == len(set(seen)) and names(ids, set(seen)) == {"near", "north", "corner"}
        for bad in ({"near": SHANGHAI}, {"radius": 5}, {"near": "x,y", "radius": 5}):
            response = api.get("/v1/evidence", params=bad)
            assert response.status_code == 422
            assert response.json()["error"]["code"] == "invalid_request"
        detail = api.get(f"/v1/evidence/{ids['near']}").json()
        assert detail["media"]["location"]["latitude"] == 31.2304
        assert detail["media"]["make"] == "Acme"
    finally:
        api.stop()
