"""``strongroom playback``: make the queued playback copies now, requeue failed
ones, queue missing ones, and show the policy.

The daemon makes playback copies by itself; ``playback run`` is for stations
that run ``ingest`` from a script, and for catching up after a change of
policy. ``playback retry`` gives failed copies a fresh retry budget (after a
fix to ffmpeg or the policy); ``playback queue --missing`` queues copies for
items sealed while transcoding was off. Both only queue: the daemon's workers
(or ``playback run``) make the copies. ``playback policy`` prints the
``[transcode]`` rules in the order they are tried, so an operator sees what the
config says without reading TOML.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.orm import Session

from archive.custody import cli_actor
from archive.derivatives import queue_missing, requeue_failed
from archive.models import Evidence
from archive.queries import derivative_counts
from config.transcode import TranscodeSettings
from frontdoors.cli.app import app
from frontdoors.cli.common import (
    EXIT_CONFIG,
    EXIT_FAILED,
    ConfigOpt,
    JsonOpt,
    console,
    emit_json,
    open_archive,
    settings_from,
)
from ingest.playback import Claim, Observer, PlaybackWorker, Result
from ingest.transcode import Plan

playback_app = typer.Typer(
    help="Playback copies (derivatives): make the queued ones now, show the policy.",
    no_args_is_help=True,
)
app.add_typer(playback_app, name="playback")


class _Bars(Observer):
    """One progress bar per copy being made; workers call in from their threads."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._tasks: dict[int, TaskID] = {}
        self._lock = threading.Lock()

    def started(self, claim: Claim, plan: Plan | None) -> None:
        label = f"{claim.evidence_id} {claim.file_name}"[:60]
        with self._lock:
            self._tasks[claim.id] = self._progress.add_task(label, total=100.0, speed="")

    def progress(self, claim: Claim, percent: float, speed: float | None) -> None:
        task = self._tasks.get(claim.id)
        if task is not None:
            text = f"{speed:.1f}x" if speed is not None else ""
            self._progress.update(task, completed=percent, speed=text)

    def finished(self, claim: Claim, result: Result) -> None:
        with self._lock:
            task = self._tasks.pop(claim.id, None)
        if task is not None:
            self._progress.update(task, completed=100.0, speed=result.state)


@playback_app.command("run")
def run(
    timeout: Annotated[
        float | None, typer.Option(help="give up waiting after this many seconds")
    ] = None,
    evidence: Annotated[
        list[str] | None, typer.Option("--evidence", help="only these evidence ids")
    ] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Make every queued playback copy (retries included), then exit.

    Bad media is not an error of this command: such copies end "failed" with
    ffmpeg's reason (see `strongroom status` / `show`), and the exit code is 0.
    """
    with open_archive(config) as archive:
        progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.percentage:>5.1f}%"),
            TextColumn("{task.fields[speed]}"),
            TimeElapsedColumn(),
            console=console,
            disable=as_json,
        )
        worker = PlaybackWorker(archive, observer=_Bars(progress))
        try:
            with progress:
                results = worker.run_until_idle(evidence, timeout=timeout)
        except KeyboardInterrupt:
            console.print("[yellow]stopped; unfinished copies are queued again[/]")
            raise typer.Exit(130) from None
        with archive.db.session() as session:
            counts = derivative_counts(session)
    documents: list[dict[str, Any]] = [
        {
            "derivative_id": r.derivative_id,
            "evidence_id": r.evidence_id,
            "state": r.state,
            "action": r.action,
            "detail": r.detail,
            "sha256": r.sha256,
            "key": r.key,
        }
        for r in results
    ]
    if as_json:
        emit_json({"results": documents, "counts": counts})
        return
    table = Table("evidence id", "state", "action", "detail")
    for doc in documents:
        table.add_row(doc["evidence_id"], doc["state"], doc["action"] or "", doc["detail"] or "")
    if documents:
        Console().print(table)
    console.print(
        "playback copies: " + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none")
    )


IdsArg = Annotated[list[str] | None, typer.Argument(help="evidence ids (ev-…)", show_default=False)]


@playback_app.command("retry")
def retry(
    evidence_ids: IdsArg = None,
    failed: Annotated[
        bool, typer.Option("--failed", help="every failed copy (instead of naming items)")
    ] = False,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Queue failed playback copies again, with a fresh retry budget.

    The old failure reason is kept in a derivative_requeued custody event. Only
    queues: the daemon (or `strongroom playback run`) makes the copies. Exit 1
    if a named item does not exist.
    """
    ids = _one_way(evidence_ids, failed, "--failed")
    with open_archive(config) as archive, archive.db.session() as session:
        unknown = _unknown(session, ids)
        requeued = requeue_failed(session, ids, actor=cli_actor()) if not unknown else []
    not_failed = sorted(set(ids or ()) - {r["evidence_id"] for r in requeued} - set(unknown))
    if as_json:
        emit_json({"requeued": requeued, "not_failed": not_failed, "unknown": unknown})
    else:
        for entry in requeued:
            console.print(
                f"{entry['evidence_id']}: queued again (was failed after "
                f"{entry['previous_attempts']} attempt(s): {entry['previous_error']})",
                highlight=False,
                markup=False,
            )
        for evidence_id in not_failed:
            console.print(f"{evidence_id}: no failed playback copy", highlight=False)
        if not requeued and ids is None:
            console.print("no failed playback copies")
    _refuse_unknown(unknown)


@playback_app.command("queue")
def queue(
    evidence_ids: IdsArg = None,
    missing: Annotated[
        bool,
        typer.Option("--missing", help="every item that never had a playback copy queued"),
    ] = False,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Queue a playback copy for items that never had one (e.g. sealed while
    transcode.enabled was false). Items with a copy in any state are left
    alone; failed ones are for `playback retry`. Exit 1 if a named item does
    not exist."""
    ids = _one_way(evidence_ids, missing, "--missing")
    with open_archive(config) as archive:
        enabled = archive.settings.transcode.enabled
        with archive.db.session() as session:
            unknown = _unknown(session, ids)
            queued = queue_missing(session, ids, actor=cli_actor()) if not unknown else []
    untouched = sorted(set(ids or ()) - set(queued) - set(unknown))
    if as_json:
        emit_json({"queued": queued, "has_copy": untouched, "unknown": unknown})
    else:
        for evidence_id in queued:
            console.print(f"{evidence_id}: playback copy queued", highlight=False)
        for evidence_id in untouched:
            console.print(f"{evidence_id}: already has a playback copy row", highlight=False)
        if not queued and ids is None:
            console.print("every item has a playback copy queued or made")
        if queued and not enabled:
            console.print(
                "[yellow]transcode.enabled is false: the daemon will not make them; "
                "run `strongroom playback run`[/]"
            )
    _refuse_unknown(unknown)


def _one_way(ids: list[str] | None, everything: bool, flag: str) -> list[str] | None:
    """Named items, or ``flag`` for all of them: exactly one of the two."""
    if bool(ids) == everything:
        console.print(f"[red]name evidence ids or give {flag} (one of the two)[/]")
        raise typer.Exit(EXIT_CONFIG)
    return None if everything else sorted(set(ids or ()))


def _unknown(session: Session, ids: list[str] | None) -> list[str]:
    if ids is None:
        return []
    known = set(session.scalars(select(Evidence.evidence_id).where(Evidence.evidence_id.in_(ids))))
    return sorted(set(ids) - known)


def _refuse_unknown(unknown: list[str]) -> None:
    if unknown:
        console.print(f"[red]no such evidence: {', '.join(unknown)}; nothing was queued[/]")
        raise typer.Exit(EXIT_FAILED)


@playback_app.command("policy")
def policy(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """The playback policy (the transcode section): rules in the order tried, first match wins."""
    settings: TranscodeSettings = settings_from(config).transcode
    if as_json:
        emit_json(
            {
                "enabled": settings.enabled,
                "rules": [rule.model_dump() for rule in settings.rules],
                "encoding": _encoding(settings),
            }
        )
        return
    table = Table(title="playback policy (first matching rule wins)")
    for column in ("#", "rule", "action", "kind", "container", "video", "audio", "pixels"):
        table.add_column(column, no_wrap=column in ("#", "rule", "action"))
    table.add_column("reason", ratio=1)
    for number, rule in enumerate(settings.rules, 1):
        table.add_row(
            str(number),
            rule.name,
            rule.action,
            _any(rule.kind),
            _any(rule.container),
            _any(rule.video_codec),
            _any(rule.audio_codec),
            _any(rule.pixel_format),
            rule.reason or "",
        )
    out = Console()
    out.print(table)
    encoding = _encoding(settings)
    out.print(
        "enabled: "
        + str(settings.enabled)
        + "  "
        + "  ".join(f"{key}: {value}" for key, value in encoding.items()),
        highlight=False,
    )


def _any(values: Sequence[str] | None) -> str:
    return "any" if values is None else ", ".join(values)


def _encoding(settings: TranscodeSettings) -> dict[str, object]:
    return {
        "workers": settings.workers,
        "nice": settings.nice,
        "preset": settings.preset,
        "crf": settings.crf,
        "max_height": settings.max_height,
        "threads": settings.threads,
        "audio_bitrate": settings.audio_bitrate,
        "strict": settings.strict,
        "retry_attempts": settings.retry_attempts,
        "time_limit": f"max({settings.time_limit_floor_seconds:g} s, "
        f"{settings.time_limit_factor:g} × duration)",
    }
