"""The web pages in a real browser (Debian's headless Chromium through
selenium, set up as in test_share_browser): the 公示 page and its checkpoint,
verify-your-copy hashing a real file locally, and the auditor console's login,
search, item page and logout. Screenshots are kept under each test's tmp
folder (paths printed); the ones in docs/ are copies of these."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import time
from pathlib import Path

import httpx
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.expected_conditions import staleness_of
from selenium.webdriver.support.wait import WebDriverWait

from archive.note import open_checkpoint, parse_vkey
from tests import test_share_browser
from tests.conftest import wait_until

browser = test_share_browser.browser  # the fixture: Debian chromium, offline
shot = test_share_browser.shot

OFFICER = "张警官"


def _names(driver, css: str) -> list[str]:
    return [e.text for e in driver.find_elements(By.CSS_SELECTOR, css)]


def _accessible(driver) -> None:
    """Basic checks: one h1, every input has a label, the page has a language."""
    assert len(driver.find_elements(By.TAG_NAME, "h1")) == 1
    assert "built-in method" not in driver.page_source
    assert driver.find_element(By.TAG_NAME, "html").get_attribute("lang")
    for field in driver.find_elements(By.CSS_SELECTOR, "input:not([type=hidden])"):
        field_id = field.get_attribute("id")
        assert field_id and driver.find_elements(By.CSS_SELECTOR, f"label[for='{field_id}']"), (
            field.get_attribute("outerHTML")
        )


def test_every_template_string_is_in_the_catalogue_in_both_languages():
    import re

    from frontdoors.api import web

    used = set()
    for template in web.TEMPLATES.loader.searchpath:
        for path in Path(template).glob("*.html"):
            used |= set(re.findall(r"\bt\.(\w+)", path.read_text(encoding="utf-8")))
    assert used and used <= set(web.CATALOGUE), used - set(web.CATALOGUE)
    for key, (zh, en) in web.CATALOGUE.items():
        assert zh and en, key


def test_sha256_js_matches_nist_vectors_and_hashlib(station, api, browser):
    handle = api()
    browser.get(handle.url + "/verify")
    vectors = browser.execute_script(
        """
        function hex(parts) { var h = new StrongroomSHA256.Hasher();
          parts.forEach(function (p) { h.update(p); }); return h.hex(); }
        var enc = new TextEncoder();
        var a = new Uint8Array(1000000).fill(97);
        var pattern = new Uint8Array(200003);
        for (var i = 0; i < pattern.length; i++) pattern[i] = (i * 31 + 7) & 255;
        var sizes = [1, 63, 64, 65, 55, 56, 57, 119, 120, 4096, 100000], parts = [], off = 0, k = 0;
        while (off < pattern.length) { var n = sizes[k++ % sizes.length];
          parts.push(pattern.subarray(off, off + n)); off += n; }
        return {empty: hex([]), abc: hex([enc.encode("abc")]),
                million: hex([a.subarray(0, 333333), a.subarray(333333)]),
                two: hex([enc.encode(
                  "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")]),
                pattern: hex(parts)};
        """
    )
    assert vectors["empty"] == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert vectors["abc"] == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert vectors["million"] == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"
    assert vectors["two"] == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
    pattern = bytes((i * 31 + 7) & 255 for i in range(200003))
    assert vectors["pattern"] == hashlib.sha256(pattern).hexdigest()


def _upload(browser, path: Path) -> dict:
    browser.find_element(By.ID, "file").send_keys(str(path))
    outcome = wait_until(
        lambda: browser.find_element(By.ID, "result").get_attribute("data-outcome"),
        timeout=240,
        interval=0.5,
        message="the page to hash the file and ask the archive",
    )
    return {
        "outcome": outcome,
        "computed": browser.find_element(By.ID, "computed").text,
        "text": browser.find_element(By.ID, "result").text,
    }


def test_verify_your_copy_hashes_a_real_file_locally(station, api, browser, tmp_path):
    size = int(os.environ.get("STRONGROOM_VERIFY_MB", "200")) * 1024 * 1024
    original = tmp_path / "copy.MP4"
    digest = hashlib.sha256()
    with original.open("wb") as out:
        for _ in range(size // (4 << 20)):
            block = os.urandom(4 << 20)
            digest.update(block)
            out.write(block)
    sha = digest.hexdigest()
    source = station.root / "incoming" / "ABC1234_012345_20260301083015_0001.MP4"
    source.parent.mkdir(exist_ok=True)
    source.write_bytes(original.read_bytes()) if size <= 64 << 20 else os.link(original, source)
    station.cli("ingest", str(source))
    station.cli("ledger", "checkpoint")
    handle = api()

    browser.get(handle.url + "/verify")
    _accessible(browser)
    started = time.monotonic()
    seen = _upload(browser, original)
    seconds = time.monotonic() - started
    print(f"hashed {size / 2**20:.0f} MiB in the browser in {seconds:.1f} s")
    assert seen["computed"] == sha
    assert seen["outcome"] == "match"
    assert "✔" in seen["text"]  # the server checked the signed manifest
    assert "sealed" in seen["text"]  # the ledger leaf of the sealing event
    result = browser.find_element(By.ID, "result")
    assert result.get_attribute("data-proof-checked") == "true"  # RFC 9162, in the page
    answer = httpx.get(f"{handle.url}/v1/public/lookup/{sha}").json()
    leaf = answer["proof"]["leaves"][0]
    tampered = browser.execute_script(
        """var P = window.StrongroomProof, cp = P.checkpointBody(arguments[0]), l = arguments[1];
        var bad = l.inclusion_proof.slice();
        bad[0] = bad[0].replace(/^./, c => c === "0" ? "1" : "0");
        var v = P.verifyInclusion;
        return [v(l.leaf_hash, l.index, cp.size, l.inclusion_proof, cp.root),
                v(l.leaf_hash, l.index, cp.size, bad, cp.root),
                v(l.leaf_hash, l.index + 1, cp.size, l.inclusion_proof, cp.root)];""",
        answer["checkpoint"],
        leaf,
    )
    assert tampered == [True, False, False]
    checkpoint = browser.find_element(By.CSS_SELECTOR, "pre.checkpoint").text
    assert checkpoint.strip() == httpx.get(handle.url + "/checkpoint").text.strip()
    assert OFFICER not in browser.page_source and "ABC1234" not in browser.page_source
    shot(browser, tmp_path, "verify-match")

    with original.open("r+b") as f:  # one changed byte
        f.seek(size // 2)
        byte = f.read(1)
        f.seek(size // 2)
        f.write(bytes([byte[0] ^ 1]))
    browser.get(handle.url + "/verify")
    seen = _upload(browser, original)
    assert seen["outcome"] == "no-match"
    assert seen["computed"] != sha
    with original.open("rb") as f:
        assert seen["computed"] == hashlib.file_digest(f, "sha256").hexdigest()
    shot(browser, tmp_path, "verify-no-match")


def test_lookup_answers_by_hash_only_and_guards_itself(station, api):
    item = station.ingest_bytes("ABC1234_012345_20260301090000_0002.MP4", b"y" * 70_000)
    station.cli("ledger", "checkpoint")
    handle = api("public_lookups_per_minute = 5\n")
    answer = httpx.get(f"{handle.url}/v1/public/lookup/{item['sha256'].upper()}").json()
    assert answer["archived"] is True and answer["manifest"]["verified"] is True
    assert answer["proof"]["leaves"] and "leaf" not in answer["proof"]["leaves"][0]
    assert "ABC1234" not in str(answer) and item["evidence_id"] not in str(answer)
    missing = httpx.get(f"{handle.url}/v1/public/lookup/{'0' * 64}")
    assert missing.status_code == 200 and missing.json() == {"sha256": "0" * 64, "archived": False}
    for bad in ("abc", "g" * 64, "0" * 65):
        reply = httpx.get(f"{handle.url}/v1/public/lookup/{bad}")
        assert reply.status_code == 422, bad
        assert reply.json()["error"]["code"] == "invalid_request"
    codes = [httpx.get(f"{handle.url}/v1/public/lookup/{'1' * 64}").status_code for _ in range(5)]
    assert codes == [429] * 5  # the 5 lookups above (malformed ones too) used the minute
    assert httpx.get(f"{handle.url}/v1/public/lookup/{'1' * 64}").headers["retry-after"] == "60"


def test_lookup_shows_details_only_when_the_operator_says_so(station, api):
    item = station.ingest_bytes("ABC1234_012345_20260301090000_0003.MP4", b"z" * 30_000)
    handle = api("public_show_details = true\n")
    answer = httpx.get(f"{handle.url}/v1/public/lookup/{item['sha256']}").json()
    assert answer["file_name"] == "ABC1234_012345_20260301090000_0003.MP4"
    assert answer["manifest"]["envelope"]["payloadType"]


def test_public_page_publishes_a_checkpoint_that_verifies(station, api, browser, tmp_path):
    for n in range(3):
        station.ingest_bytes(f"ABC1234_012345_2026030109000{n}_000{n}.MP4", bytes([n]) * 20_000)
    station.cli("ledger", "checkpoint")
    handle = api()
    browser.get(handle.url + "/public")
    _accessible(browser)
    note = browser.find_element(By.ID, "checkpoint").text + "\n"
    vkey = browser.find_element(By.ID, "vkey").text
    name, public_key = parse_vkey(vkey)
    checkpoint, signers = open_checkpoint(note, {name: public_key})
    assert signers == [name] and checkpoint.size > 0
    plain = httpx.get(handle.url + "/checkpoint")
    assert plain.status_code == 200 and plain.headers["content-type"].startswith("text/plain")
    assert open_checkpoint(plain.text, {name: public_key})[0].size == checkpoint.size
    assert browser.find_element(By.ID, "fingerprint").text
    items = sum(int(x) for x in _names(browser, "#stats td.items"))
    assert items == 3
    rows = list(csv.DictReader(io.StringIO(httpx.get(handle.url + "/public/stats.csv").text)))
    assert sum(int(r["items"]) for r in rows) == 3
    assert set(rows[0]) == {"unit", "month", "items", "recorded_hours", "within_deadline_share"}
    assert "ABC1234" not in browser.page_source
    shot(browser, tmp_path, "public-zh")
    browser.get(handle.url + "/public?lang=en")
    assert browser.find_element(By.TAG_NAME, "h1").text.startswith("Transparency")
    browser.get(handle.url + "/verify")  # the choice is kept for the other pages
    assert browser.find_element(By.TAG_NAME, "h1").text == "Verify your copy"
    shot(browser, tmp_path, "public-en")


def _login(browser, url: str, token: str) -> None:
    browser.get(url + "/console/login")
    browser.find_element(By.ID, "token").send_keys(token)
    form = browser.find_element(By.ID, "login")
    browser.find_element(By.CSS_SELECTOR, "#login button").click()
    WebDriverWait(browser, 30).until(staleness_of(form))  # the next page has loaded


def test_console_login_search_item_logout(station, api, browser, tmp_path):
    first = station.ingest_bytes("ABC1234_012345_20260301090000_0004.MP4", b"a" * 40_000)
    second = station.ingest_bytes("XYZ9999_067890_20260302100000_0005.MP4", b"b" * 40_000)
    station.cli("ledger", "checkpoint")
    handle = api(scoped={"police-auditor": ("auditor", ["police"])})

    browser.get(handle.url + "/console")  # no session: the login page
    assert browser.find_elements(By.ID, "login")
    _accessible(browser)
    shot(browser, tmp_path, "console-login")
    _login(browser, handle.url, handle.tokens["case-system"])  # not an audit role
    assert browser.find_elements(By.ID, "error") and browser.find_elements(By.ID, "login")
    # an audit role limited to some units: the console does not filter by unit yet
    _login(browser, handle.url, handle.tokens["police-auditor"])
    assert browser.find_elements(By.ID, "error") and browser.find_elements(By.ID, "login")
    browser.get(handle.url + "/console/login")  # by keyboard only: type, Enter
    form = browser.find_element(By.ID, "login")
    browser.find_element(By.ID, "token").send_keys(handle.tokens["auditor"], Keys.ENTER)
    WebDriverWait(browser, 30).until(staleness_of(form))
    assert browser.find_elements(By.ID, "logout"), browser.page_source[-800:]
    cookie = browser.get_cookie("sr_console")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert handle.tokens["auditor"] not in cookie["value"]

    browser.find_element(By.ID, "f-sha256").send_keys(second["sha256"])
    button = browser.find_element(By.CSS_SELECTOR, "#search button")
    button.click()
    WebDriverWait(browser, 30).until(staleness_of(button))
    found = [
        r.get_attribute("data-evidence-id")
        for r in browser.find_elements(By.CSS_SELECTOR, "#results tbody tr")
    ]
    assert found == [second["evidence_id"]]
    _accessible(browser)
    browser.get(handle.url + "/console?since=yesterday")  # a bad filter: said on the page
    assert "not a valid time" in browser.find_element(By.ID, "error").text
    browser.get(handle.url + "/console")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#results tbody tr")) == 2
    shot(browser, tmp_path, "console-search")

    link = browser.find_element(By.LINK_TEXT, first["evidence_id"])
    link.click()
    WebDriverWait(browser, 30).until(staleness_of(link))
    assert browser.find_element(By.ID, "evidence-id").text == first["evidence_id"]
    kinds = [
        e.get_attribute("data-kind") for e in browser.find_elements(By.CSS_SELECTOR, "tr.event")
    ]
    assert "sealed" in kinds
    assert browser.find_element(By.ID, "checkpoint").text.strip()
    shot(browser, tmp_path, "console-item")
    for page in ("status", "report"):
        browser.get(f"{handle.url}/console/{page}")
        assert browser.find_elements(By.ID, "logout"), page
        shot(browser, tmp_path, f"console-{page}")

    button = browser.find_element(By.ID, "logout")
    button.click()
    WebDriverWait(browser, 30).until(staleness_of(button))
    assert browser.find_elements(By.ID, "login")
    browser.get(handle.url + "/console")  # the old session is gone
    assert browser.find_elements(By.ID, "login")

    # a wrong session cookie: the login page, 401
    reply = httpx.get(handle.url + "/console", cookies={"sr_console": "forged"})
    assert reply.status_code == 401 and 'id="login"' in reply.text
    # a login without the form's CSRF token is refused
    reply = httpx.post(handle.url + "/console/login", data={"token": handle.tokens["admin"]})
    assert reply.status_code == 403 and "sr_console=" not in reply.headers.get("set-cookie", "")


def test_console_session_expires_to_the_login_page(station, api, browser, monkeypatch):
    from frontdoors.api import routes_console

    handle = api()  # served in this process: the lifetime below applies to it
    monkeypatch.setattr(routes_console, "SESSION_SECONDS", 2)
    _login(browser, handle.url, handle.tokens["admin"])
    assert browser.find_elements(By.ID, "logout")
    sid = browser.get_cookie("sr_console")["value"]
    time.sleep(2.5)
    browser.get(handle.url + "/console/status")
    assert browser.find_elements(By.ID, "login") and not browser.find_elements(By.ID, "logout")
    # the server forgot it too: the old cookie presented by hand is refused
    reply = httpx.get(handle.url + "/console/status", cookies={"sr_console": sid})
    assert reply.status_code == 401 and 'id="login"' in reply.text


def test_console_item_plays_its_copy_and_records_the_views(station, api, browser, tmp_path):
    from tests import media_clips

    clip = media_clips.make_h264_mp4(tmp_path / "ABC1234_012345_20260301083015_0001.MP4")
    out = station.cli("ingest", str(clip), "--playback", "--json").stdout
    evidence_id = json.loads(out)["items"][0]["evidence_id"]
    handle = api()
    _login(browser, handle.url, handle.tokens["auditor"])
    browser.get(f"{handle.url}/console/item/{evidence_id}")
    video = browser.find_element(By.CSS_SELECTOR, "video")
    browser.execute_script("arguments[0].muted = true; arguments[0].play();", video)
    wait_until(
        lambda: browser.execute_script("return arguments[0].currentTime;", video) > 0.3,
        timeout=30,
        message="the playback copy to play",
    )
    assert browser.execute_script("return arguments[0].error;", video) is None
    browser.get(f"{handle.url}/console/item/{evidence_id}")
    kinds = [
        r.get_attribute("data-kind") for r in browser.find_elements(By.CSS_SELECTOR, "tr.event")
    ]
    assert "viewed" in kinds and "playback_issued" in kinds, kinds


def test_public_statistics_are_cached_and_console_search_pages(station, api, browser, monkeypatch):
    from frontdoors.api import routes_console, routes_public

    first = station.ingest_bytes("ABC1234_012345_20260301090000_0006.MP4", b"c" * 10_000)
    handle = api()  # in this process: the settings below apply to it

    def total() -> int:
        text = httpx.get(handle.url + "/public/stats.csv").text
        return sum(int(r["items"]) for r in csv.DictReader(io.StringIO(text)))

    assert total() == 1
    second = station.ingest_bytes("ABC1234_012345_20260401090000_0007.MP4", b"d" * 10_000)
    assert total() == 1  # cached
    monkeypatch.setattr(routes_public, "STATS_SECONDS", 0.0)
    assert total() == 2

    monkeypatch.setattr(routes_console, "PAGE", 1)
    _login(browser, handle.url, handle.tokens["admin"])
    seen = []
    for _ in range(2):
        rows = browser.find_elements(By.CSS_SELECTOR, "#results tbody tr")
        assert len(rows) == 1
        seen.append(rows[0].get_attribute("data-evidence-id"))
        following = browser.find_elements(By.ID, "next")
        if following:
            following[0].click()
            WebDriverWait(browser, 30).until(staleness_of(rows[0]))
    assert seen == [first["evidence_id"], second["evidence_id"]]
    assert not browser.find_elements(By.ID, "next")
