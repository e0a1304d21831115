"""The chain-of-custody report: the PDF's text holds every custody event and
every hash; a tampered item is FAILED on page 1 with every failing check;
Chinese text is set in an embedded CJK font and renders as glyphs; issuing a
report is a report_issued event carrying the file's SHA-256; an unknown id is
named and exits 1. CSV and JSON come from the same document."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import select, update

from archive.models import CustodyEvent
from tests.test_fixity import add_playback_copy
from tests.test_ledger import ingest_files

CASE = "刑案-2026-0042"
REASON = "法制审核 调取"


def pdftotext(path: Path, *pages: int) -> str:
    args = ["pdftotext", "-layout"]
    if pages:
        args += ["-f", str(pages[0]), "-l", str(pages[-1])]
    return subprocess.run(
        [*args, str(path), "-"], capture_output=True, text=True, check=True
    ).stdout


def events_of(station, evidence_id: str) -> list[CustodyEvent]:
    archive = station.archive()
    try:
        with archive.db.session() as s:
            return list(
                s.scalars(
                    select(CustodyEvent)
                    .where(CustodyEvent.evidence_id == evidence_id)
                    .order_by(CustodyEvent.seq)
                )
            )
    finally:
        archive.close()


@pytest.fixture
def case_items(station, tmp_path):
    items = ingest_files(station, tmp_path, 2)
    archive = station.archive()
    try:
        add_playback_copy(archive, items[0]["evidence_id"], b"playback " * 4000)
    finally:
        archive.close()
    for item in items:
        station.cli("link", CASE, item["evidence_id"], "--reason", REASON)
    station.cli("fixity")
    return items


def test_pdf_holds_every_event_and_hash_and_is_recorded(station, tmp_path, case_items):
    out = tmp_path / "report.pdf"
    result = station.cli("custody-report", "--case", CASE, "-o", str(out), "--json")
    summary = json.loads(result.stdout)
    assert summary["ok"] and all(i["verdict"] == "ok" for i in summary["items"])
    data = out.read_bytes()
    assert data.startswith(b"%PDF") and summary["sha256"] == hashlib.sha256(data).hexdigest()

    text = pdftotext(out)
    flat = " ".join(text.split())
    for item in case_items:
        assert item["sha256"] in flat
        events = [e for e in events_of(station, item["evidence_id"]) if e.kind != "report_issued"]
        assert len(events) >= 4
        for event in events:
            # every event: its ledger index, its kind, its station-time stamp
            line = next(
                (
                    ln
                    for ln in text.splitlines()
                    if f" {event.kind} " in f" {ln} "
                    and ln.strip().startswith(str(event.ledger_index))
                ),
                None,
            )
            assert line is not None, f"event {event.kind} (leaf {event.ledger_index}) missing"
            assert "verified" in line
    copy_sha = hashlib.sha256(b"playback " * 4000).hexdigest()
    assert copy_sha in flat
    assert CASE in flat and REASON in flat  # Chinese text comes back out of the PDF

    # the issuing is in the ledger, with the SHA-256 of exactly these bytes
    for item in case_items:
        issued = [e for e in events_of(station, item["evidence_id"]) if e.kind == "report_issued"]
        assert [e.details["report_sha256"] for e in issued] == [summary["sha256"]]
        assert issued[0].details["scope"] == {"case": CASE}


def test_tampered_item_is_failed_on_page_one_with_every_check(station, tmp_path, case_items):
    victim, good = case_items
    station.s3.put_object(Bucket=station.bucket, Key=victim["original_key"], Body=b"forged")
    # the manifest is replaced too: a second failing check that page 1 must also list
    station.s3.put_object(Bucket=station.bucket, Key=victim["manifest_key"], Body=b"{}")
    out = tmp_path / "report.pdf"
    result = station.cli("custody-report", "--case", CASE, "-o", str(out), check=False)
    assert result.returncode == 1
    assert f"FAILED {victim['evidence_id']} [original.current_version]" in result.stderr

    page1 = " ".join(pdftotext(out, 1).split())
    assert victim["evidence_id"] in page1 and good["evidence_id"] in page1
    for check in ("original.current_version", "manifest.current_version", "manifest.signature"):
        assert f"[{check}]" in page1, (check, page1)
    verdicts = pdftotext(out, 1)
    victim_line = next(ln for ln in verdicts.splitlines() if victim["evidence_id"] in ln)
    good_line = next(ln for ln in verdicts.splitlines() if good["evidence_id"] in ln)
    assert "FAILED" in victim_line and "ok" in good_line.split() and "FAILED" not in good_line


def test_page_one_shows_chinese_glyphs_in_an_embedded_font(station, tmp_path, case_items):
    out = tmp_path / "report.pdf"
    station.cli("custody-report", "--case", CASE, "-o", str(out))
    fonts = subprocess.run(["pdffonts", str(out)], capture_output=True, text=True, check=True)
    cjk = [ln for ln in fonts.stdout.splitlines() if "WenQuanYi" in ln or "CJK" in ln]
    assert cjk and all(" yes " in f" {ln} " for ln in cjk), fonts.stdout  # embedded
    assert "证据保管链报告" in pdftotext(out, 1)

    # Render page 1 and compare the pixels where the Chinese subtitle sits with
    # the same spot when the text is blank: glyphs ink the region; tofu boxes
    # (an empty outline) would ink only a thin frame.
    png = tmp_path / "page"
    subprocess.run(
        ["pdftoppm", "-f", "1", "-l", "1", "-r", "100", "-gray", "-png", str(out), str(png)],
        check=True,
    )
    image = next(tmp_path.glob("page*.png"))
    from PIL import Image

    with Image.open(image) as im:
        bbox = subprocess.run(
            ["pdftotext", "-f", "1", "-l", "1", "-bbox", str(out), "-"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        word = next(ln for ln in bbox.splitlines() if "证据保管链报告" in ln)
        attrs = dict(part.split("=") for part in word.split(">")[0].split()[1:])
        scale = 100 / 72
        box = tuple(
            round(float(attrs[k].strip('"')) * scale) for k in ("xMin", "yMin", "xMax", "yMax")
        )
        region = im.convert("L").crop(box)
        pixels = region.tobytes()
        width, height = region.size
        dark = sum(1 for p in pixels if p < 128)
        total = width * height
        # 7 filled ideographs ink a fair share of their box; 7 tofu frames far less,
        # and an empty (missing) glyph none at all
        assert dark / total > 0.12, (dark, total)
        # and the strokes vary across the row (boxes would repeat one pattern)
        columns = [
            sum(1 for y in range(height) if pixels[y * width + x] < 128) for x in range(width)
        ]
        assert len(set(columns)) > 5


def test_unknown_id_is_named_and_exits_1(station, tmp_path, case_items):
    out = tmp_path / "r.pdf"
    result = station.cli(
        "custody-report",
        case_items[0]["evidence_id"],
        "ev-doesnotexist",
        "-o",
        str(out),
        check=False,
    )
    assert result.returncode == 1
    assert "ev-doesnotexist" in result.stderr
    assert not out.exists()
    assert [
        e for e in events_of(station, case_items[0]["evidence_id"]) if e.kind == "report_issued"
    ] == []


def test_csv_and_json_carry_the_same_document(station, tmp_path, case_items):
    item = case_items[0]
    out_json, out_csv = tmp_path / "r.json", tmp_path / "r.csv"
    station.cli("custody-report", item["evidence_id"], "-o", str(out_json), "--format", "json")
    station.cli("custody-report", item["evidence_id"], "-o", str(out_csv), "--format", "csv")
    document = json.loads(out_json.read_text(encoding="utf-8"))
    (entry,) = document["items"]
    assert entry["sha256"] == item["sha256"] and entry["verdict"] == "ok"
    assert entry["cases"][0]["case_id"] == CASE
    stored = [c["sha256"] for c in entry["playback_copies"] if c["state"] == "stored"]
    assert stored == [hashlib.sha256(b"playback " * 4000).hexdigest()]
    assert document["checkpoint"]["signature"] == "verified"
    rows = list(csv.DictReader(io.StringIO(out_csv.read_text(encoding="utf-8-sig"))))
    kinds = [r["event"] for r in rows]
    # the CSV was issued after the JSON: it holds the JSON's report_issued event
    assert kinds == [e["kind"] for e in entry["events"]] + ["report_issued"]
    assert all(r["sha256"] == item["sha256"] for r in rows)


def test_an_edited_ledger_leaf_fails_the_inclusion_proof(station, tmp_path, case_items):
    victim = case_items[0]["evidence_id"]
    station.cli("ledger", "checkpoint")
    sealed = next(e for e in events_of(station, victim) if e.kind == "sealed")
    archive = station.archive()
    try:
        with archive.db.session() as s:
            s.execute(
                update(CustodyEvent)
                .where(CustodyEvent.seq == sealed.seq)
                .values(leaf=sealed.leaf.replace(b'"sealed"', b'"SEALED"'))
            )
    finally:
        archive.close()
    out = tmp_path / "report.json"
    result = station.cli("custody-report", victim, "-o", str(out), "--format", "json", check=False)
    assert result.returncode == 1
    (item,) = json.loads(out.read_text(encoding="utf-8"))["items"]
    assert item["verdict"] == "FAILED"
    assert any(f["check"] == "ledger.inclusion" for f in item["failures"]), item["failures"]
    failed = [e for e in item["events"] if e["proof"].startswith("FAILED")]
    assert [e["seq"] for e in failed] == [sealed.seq]


def test_a_missing_cjk_font_is_a_clear_error_and_records_nothing(station, tmp_path):
    (item,) = ingest_files(station, tmp_path, 1)
    out = tmp_path / "r.pdf"
    result = station.cli(
        "custody-report",
        item["evidence_id"],
        "-o",
        str(out),
        check=False,
        env={"STRONGROOM_CJK_FONT": str(tmp_path / "no-such-font.ttc")},
    )
    assert result.returncode == 1
    assert "no CJK font" in result.stderr and "fonts-wqy-microhei" in result.stderr
    assert not out.exists()
    assert [e for e in events_of(station, item["evidence_id"]) if e.kind == "report_issued"] == []
