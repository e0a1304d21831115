"""Turn one run's measurements into ``results/<date>.json`` and a markdown table.

The markdown is what goes into the README's performance section: the bar with
pass/fail per line, the figures behind it, and the machine they came from.
"""

from __future__ import annotations

import json
from pathlib import Path

from bench.stats import (
    TOOLS,
    Verdict,
    memory_verdict,
    small_files_verdict,
    throughput_verdict,
    time_to_safe_verdict,
)


def verdicts(results: dict) -> list[Verdict]:
    """Every bar the run has figures for, in the issue's order."""
    found: list[Verdict] = []
    if "throughput" in results:
        t = results["throughput"]
        found.append(throughput_verdict(t["rates"]["strongroom"], t["rates"]["aws_sha256"]))
    for label, t in results.get("time_to_safe", {}).items():
        found.append(
            time_to_safe_verdict(label, t["time_to_safe_s"]["median"], t["pure_upload_s"]["median"])
        )
    if "small_files" in results:
        s = results["small_files"]
        found.append(small_files_verdict(s["rates"]["strongroom"], s["rates"]["equal_work"]))
    if "memory" in results:
        m = results["memory"]
        found.append(memory_verdict(f"{m['bytes'] / 2**30:g} GiB file", m["peak_rss_bytes"]))
    return found


def _mark(passed: bool) -> str:
    return "PASS" if passed else "FAIL"


def markdown(document: dict) -> str:
    results = document["results"]
    machine = document["machine"]
    lines = [
        f"# Strongroom ingest benchmark – {document['date']} ({document['plan']['name']})",
        "",
        "## The bar",
        "",
        "| bar | measured | limit | result |",
        "|---|---|---|---|",
    ]
    for v in document["verdicts"]:
        lines.append(
            f"| {v['name']} | {v['measured']:g} {v['unit']} | {v['op']} {v['limit']:g} {v['unit']} "
            f"| **{_mark(v['passed'])}** |"
        )
    lines += ["", "## Figures (medians; raw samples in the JSON)", ""]
    if "throughput" in results:
        t = results["throughput"]
        h = results.get("hashing", {})
        lines += [
            f"**Archive throughput** – {document['plan']['batch']} "
            f"({t['files']} files, {t['bytes'] / 1e9:.2f} GB), "
            f"{document['plan']['repeats']} repetitions:",
            "",
            *_race_table(t, "aws_sha256"),
        ]
        if h:
            lines.append(
                f"| `openssl dgst -sha256` (hashing limit) | {h['seconds']['median']:.2f} "
                f"| {h['mb_per_s']:.1f} | – | – | – |"
            )
        lines += ["", *_cpu_table(t, "file"), ""]
    if "time_to_safe" in results:
        lines += [
            "**Time-to-safe** – file closed in a dock watched by `strongroom run` → dock copy "
            "released (catalog `released_at`); nothing subtracted. Pure upload = boto3 "
            "`upload_file` of the same file at its defaults. Daemon `rescan_seconds`: "
            f"{document['plan'].get('rescan_seconds', 'default')}.",
            "",
            "| size | time-to-safe median | p95 | of which settle (policy) | "
            "pure upload median | p95 | limit (1.2 × upload + 1.5 s) |",
            "|---|---|---|---|---|---|---|",
        ]
        for label, t in results["time_to_safe"].items():
            safe, up = t["time_to_safe_s"], t["pure_upload_s"]
            lines.append(
                f"| {label} | {safe['median']:.2f} s | {safe['p95']:.2f} s | {t['settle_s']:g} s "
                f"| {up['median']:.2f} s | {up['p95']:.2f} s "
                f"| {1.2 * up['median'] + 1.5:.2f} s |"
            )
        lines.append("")
    if "small_files" in results:
        s = results["small_files"]
        lines += [
            f"**Many small files** – {s['files']} × {s['bytes_each'] / 1000:g} KB, "
            f"{document['plan']['repeats']} repetitions. The equal-work loop "
            "(`bench/equalwork.py`): per file a create-only PUT with `ChecksumSHA256` and "
            "an Object Lock retention, a HEAD with `ChecksumMode=ENABLED`, a ~1 KB locked "
            "create-only PUT (the manifest); raw boto3 at its defaults, 8 threads:",
            "",
            *_race_table(s, "equal_work"),
            "",
            *_cpu_table(s, "file"),
            "",
        ]
    if "memory" in results:
        m = results["memory"]
        lines += [
            f"**Memory** – one {m['bytes'] / 2**30:g} GiB file copied into a dock watched by "
            f"`strongroom run`: daemon peak RSS {m['peak_rss_mb']:.1f} MB (psutil, every "
            f"20 ms), {m['seconds']:.1f} s from close to release."
            + (
                f" `strongroom ingest` of the same file: peak RSS "
                f"{m['ingest_peak_rss_mb']:.1f} MB, {m['ingest_seconds']:.1f} s."
                if "ingest_peak_rss_mb" in m
                else ""
            ),
            "",
        ]
    versions = machine["versions"]
    disk = machine["disk"]
    lines += [
        "## Machine",
        "",
        f"- CPU: {machine['cpu']}, {machine['cores']} cores; RAM {machine['ram_gb']} GB",
        f"- disk: {disk['device']} ({disk['fstype']}, {disk['kind']}), "
        f"{disk['size_gb']} GB, {disk['free_gb']} GB free; data and store on the same disk, "
        "files read from the page cache",
        f"- {machine['os']}, Python {machine['python']}",
        f"- load average at start / end: {machine.get('load_start')} / {machine.get('load_end')}",
        "- other processes' CPU over the whole run (by name; the per-measurement figure is "
        "the column *others' CPU meanwhile*): "
        + (
            ", ".join(f"{o['name']} {o['cpu_s']:.0f} s" for o in machine.get("others", []))
            or "none measured"
        ),
        "- versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()),
        "- store: SeaweedFS `weed mini` on 127.0.0.1 (locked down, as `archive.localstore` "
        "starts it), one bucket per measurement with versioning, Object Lock and default "
        "retention, made by `strongroom init`; `aws s3 cp` writes into the same bucket",
        f"- run took {document.get('elapsed_s', 0):.0f} s",
        "",
    ]
    return "\n".join(lines)


def _race_table(result: dict, judged_against: str) -> list[str]:
    """Seconds and rate per tool, with the equal-work ratio and the plain one."""
    rates, seconds = result["rates"], result["seconds"]
    unit = result["rate_unit"]
    rows = [
        f"| tool | seconds (median) | {unit} | × {TOOLS[judged_against]} | × plain `aws s3 cp` "
        "| others' CPU meanwhile (cores, median / max) |",
        "|---|---|---|---|---|---|",
    ]
    for tool in result["tools"]:
        load = result.get("load", {}).get(tool, {})
        rows.append(
            f"| {TOOLS[tool]} | {seconds[tool]['median']:.2f} | {rates[tool]:.1f} "
            f"| {_times(seconds, judged_against, tool):.2f} | {_times(seconds, 'aws', tool):.2f} "
            f"| {load.get('others_cores_median', 0):.2f} / {load.get('others_cores_max', 0):.2f} |"
        )
    return rows


def _times(seconds: dict, baseline: str, tool: str) -> float:
    """How many times ``baseline``'s rate ``tool`` reaches (inverse median seconds)."""
    return float(seconds[baseline]["median"] / seconds[tool]["median"])


def _cpu_table(result: dict, unit: str) -> list[str]:
    """Where the CPU went, per item: the tool itself and the store serving it (same cores)."""
    cpu = result.get("cpu_per_file_ms")
    if not cpu:
        return []
    rows = [
        f"CPU per {unit} (median; tool and store share the two cores):",
        "",
        "| tool | tool CPU | store CPU | sum |",
        "|---|---|---|---|",
    ]
    for tool in result.get("tools", list(cpu)):
        c = cpu[tool]
        rows.append(
            f"| {TOOLS[tool]} | {c['client']:.2f} ms | {c['store']:.2f} ms "
            f"| {c['client'] + c['store']:.2f} ms |"
        )
    return rows


def write(document: dict, folder: Path) -> tuple[Path, Path]:
    """Write ``<date>.json`` and ``<date>.md`` (``-quick``/``-short`` suffix for smaller runs)."""
    folder.mkdir(parents=True, exist_ok=True)
    name = document["plan"]["name"]
    stem = document["date"] + (f"-{name}" if name in ("quick", "short") else "")
    json_path = folder / f"{stem}.json"
    md_path = folder / f"{stem}.md"
    json_path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", "utf-8")
    md_path.write_text(markdown(document), "utf-8")
    return json_path, md_path
