"""ISO 6709 point strings (ingest/iso6709.py), the media section read from an
ffprobe report (ingest/metadata.py) and the search circle (archive/geo.py):
pure functions, no I/O. Hostile strings give None, never an exception."""

from __future__ import annotations

import math
import random
import string
from datetime import UTC, datetime

import pytest

from archive.geo import Circle, check_radius, haversine_m, parse_point
from ingest.iso6709 import Point, parse_iso6709
from ingest.metadata import MAX_VALUE, media_metadata


@pytest.mark.parametrize(
    ("text", "point"),
    [
        ("+31.2304+121.4737/", Point(31.2304, 121.4737)),
        ("+31.2304+121.4737+012.000/", Point(31.2304, 121.4737, 12.0)),
        ("-33.8688+151.2093-003.5/", Point(-33.8688, 151.2093, -3.5)),
        ("+40.7128-074.0060/", Point(40.7128, -74.006)),
        ("+48.8584+002.2945", Point(48.8584, 2.2945)),  # no closing slash: accepted
        (" +31.2304+121.4737/ ", Point(31.2304, 121.4737)),
        ("+90-180/", Point(90.0, -180.0)),
        ("+4030-07400/", Point(40.5, -74.0)),  # degrees and minutes
        ("+403045.5-0740030/", Point(40 + 30 / 60 + 45.5 / 3600, -(74 + 30 / 3600))),  # DMS
        ("+31.2304+121.4737+12CRSWGS_84/", Point(31.2304, 121.4737, 12.0)),
    ],
)
def test_points_are_read(text, point):
    got = parse_iso6709(text)
    assert got is not None
    assert got.latitude == pytest.approx(point.latitude)
    assert got.longitude == pytest.approx(point.longitude)
    assert got.altitude == point.altitude


@pytest.mark.parametrize(
    "text",
    [
        "",
        "/",
        "31.2304,121.4737",  # decimal pair, not ISO 6709
        "+31.2304/",  # no longitude
        "+91.0000+121.4737/",  # latitude out of range
        "+31.2304+181.0000/",  # longitude out of range
        "+3160-12100/",  # 60 minutes
        "+313060-1210000/",  # 60 seconds
        "+1.5+121.4737/",  # one degree digit
        "+31.2304+21.4737/",  # two longitude degree digits
        "+31.2304+121.4737/junk",
        "+31.2304+121.4737//",
        "+NaN+inf/",
        "+31.2304+121.4737" + "0" * 200 + "/",  # too long
        "+31.2304\x00+121.4737/",
        "＋31.2304＋121.4737/",  # full-width signs
        "+٣١.2304+121.4737/",  # Arabic-Indic digits
        None,
        42,
        b"+31.2304+121.4737/",
        ["+31.2304+121.4737/"],
    ],
)
def test_garbage_is_none(text):
    assert parse_iso6709(text) is None


def test_random_strings_never_raise():
    rng = random.Random(6709)
    alphabet = string.printable + "+-./CRS\x00\u00b0"
    for _ in range(5000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        point = parse_iso6709(text)
        assert point is None or (abs(point.latitude) <= 90 and abs(point.longitude) <= 180)


def _report(fmt_tags: dict, streams: list | None = None, duration: str = "3.000000") -> dict:
    return {"format": {"duration": duration, "tags": fmt_tags}, "streams": streams or []}


def test_media_section_from_tags():
    media = media_metadata(
        _report(
            {
                "creation_time": "2026-03-01T08:30:15.000000Z",
                "location": "+31.2304+121.4737+012.000/",
                "com.apple.quicktime.make": "Apple",
                "com.apple.quicktime.model": "iPhone 15",
                "Serial_Number": "SN-0042",
                "encoder": "Lavf59",
            }
        )
    )
    assert media == {
        "recorded_at": "2026-03-01T08:30:15Z",
        "recorded_at_tag": "creation_time",
        "duration": 3.0,
        "make": "Apple",
        "model": "iPhone 15",
        "serial": "SN-0042",
        "software": "Lavf59",
        "location": {
            "latitude": 31.2304,
            "longitude": 121.4737,
            "altitude": 12.0,
            "tag": "location",
            "text": "+31.2304+121.4737+012.000/",
        },
    }


def test_apple_creationdate_wins_and_keeps_its_zone():
    media = media_metadata(
        _report(
            {
                "creation_time": "2026-05-01T08:00:05Z",
                "com.apple.quicktime.creationdate": "2026-05-01T10:00:00+0200",
            }
        )
    )
    assert media is not None
    assert media["recorded_at"] == "2026-05-01T08:00:00Z"
    assert media["recorded_at_tag"] == "com.apple.quicktime.creationdate"


def test_implausible_time_and_zero_location_are_refused_with_the_reason():
    media = media_metadata(
        _report({"creation_time": "1970-01-01T00:00:00Z", "location": "+00.0000+000.0000/"}),
        now=datetime(2026, 11, 29, tzinfo=UTC),
    )
    assert media is not None
    assert "recorded_at" not in media and "1970" in str(media["recorded_at_problem"])
    assert "location" not in media and "no GPS fix" in str(media["location_problem"])


def test_gps_track_is_named_not_decoded():
    streams = [
        {"index": 0, "codec_type": "video", "tags": {"handler_name": "VideoHandler"}},
        {
            "index": 2,
            "codec_type": "data",
            "codec_tag_string": "gpmd",
            "tags": {"handler_name": "GoPro MET"},
        },
    ]
    media = media_metadata(_report({}, streams))
    assert media is not None
    assert media["gps_tracks"] == [
        {"stream": 2, "codec_tag": "gpmd", "handler": "GoPro MET", "decoded": False}
    ]


@pytest.mark.parametrize(
    "report",
    [
        {},
        {"format": None, "streams": None},
        {"format": "x", "streams": "y"},
        {"format": {"tags": "not a dict", "duration": "NaN"}},
        {"format": {"tags": {1: 2, "make": {"nested": 1}}}, "streams": [None, 5, {"tags": []}]},
        {"format": {"duration": "1e400"}, "streams": [{"codec_type": "data", "index": True}]},
    ],
)
def test_hostile_reports_never_raise(report):
    media = media_metadata(report)
    assert media is None or isinstance(media, dict)


def test_values_are_bounded_and_without_control_characters():
    media = media_metadata(_report({"make": "\x1b[31mEvil\x07" + "A" * 10_000}))
    assert media is not None
    make = str(media["make"])
    assert make.startswith("[31mEvil") and len(make) == MAX_VALUE
    assert not any(ord(c) < 32 for c in make)


def test_haversine_and_the_circle():
    shanghai, beijing = (31.2304, 121.4737), (39.9042, 116.4074)
    assert haversine_m(*shanghai, *beijing) == pytest.approx(1_067_000, rel=0.01)
    near = Circle(*shanghai, 1000)
    assert near.contains(31.2350, 121.4737)  # ~510 m north
    assert not near.contains(31.2404, 121.4737)  # ~1.1 km north
    assert not near.contains(None, None)
    south, north = near.latitude_range()
    ranges = near.longitude_ranges()
    assert ranges is not None and len(ranges) == 1
    west, east = ranges[0]
    assert south < 31.2304 < north and west < 121.4737 < east
    # every point of the circle is in its box: east and west edges at the radius
    for bearing in range(0, 360, 5):
        angular = 1000 / 6_371_008.8
        phi1, lam1, theta = map(math.radians, (shanghai[0], shanghai[1], bearing))
        phi2 = math.asin(
            math.sin(phi1) * math.cos(angular)
            + math.cos(phi1) * math.sin(angular) * math.cos(theta)
        )
        lam2 = lam1 + math.atan2(
            math.sin(theta) * math.sin(angular) * math.cos(phi1),
            math.cos(angular) - math.sin(phi1) * math.sin(phi2),
        )
        lat, lon = math.degrees(phi2), math.degrees(lam2)
        assert south - 1e-9 <= lat <= north + 1e-9 and west - 1e-9 <= lon <= east + 1e-9


def test_the_box_crosses_the_antimeridian_and_covers_the_poles():
    ranges = Circle(0.0, 179.999, 5000).longitude_ranges()
    assert ranges is not None and len(ranges) == 2
    assert Circle(0.0, 179.999, 5000).contains(0.0, -179.999)
    assert Circle(89.99, 0.0, 5000).longitude_ranges() is None


@pytest.mark.parametrize("text", ["31.2,", "a,b", "91,0", "0,181", "1,2,3", "nan,1", ""])
def test_bad_points_and_radii_are_refused(text):
    with pytest.raises(ValueError):
        parse_point(text)
    for radius in (0, -1, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            check_radius(radius)
    assert parse_point(" 31.2304 , 121.4737") == (31.2304, 121.4737)
