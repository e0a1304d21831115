"""The catalog database failing: a wrong password is a configuration error
that never shows the password; the API answers 503 with its stable error body
while PostgreSQL is down, and recovers by itself when it is back."""

from __future__ import annotations

import pytest
from conftest import wait_until

pytestmark = pytest.mark.catalogs("postgresql")

WRONG = "Wr0ng-pa55word-never-printed"


def test_wrong_catalog_password_exits_2_naming_the_problem_not_the_password(station):
    good = station.catalog_url
    station.catalog_url = good.replace(good.split(":")[2].split("@")[0], WRONG)
    assert WRONG in station.catalog_url
    station.write_config()
    for command in (["status"], ["run"], ["serve"], ["ingest", "."]):
        result = station.cli(*command, check=False, timeout=60)
        assert result.returncode == 2, (command, result.stderr)
        assert "password authentication failed" in result.stderr, result.stderr
        assert WRONG not in result.stdout + result.stderr


def test_api_answers_503_while_postgresql_is_down_and_recovers(station, api, pg_server):
    item = station.ingest_bytes("one.bin", b"one item")
    handle = api()
    assert handle.get(f"/v1/evidence/{item['evidence_id']}").status_code == 200
    pg_server.stop("fast")
    try:
        response = handle.get(f"/v1/evidence/{item['evidence_id']}")
        assert response.status_code == 503, response.text
        assert response.json() == {
            "error": {
                "code": "catalog_unavailable",
                "message": "the catalog database did not answer; retry later",
            }
        }
    finally:
        pg_server.start()
    wait_until(
        lambda: handle.get(f"/v1/evidence/{item['evidence_id']}").status_code == 200,
        timeout=30,
        message="the API answering again without a restart",
    )
