"""The witnesses of an item's recording time: the media's own creation_time is
used only when it can be true, and the item counts by name, media, file time,
then sealing time – in that order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from archive.recorded_time import item_time, media_time

NOW = datetime(2026, 11, 30, 4, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("creation_time", "expected", "problem"),
    [
        ("2026-03-02T01:00:00.000000Z", datetime(2026, 3, 2, 1, 0, tzinfo=UTC), None),
        ("2026-03-02T09:00:00+08:00", datetime(2026, 3, 2, 1, 0, tzinfo=UTC), None),
        ("2026-03-02 01:00:00", datetime(2026, 3, 2, 1, 0, tzinfo=UTC), None),  # MP4: UTC
        ("1904-01-01T00:00:00.000000Z", None, "before 2000"),  # a clock never set
        ("1970-01-01T00:00:00Z", None, "before 2000"),
        ("2027-01-01T00:00:00Z", None, "in the future"),
        ("yesterday", None, "not an ISO 8601 time"),
        (None, None, None),
    ],
)
def test_media_creation_time_is_used_only_when_plausible(creation_time, expected, problem):
    value, why = media_time({"creation_time": creation_time}, now=NOW)
    assert value == expected
    assert (why is None) if problem is None else (problem in why)


def test_no_probe_no_media_time():
    assert media_time(None, now=NOW) == (None, None)


def test_the_witnesses_in_order():
    name, media, mtime = (datetime(2026, 3, d, tzinfo=UTC) for d in (1, 2, 3))
    sealed = NOW - timedelta(days=1)
    assert item_time(name, media, mtime, sealed) == (name, "name")
    assert item_time(None, media, mtime, sealed) == (media, "media")
    assert item_time(None, None, mtime, sealed) == (mtime, "file_mtime")
    assert item_time(None, None, None, sealed) == (sealed, "sealed")
