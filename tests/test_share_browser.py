"""The share page in a real browser: Debian's headless Chromium driven by
selenium through Debian's chromedriver – nothing is downloaded at run time
(selenium-manager is kept offline). The page lists the items, the <video>
plays (its currentTime advances), a downloaded original hashes to its SHA-256,
and after revocation the page answers 410. Screenshots of each page are kept
under the test's tmp folder (their paths are printed)."""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from tests import media_clips
from tests.conftest import wait_until

CASE = "刑案-2026-0123"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--autoplay-policy=no-user-gesture-required",
)


@pytest.fixture
def browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SE_OFFLINE", "true")  # selenium-manager never fetches a driver
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument("--window-size=1200,1000")
    options.add_experimental_option(
        "prefs",
        {
            "download.default_directory": str(downloads),
            "download.prompt_for_download": False,
            "safebrowsing.enabled": False,
        },
    )
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.downloads = downloads  # type: ignore[attr-defined]
    try:
        yield driver
    finally:
        driver.quit()


def shot(driver, tmp_path: Path, name: str) -> Path:
    path = tmp_path / "screenshots" / f"{name}.png"
    path.parent.mkdir(exist_ok=True)
    driver.save_screenshot(str(path))
    print(f"screenshot: {path}")
    return path


def test_share_page_plays_downloads_and_dies_in_chromium(station, api, browser, tmp_path):
    clip = media_clips.make_h264_mp4(tmp_path / "ABC1234_012345_20260301083015_0001.MP4")
    sha_clip = hashlib.sha256(clip.read_bytes()).hexdigest()
    out = json.loads(station.cli("ingest", str(clip), "--playback", "--json").stdout)
    (item,) = out["items"]
    assert item["sha256"] == sha_clip
    other = station.ingest_bytes("ABC1234_012345_20260301090000_0002.MP4", b"x" * 50_000)
    for evidence_id in (item["evidence_id"], other["evidence_id"]):
        station.cli("link", CASE, evidence_id, "--reason", "审查起诉")
    handle = api()
    created = json.loads(
        station.cli(
            "share",
            "create",
            "--case",
            CASE,
            "--to",
            "某某律师事务所 / defence",
            "--expires",
            "14d",
            "--allow",
            "download",
            "--receipt",
            str(tmp_path / "r.pdf"),
            "--base-url",
            handle.url,
            "--json",
        ).stdout
    )
    url = created["url"]

    browser.get(url)
    sections = browser.find_elements(By.CSS_SELECTOR, "section.item")
    assert {s.get_attribute("data-evidence-id") for s in sections} == {
        item["evidence_id"],
        other["evidence_id"],
    }
    hashes = {e.text for e in browser.find_elements(By.CSS_SELECTOR, "code.sha256")}
    assert hashes == {item["sha256"], other["sha256"]}

    video = browser.find_element(
        By.CSS_SELECTOR, f"section[data-evidence-id='{item['evidence_id']}'] video"
    )
    browser.execute_script("arguments[0].muted = true; arguments[0].play();", video)
    first = wait_until(
        lambda: (
            (t := browser.execute_script("return arguments[0].currentTime;", video)) > 0.3 and t
        ),
        timeout=30,
        message="the video to play",
    )
    time.sleep(0.5)
    later = browser.execute_script("return arguments[0].currentTime;", video)
    assert later > first, (first, later)
    assert browser.execute_script("return arguments[0].error;", video) is None
    shot(browser, tmp_path, "share-page")
    browser.set_window_size(412, 915)  # a phone
    shot(browser, tmp_path, "share-page-phone")
    browser.set_window_size(1200, 1000)

    link = browser.find_element(
        By.CSS_SELECTOR, f"section[data-evidence-id='{item['evidence_id']}'] a.download"
    )
    link.click()
    target = browser.downloads / "ABC1234_012345_20260301083015_0001.MP4"  # type: ignore[attr-defined]
    wait_until(
        lambda: target.exists() and not list(browser.downloads.glob("*.crdownload")),  # type: ignore[attr-defined]
        timeout=30,
        message="the download",
    )
    assert hashlib.sha256(target.read_bytes()).hexdigest() == item["sha256"]

    station.cli("share", "revoke", created["share_id"])
    browser.get(url)
    assert "no longer valid" in browser.find_element(By.TAG_NAME, "body").text
    assert item["sha256"] not in browser.page_source
    shot(browser, tmp_path, "share-revoked")
    path = urlsplit(url).path
    assert handle.get(path, role=None).status_code == 410

    kinds = {}
    from sqlalchemy import select

    from archive.models import CustodyEvent

    with handle.archive.db.session() as s:
        for e in s.scalars(select(CustodyEvent).where(CustodyEvent.kind.like("share_%"))):
            kinds.setdefault(e.kind, []).append(e)
    assert {e.evidence_id for e in kinds["share_played"]} == {item["evidence_id"]}
    assert [e.evidence_id for e in kinds["share_downloaded"]] == [item["evidence_id"]]
    assert all(e.details["client"] == "127.0.0.1" for e in kinds["share_played"])
