"""PDF rendering of the custody report and the share receipt (reportlab).

Chinese text (names of units, officers, recipients, case ids) must print, so
every string is set in a CJK TrueType font from the operating system, embedded
(subset) in the PDF. Debian's ``fonts-wqy-microhei`` is the one we look for
first (``make setup`` installs it); Noto CJK is shipped by Debian as CFF
OpenType, which reportlab cannot embed, so it is not a candidate. The font is
found at run time; ``STRONGROOM_CJK_FONT=/path/to/font.ttc`` overrides.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFError, TTFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    BaseDocTemplate,
    Flowable,
    KeepTogether,
    PageBreak,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from config.errors import UnavailableError
from verify.custody_report import CustodyReport, Item

FONT_NAME = "StrongroomCJK"
FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/truetype/arphic/uming.ttc",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
)


class FontMissing(UnavailableError, RuntimeError):
    """No CJK TrueType font could be found or loaded."""

    code = "feature_unavailable"


def find_cjk_font() -> Path:
    """The first CJK TrueType font present (``STRONGROOM_CJK_FONT`` wins)."""
    override = os.environ.get("STRONGROOM_CJK_FONT")
    candidates = [override] if override else list(FONT_CANDIDATES)
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise FontMissing(
        "no CJK font for the PDF: looked for "
        + ", ".join(c for c in candidates if c)
        + " – install the Debian package fonts-wqy-microhei (`make setup` does), "
        "or set STRONGROOM_CJK_FONT to a TrueType (.ttf/.ttc) font with Chinese glyphs"
    )


@cache
def register_font() -> str:
    path = find_cjk_font()
    try:
        pdfmetrics.registerFont(TTFont(FONT_NAME, str(path), subfontIndex=0))
    except (TTFError, OSError) as exc:
        raise FontMissing(f"cannot load the CJK font {path}: {exc}") from exc
    return FONT_NAME


def _styles(font: str) -> dict[str, ParagraphStyle]:
    base = ParagraphStyle("base", fontName=font, fontSize=8.5, leading=11)
    return {
        "title": ParagraphStyle("title", parent=base, fontSize=16, leading=20, spaceAfter=6),
        "h2": ParagraphStyle(
            "h2", parent=base, fontSize=12, leading=15, spaceBefore=8, spaceAfter=4
        ),
        "h3": ParagraphStyle(
            "h3", parent=base, fontSize=10, leading=13, spaceBefore=6, spaceAfter=2
        ),
        "body": base,
        "small": ParagraphStyle("small", parent=base, fontSize=7, leading=8.5),
        "bad": ParagraphStyle("bad", parent=base, textColor=colors.HexColor("#b00020")),
        "good": ParagraphStyle("good", parent=base, textColor=colors.HexColor("#1b5e20")),
    }


def _p(text: Any, style: ParagraphStyle) -> Paragraph:
    return Paragraph(escape("" if text is None else str(text)).replace("\n", "<br/>"), style)


GRID = TableStyle(
    [
        ("GRID", (0, 0), (-1, -1), 0.3, colors.grey),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8eaf0")),
        ("LEFTPADDING", (0, 0), (-1, -1), 3),
        ("RIGHTPADDING", (0, 0), (-1, -1), 3),
    ]
)
PLAIN = TableStyle([*GRID.getCommands()[:2], *GRID.getCommands()[3:]])
WIDTH = A4[0] - 30 * mm


def _table(rows: Sequence[Sequence[Any]], widths: Sequence[float], style: ParagraphStyle) -> Table:
    """A grid; a first row of empty strings means "no header row"."""
    header = any(cell != "" for cell in rows[0])
    rows = rows if header else rows[1:]
    cells = [[c if isinstance(c, Paragraph) else _p(c, style) for c in row] for row in rows]
    table = Table(cells, colWidths=[w * WIDTH for w in widths], repeatRows=1 if header else 0)
    table.setStyle(GRID if header else PLAIN)
    return table


def _footer(text: str, font: str) -> Callable[[Canvas, BaseDocTemplate], None]:
    def draw(canvas: Canvas, doc: BaseDocTemplate) -> None:
        canvas.saveState()
        canvas.setFont(font, 7)
        canvas.drawString(15 * mm, 10 * mm, text)
        canvas.drawRightString(A4[0] - 15 * mm, 10 * mm, f"page {doc.page}")
        canvas.restoreState()

    return draw


def _document(story: list[Flowable], footer: str, title: str) -> bytes:
    font = register_font()
    out = io.BytesIO()
    doc = SimpleDocTemplate(
        out,
        pagesize=A4,
        leftMargin=15 * mm,
        rightMargin=15 * mm,
        topMargin=15 * mm,
        bottomMargin=18 * mm,
        title=title,
        author="Strongroom",
        invariant=1,
    )
    draw = _footer(footer, font)
    doc.build(story, onFirstPage=draw, onLaterPages=draw)
    return out.getvalue()


# --- custody report -----------------------------------------------------------


def render_report(report: CustodyReport) -> bytes:
    """The PDF: page 1 the verdicts (every failing check), then one section per item."""
    font = register_font()
    st = _styles(font)
    story: list[Flowable] = [_p(report.title, st["title"]), _p("证据保管链报告", st["h2"])]
    scope = (
        f"case {report.scope['case']}"
        if "case" in report.scope
        else "items " + ", ".join(report.scope["evidence_ids"])
    )
    cp = report.checkpoint
    story.append(
        _table(
            [
                ["", ""],
                ["scope", scope],
                [
                    "generated",
                    f"{report.generated_at} ({report.timezone}) = {report.generated_at_utc}",
                ],
                ["by", f"{report.generated_by} at station {report.station}"],
                [
                    "ledger checkpoint",
                    "none"
                    if cp is None
                    else f"size {cp.size}, root {cp.root_hash}, origin {cp.origin}, "
                    f"signature {cp.signature}",
                ],
                [
                    "items",
                    f"{len(report.items)}, failed "
                    f"{sum(1 for i in report.items if i.verdict == 'FAILED')}",
                ],
            ],
            (0.18, 0.82),
            st["body"],
        )
    )
    story.append(_p("Verdicts (checks made while this report was made)", st["h2"]))
    rows: list[list[Any]] = [["evidence id / file", "verdict", "failing checks"]]
    for item in report.items:
        failures = "\n".join(f"[{f.check}] {f.subject}: {f.message}" for f in item.failures)
        rows.append(
            [
                _p(f"{item.evidence_id}\n{item.file_name}", st["small"]),
                _p(item.verdict, st["bad"] if item.verdict == "FAILED" else st["good"]),
                _p(failures or "none", st["small"]),
            ]
        )
    story.append(_table(rows, (0.3, 0.1, 0.6), st["body"]))
    story.append(
        _p(
            "Issuing this report is recorded in the custody ledger as a report_issued event "
            "carrying the SHA-256 of this file: compute it (sha256sum) and look it up with "
            "`strongroom show ID`.",
            st["small"],
        )
    )
    for item in report.items:
        story.append(PageBreak())
        story.extend(_item_story(item, st))
    footer = f"Strongroom {report.title} · {report.generated_at_utc}"
    return _document(story, footer, report.title)


def _item_story(item: Item, st: dict[str, ParagraphStyle]) -> list[Flowable]:
    story: list[Flowable] = [
        _p(f"{item.evidence_id} – {item.verdict}", st["h2"]),
    ]
    if item.failures:
        story.append(
            _p(
                "\n".join(f"FAILED [{f.check}] {f.subject}: {f.message}" for f in item.failures),
                st["bad"],
            )
        )
    story.append(
        _table(
            [
                ["", ""],
                ["file name", item.file_name],
                ["size", f"{item.size} bytes"],
                ["SHA-256", item.sha256],
                ["media type", item.media_type],
                [
                    "officer / device / unit",
                    f"{item.officer or '–'} / {item.device or '–'} / {item.unit or '–'}",
                ],
                [
                    "recorded (station time)",
                    f"{item.recorded_start or '–'} – {item.recorded_end or '–'}",
                ],
                ["station / dock", f"{item.station} / {item.dock}"],
                ["ingested / sealed", f"{item.ingested_at} / {item.sealed_at}"],
                ["state", item.state],
                ["manifest", item.manifest_key],
                ["manifest signature", item.manifest_signature],
                ["bytes re-read now", str(item.bytes_reread)],
            ],
            (0.25, 0.75),
            st["body"],
        )
    )
    story.append(_p("Custody events (ledger order)", st["h3"]))
    rows: list[list[Any]] = [["leaf", "time (station)", "event", "actor / station", "inclusion"]]
    spans = []
    for event in item.events:
        rows.append(
            [
                "–" if event.ledger_index is None else str(event.ledger_index),
                event.at,
                event.kind,
                f"{event.actor}" + (f" / {event.station}" if event.station else ""),
                _p(event.proof, st["bad"] if event.proof.startswith("FAILED") else st["small"]),
            ]
        )
        if event.details:
            spans.append(len(rows))
            rows.append(
                [
                    _p(
                        json.dumps(
                            event.details,
                            ensure_ascii=False,
                            sort_keys=True,
                            separators=(", ", ": "),
                        ),
                        st["small"],
                    ),
                    "",
                    "",
                    "",
                    "",
                ]
            )
    table = _table(rows, (0.07, 0.2, 0.17, 0.36, 0.2), st["small"])
    table.setStyle(TableStyle([("SPAN", (0, r), (-1, r)) for r in spans]))
    story.append(table)
    story.append(_p("Fixity history", st["h3"]))
    if item.fixity:
        story.append(
            _table(
                [["time", "result", "trigger", "failed checks"]]
                + [
                    [f["at"], f["result"], f["trigger"], ", ".join(f["problems"]) or "–"]
                    for f in item.fixity
                ],
                (0.3, 0.15, 0.15, 0.4),
                st["small"],
            )
        )
    else:
        story.append(_p("no fixity sweep has checked this item yet", st["body"]))
    story.append(_p("Case links", st["h3"]))
    if item.cases:
        story.append(
            _table(
                [["case", "linked", "by", "reason"]]
                + [[c["case_id"], c["linked_at"], c["linked_by"], c["reason"]] for c in item.cases],
                (0.2, 0.25, 0.25, 0.3),
                st["small"],
            )
        )
    else:
        story.append(_p("not linked to any case", st["body"]))
    r = item.retention
    story.append(_p("Retention and holds", st["h3"]))
    story.append(
        _p(
            f"category {r['category']} (in force: {r['effective_category']}"
            f"{', permanent' if r['permanent'] else ''}); Object Lock {r['lock_mode']} until "
            f"{r['retain_until'] or '–'}; legal hold {'on' if r['legal_hold'] else 'off'}",
            st["body"],
        )
    )
    story.append(_p("Playback copies and their lineage", st["h3"]))
    if item.playback_copies:
        for copy in item.playback_copies:
            story.append(
                KeepTogether(
                    _table(
                        [
                            ["", ""],
                            ["state / action", f"{copy.state} / {copy.action or '–'}"],
                            ["SHA-256", copy.sha256 or "–"],
                            ["size", f"{copy.size} bytes" if copy.size is not None else "–"],
                            ["lineage manifest", copy.manifest_key or "–"],
                            ["made from", f"original {item.sha256}"],
                            ["ffmpeg", copy.ffmpeg_version or "–"],
                            ["arguments", " ".join(copy.ffmpeg_args) or "–"],
                            ["note", copy.reason or "–"],
                        ],
                        (0.2, 0.8),
                        st["small"],
                    )
                )
            )
            story.append(Spacer(1, 3))
    else:
        story.append(_p("none", st["body"]))
    return story


# --- share receipt --------------------------------------------------------------


def render_receipt(receipt: dict[str, Any]) -> bytes:
    """The disclosure receipt: what was shared, with whom, until when."""
    font = register_font()
    st = _styles(font)
    story: list[Flowable] = [
        _p("Disclosure receipt", st["title"]),
        _p("证据披露回执", st["h2"]),
        _table(
            [
                ["", ""],
                ["share", receipt["share_id"]],
                ["case", receipt["case_id"]],
                ["recipient", receipt["recipient"]],
                ["allowed", receipt["allow"]],
                ["created", f"{receipt['created_at']} by {receipt['created_by']}"],
                ["expires", receipt["expires_at"]],
                ["station", receipt["station"]],
            ],
            (0.2, 0.8),
            st["body"],
        ),
        _p("Items shared", st["h2"]),
        _table(
            [["evidence id", "file name", "size", "SHA-256"]]
            + [
                [i["evidence_id"], i["file_name"], str(i["size"]), i["sha256"]]
                for i in receipt["items"]
            ],
            (0.2, 0.27, 0.1, 0.43),
            st["small"],
        ),
        Spacer(1, 6),
        _p(
            "This receipt is signed: the file next to it (.dsse.json) is a DSSE envelope, "
            "signed with the station's Ed25519 key, whose payload names this PDF's SHA-256. "
            "Every view, play and download through the share is a custody event.",
            st["small"],
        ),
    ]
    return _document(
        story, f"Strongroom disclosure receipt {receipt['share_id']}", "Disclosure receipt"
    )
