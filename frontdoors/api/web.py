"""What the web pages share: the Jinja2 environment, the one string catalogue
(Chinese first, English beside it), the language choice and the security
headers. Pages are server-rendered; the only scripts are the two small
hand-written files under ``static/`` (the verify page's hashing)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

LANGUAGES = ("zh", "en")
_HERE = Path(__file__).parent
TEMPLATES = Environment(
    loader=FileSystemLoader(_HERE / "templates"),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,  # a missing string or value fails the page, not blanks it
)
STATIC = _HERE / "static"

#: every UI string: key -> (中文, English)
CATALOGUE: dict[str, tuple[str, str]] = {
    "site": ("Strongroom 执法记录仪证据库", "Strongroom evidence archive"),
    "public_title": ("执法公示", "Transparency (执法公示)"),
    "public_intro": (
        "本页公布本库签名的最新检查点和按单位、按月的汇总统计。不含任何个人信息。",
        "The archive's latest signed checkpoint and aggregate statistics per unit and "
        "month. No personal data.",
    ),
    "checkpoint": ("签名检查点", "Signed checkpoint"),
    "checkpoint_none": ("账本尚无检查点。", "The ledger has no checkpoint yet."),
    "key_fingerprint": ("公钥指纹", "Key fingerprint"),
    "vkey": ("验证公钥 (vkey)", "Verifier key (vkey)"),
    "checkpoint_plain": ("纯文本（见证者读取的格式）", "Plain text (the format witnesses read)"),
    "stats": ("按单位和月份统计", "Statistics per unit and month"),
    "unit": ("单位", "Unit"),
    "month": ("月份", "Month"),
    "item_count": ("条目数", "Items"),
    "recorded_hours": ("录制时长（小时）", "Recorded hours"),
    "within_deadline": ("限时内归档比例", "Archived within the deadline"),
    "deadline_note": ("归档时限：{hours} 小时", "Archive deadline: {hours} hours"),
    "csv": ("下载 CSV", "Download CSV"),
    "generated": ("统计生成于", "Statistics generated at"),
    "verify_title": ("核验您的副本", "Verify your copy"),
    "verify_intro": (
        "选择或拖入文件。文件在您的浏览器中计算 SHA-256，只把哈希值发给本库；文件本身不会上传。",
        "Choose or drop a file. Your browser computes its SHA-256 and sends only the hash; "
        "the file itself is never uploaded.",
    ),
    "file": ("文件", "File"),
    "drop": ("把文件拖到这里", "Drop a file here"),
    "computed": ("本地计算的 SHA-256", "SHA-256 computed here"),
    "hashing": ("正在计算哈希", "Hashing"),
    "asking": ("正在查询本库", "Asking the archive"),
    "done": ("完成", "Done"),
    "match": ("一致：本库存有此文件", "Match: the archive holds this file"),
    "no_match": ("不一致：本库没有此哈希的文件", "No match: no archived file has this hash"),
    "sealed_at": ("封存时间", "Sealed at"),
    "manifest": ("签名清单", "Signed manifest"),
    "proof": ("账本包含证明", "Ledger inclusion proof"),
    "leaves": ("条账本记录", "ledger leaves"),
    "tree_size": ("检查点大小", "checkpoint size"),
    "proof_here": (
        "本页已按检查点的根哈希核对包含证明",
        "Inclusion proofs checked in this page against the checkpoint's root",
    ),
    "hashes": ("个哈希", "hashes"),
    "console": ("审计台", "Auditor console"),
    "login": ("登录", "Sign in"),
    "logout": ("退出", "Sign out"),
    "token": ("访问令牌", "Access token"),
    "login_intro": (
        "请输入审计员或管理员令牌。令牌只发送一次，此后使用会话。",
        "Enter an auditor or admin token. It is sent once; a session is used after that.",
    ),
    "login_failed": ("令牌无效或无审计权限。", "Unknown token, or not an auditor/admin token."),
    "session_gone": ("会话无效或已过期，请重新登录。", "Session unknown or expired; sign in again"),
    "search": ("检索", "Search"),
    "officer": ("警员", "Officer"),
    "device": ("设备", "Device"),
    "station": ("站点", "Station"),
    "state": ("状态", "State"),
    "since": ("起始时间", "Since"),
    "until": ("截止时间", "Until"),
    "results": ("结果", "Results"),
    "no_results": ("没有符合条件的条目。", "No item matches."),
    "next": ("下一页", "Next page"),
    "evidence_id": ("证据编号", "Evidence id"),
    "file_name": ("文件名", "File name"),
    "size": ("大小（字节）", "Size (bytes)"),
    "recorded": ("录制时间", "Recorded"),
    "identity": ("身份信息", "Identity"),
    "hashes_title": ("哈希", "Hashes"),
    "events": ("保管事件", "Custody events"),
    "when": ("时间", "When"),
    "kind": ("事件", "Event"),
    "actor": ("操作者", "Actor"),
    "retention": ("保留与冻结", "Retention and holds"),
    "retain_until": ("保留至", "Retained until"),
    "legal_hold": ("法律冻结", "Legal hold"),
    "cases": ("关联案件", "Case links"),
    "fixity": ("完整性检查", "Fixity"),
    "playback": ("播放副本", "Playback copy"),
    "status": ("流水线与完整性状态", "Pipeline and fixity status"),
    "jobs": ("入库任务", "Ingest jobs"),
    "problems": ("近期问题", "Recent problems"),
    "report": ("报告", "Report"),
    "yes": ("是", "yes"),
    "no": ("否", "no"),
    "language": ("English", "中文"),
}


def language(request: Request, default: str) -> str:
    """``?lang=`` wins, then the ``lang`` cookie, then the configured default."""
    for candidate in (request.query_params.get("lang"), request.cookies.get("lang")):
        if candidate in LANGUAGES:
            return candidate
    return default if default in LANGUAGES else "zh"


def strings(lang: str) -> dict[str, str]:
    index = LANGUAGES.index(lang)
    return {key: pair[index] for key, pair in CATALOGUE.items()}


#: scripts only from this origin, no inline script; frames and plugins never
HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; connect-src 'self'; "
    "style-src 'unsafe-inline'; media-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
}


def page(
    request: Request, template: str, default_lang: str, status_code: int = 200, **context: Any
) -> HTMLResponse:
    lang = language(request, default_lang)
    html = TEMPLATES.get_template(template).render(
        # a namespace, not a dict: ``t.items`` must be the string, not dict.items
        t=SimpleNamespace(**strings(lang)),
        lang=lang,
        other="en" if lang == "zh" else "zh",
        **context,
    )
    response = HTMLResponse(html, status_code=status_code, headers=dict(HEADERS))
    if request.query_params.get("lang") in LANGUAGES:
        response.set_cookie("lang", lang, samesite="strict", httponly=True, path="/")
    return response
