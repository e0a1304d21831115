"""How documents read for a person (frontdoors/cli/render.py), in process: the
find table at 80 columns keeps whole ids, and no value prints as a Python repr.
And how the CLI starts: a command imports only its own module
(frontdoors/cli/app.py's lazy group)."""

from __future__ import annotations

import io
import subprocess
import sys
from zoneinfo import ZoneInfo

import typer.main
from rich.console import Console

from frontdoors.cli import render
from frontdoors.cli.app import COMMAND_MODULES, app, load_command_modules
from frontdoors.cli.lookup_cmds import found_table, item_view

ZONE = ZoneInfo("Asia/Shanghai")


def _text(renderable, width: int) -> str:
    out = Console(file=io.StringIO(), width=width, color_system=None)
    out.print(renderable)
    return out.file.getvalue()


def _items(n: int = 3) -> list[dict]:
    return [
        {
            "evidence_id": f"ev-{i:024x}",
            "recorded_start": "2026-03-01T00:30:15+00:00",
            "officer": "012345",
            "device": "ABC1234",
            "size": 123456789,
            "file_name": f"very/long/folder/ABC1234_012345_20260301083015_{i:04d}_IMP.MP4",
        }
        for i in range(n)
    ]


def test_find_keeps_whole_ids_at_80_columns_and_drops_other_columns_first():
    items = _items()
    for width in (60, 80, 120):
        text = _text(found_table(items, ZONE, width), width)
        assert max(len(line) for line in text.splitlines()) <= width, text
        for item in items:
            assert item["evidence_id"] in text, f"id cut at {width} columns:\n{text}"
    narrow = _text(found_table(items, ZONE, 80), 80)
    assert "2026-03-01 08:30:15 CST" in narrow  # station time with the zone
    assert "size" not in narrow  # the least wanted column went first
    wide = _text(found_table(items, ZONE, 200), 200)
    assert "size" in wide and items[0]["file_name"] in wide


def test_values_never_print_as_python_reprs():
    values = [None, True, False, [], {"a": None}, [{"id": 1, "state": None}], {"x": {"y": [1]}}]
    for value in values:
        text = _text(render.section("part", value, ZONE), 100)
        for mark in ("None", "True", "False", "{'", "['", "[{"):
            assert mark not in text, f"{value!r} printed as {text!r}"
    assert render.scalar("2026-03-01T00:30:15Z", ZONE) == "2026-03-01 08:30:15 CST"


def test_show_view_has_its_sections():
    document = {
        **{
            key: None
            for _title, keys in __import__(
                "frontdoors.cli.lookup_cmds", fromlist=["ITEM_SECTIONS"]
            ).ITEM_SECTIONS
            for key in keys
        },
        "evidence_id": "ev-1",
        "file_name": "a.MP4",
        "probe": {"streams": [{"codec": "h264", "width": 1920}], "duration": 1.5},
        "cases": [],
        "derivatives": [{"id": 1, "state": "queued", "error": None}],
        "fixity": None,
        "disposition": None,
        "sightings": [],
        "events": [{"seq": 1, "at": "2026-03-01T00:30:15+00:00", "kind": "sealed", "actor": "x"}],
    }
    text = _text(item_view(document, ZONE), 100)
    for title in ("original", "source", "seal", "retention", "media", "case links", "events"):
        assert title in text
    assert "None" not in text and "{'" not in text


def test_every_command_is_found_in_the_module_that_registers_it():
    """A command added to a module but not to COMMAND_MODULES would be found
    only by --help; one named under the wrong module not at all."""
    load_command_modules()
    group = typer.main.get_group(app)
    assert set(group.commands) == set(COMMAND_MODULES)
    for name, command in group.commands.items():
        commands = getattr(command, "commands", {name: command}).values()
        modules = {c.callback.__module__ for c in commands}
        assert modules == {f"frontdoors.cli.{COMMAND_MODULES[name]}"}, name


def test_a_command_starts_without_the_daemon_or_the_http_server():
    """``strongroom status`` (or ``init``) imports its own module, not FastAPI,
    the scheduler or the pipeline: about a second of start-up per call less."""
    probe = (
        "import sys\n"
        "from frontdoors.main import main\n"
        "for command in (['status', '--help'], ['init', '--help']):\n"
        "    main(command)\n"
        "heavy = ('fastapi', 'uvicorn', 'apscheduler', 'ingest.daemon', 'ingest.pipeline',\n"
        "         'frontdoors.cli.api_cmds', 'frontdoors.cli.playback_cmds')\n"
        "print(' '.join(m for m in heavy if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    assert "Usage" in result.stdout
    assert result.stdout.splitlines()[-1] == ""
