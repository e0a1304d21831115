"""The benchmark's own parts: statistics, the bar, the report, the profile summary,
generated data, RSS sampling, and one small measurement against the real store.

No timing is asserted: the benchmark is the gate, these tests only prove that
what it reports is computed the way the report says.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench import data, measure
from bench.measure import Plan, Workspace
from bench.profile import summarize
from bench.report import markdown, verdicts, write
from bench.station import BenchError, Conditions, RssSampler, plain_client
from bench.stats import (
    percentile,
    small_files_verdict,
    summary,
    throughput_verdict,
    time_to_safe_verdict,
)
from config.settings import DEFAULT_NAME_PATTERN


def test_percentile_interpolates_and_summary_keeps_samples():
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([3, 1, 2], 100) == 3
    assert percentile([10, 20, 30], 95) == pytest.approx(29.0)
    s = summary([3.0, 1.0, 2.0])
    assert s["median"] == 2.0 and s["min"] == 1.0 and s["max"] == 3.0
    assert s["samples"] == [3.0, 1.0, 2.0]
    with pytest.raises(ValueError):
        percentile([], 50)


def test_bar_boundaries_pass_and_fail():
    assert throughput_verdict(100, 100).passed
    assert not throughput_verdict(99, 100).passed
    assert small_files_verdict(50, 25).measured == 2.0
    # small files are judged against the equal-work loop at 0.8 (it signs and catalogs nothing)
    assert small_files_verdict(80, 100).passed and not small_files_verdict(79, 100).passed
    # 1.2 × 10 s + 1.5 s = 13.5 s
    assert time_to_safe_verdict("1 GB", 13.5, 10).passed
    assert not time_to_safe_verdict("1 GB", 13.6, 10).passed
    assert time_to_safe_verdict("1 GB", 1, 10).limit == 13.5


def _document() -> dict:
    return {
        "date": "2026-01-02",
        "plan": Plan.quick().to_dict(),
        "machine": {
            "cpu": "Test CPU",
            "cores": 2,
            "ram_gb": 8.0,
            "disk": {
                "device": "/dev/x",
                "fstype": "ext4",
                "kind": "SSD",
                "size_gb": 1,
                "free_gb": 1,
            },
            "os": "Linux",
            "python": "3.11",
            "versions": {"awscli": "aws-cli/1"},
        },
        "results": {
            "throughput": {
                "files": 2,
                "bytes": 2_000_000,
                "tools": ["aws", "aws_sha256", "strongroom"],
                "seconds": {
                    "aws": summary([1.0, 1.0, 1.0]),
                    "aws_sha256": summary([1.0, 1.0, 1.0]),
                    "strongroom": summary([2.0, 2.0, 2.0]),
                },
                "rate_unit": "MB/s",
                "rates": {"aws": 2.0, "aws_sha256": 2.0, "strongroom": 1.0},
                "ratio": 0.5,
                "ratio_plain": 0.5,
                "cpu_per_file_ms": {
                    "aws": {"client": 1.5, "store": 2.0},
                    "aws_sha256": {"client": 1.75, "store": 2.5},
                    "strongroom": {"client": 3.0, "store": 4.25},
                },
                "load": {
                    tool: {"others_cores_median": 0.25, "others_cores_max": 0.5}
                    for tool in ("aws", "aws_sha256", "strongroom")
                },
            },
            "time_to_safe": {
                "1 MB": {
                    "bytes": 1_000_000,
                    "time_to_safe_s": summary([2.0, 2.1, 2.2]),
                    "pure_upload_s": summary([0.1, 0.1, 0.1]),
                    "settle_s": 1.0,
                }
            },
            "memory": {
                "bytes": 2**30,
                "seconds": 1.0,
                "peak_rss_bytes": 150_000_000,
                "peak_rss_mb": 150.0,
            },
        },
    }


def test_report_states_pass_fail_per_bar_and_the_machine(tmp_path: Path):
    document = _document()
    document["verdicts"] = [v.to_dict() for v in verdicts(document["results"])]
    names = [v["name"] for v in document["verdicts"]]
    assert names == ["archive throughput", "time-to-safe 1 MB", "peak RSS 1 GiB file"]
    assert [v["passed"] for v in document["verdicts"]] == [False, False, True]
    text = markdown(document)
    assert (
        "| archive throughput | 0.5 × aws s3 cp --checksum-algorithm SHA256 "
        "| ≥ 1 × aws s3 cp --checksum-algorithm SHA256 | **FAIL** |"
    ) in text
    # the equal-work ratio beside the plain one, and the load it was measured under
    assert "| `strongroom ingest` | 2.00 | 1.0 | 0.50 | 0.50 | 0.25 / 0.50 |" in text
    assert "**PASS**" in text
    assert "Test CPU, 2 cores" in text
    assert "| 1 MB | 2.10 s | 2.19 s | 1 s |" in text  # settle shown apart, not subtracted
    assert "| `strongroom ingest` | 3.00 ms | 4.25 ms | 7.25 ms |" in text  # CPU per file
    assert "| `aws s3 cp --checksum-algorithm SHA256` | 1.75 ms | 2.50 ms | 4.25 ms |" in text
    json_path, md_path = write(document, tmp_path)
    assert json_path.name == "2026-01-02-quick.json" and md_path.name == "2026-01-02-quick.md"
    assert json.loads(json_path.read_text())["verdicts"][0]["passed"] is False


def test_profile_summary_counts_only_worker_threads(tmp_path: Path):
    raw = tmp_path / "raw.txt"
    worker = (
        "thread (1): ingest-0;Thread.run (threading.py:982);"
        "Pipeline.advance (ingest/pipeline.py:159);Pipeline._seal (ingest/pipeline.py:300);"
        "Pipeline._probe (ingest/pipeline.py:600);run (subprocess.py:548);"
        "_PollLikeSelector.select (selectors.py:415)"
    )
    store = (
        "thread (1): ingest-0;Pipeline.advance (ingest/pipeline.py:159);"
        "Pipeline._store (ingest/pipeline.py:250);ObjectStore.put_file (archive/store.py:290);"
        "SocketIO.readinto (socket.py:706)"
    )
    idle = "thread (2): MainThread;main (frontdoors/main.py:23);Condition.wait (threading.py:331)"
    raw.write_text(f"{worker} 30\n{store} 10\n{idle} 60\n")
    result = summarize(raw)
    assert result["worker_samples"] == 40 and result["all_samples"] == 100
    shares = {row["frame"]: row["share"] for row in result["by_call"]}
    assert shares["Pipeline._probe (ingest/pipeline.py)"] == 0.75
    assert shares["ObjectStore.put_file (archive/store.py)"] == 0.25
    assert result["leaf"][0] == {"frame": "_PollLikeSelector.select (selectors.py)", "share": 0.75}


def test_generated_data_is_distinct_media_with_recorder_names(tmp_path: Path):
    clips = data.clips(tmp_path / "clips", 3, 300_000, tmp_path / "template.mp4")
    randoms = data.random_files(tmp_path / "small", 3, 1000, "s")
    digests = {hashlib.sha256(p.read_bytes()).hexdigest() for p in clips + randoms}
    assert len(digests) == 6  # content-addressed originals: no accidental sightings
    for clip in clips:
        assert re.search(DEFAULT_NAME_PATTERN, clip.name), clip.name
        probe = subprocess.run(
            ["ffprobe", "-v", "error", "-show_entries", "stream=codec_name", "-of", "csv", clip],
            capture_output=True,
            text=True,
            check=True,
        )
        assert "h264" in probe.stdout
    assert data.total_size(randoms) == 3000


def test_rss_sampler_sees_a_process_that_grows():
    code = (
        "import time; b = bytearray(120 * 1024 * 1024); "
        "b[::4096] = b'x' * len(b[::4096]); time.sleep(1)"
    )
    process = subprocess.Popen([sys.executable, "-c", code])
    sampler = RssSampler(process.pid, interval=0.01)
    sampler.start()
    process.wait(30)
    sampler.stop()
    assert sampler.peak > 100 * 1024 * 1024


def _tiny_plan() -> Plan:
    return Plan(
        name="test",
        clips=0,
        clip_bytes=0,
        big_files=0,
        big_bytes=0,
        repeats=1,
        tts_sizes=(("10 KB", 10_000, 2),),
        small_files=5,
        small_bytes=2000,
        memory_bytes=1_000_000,
        settle_seconds=0.5,
        rescan_seconds=1,
    )


def test_small_files_measures_three_tools_into_a_fresh_bucket(tmp_path: Path, seaweed):
    result = measure.small_files(Workspace(tmp_path, seaweed), _tiny_plan())
    assert result["files"] == 5
    assert result["tools"] == ["aws", "equal_work", "strongroom"]
    rates, seconds = result["rates"], result["seconds"]
    assert all(rates[tool] > 0 for tool in result["tools"])
    # files/s ratio = inverse ratio of the median wall-clock times; judged on equal work
    assert result["ratio"] == pytest.approx(
        seconds["equal_work"]["median"] / seconds["strongroom"]["median"], rel=0.01
    )
    assert result["ratio_plain"] == pytest.approx(
        seconds["aws"]["median"] / seconds["strongroom"]["median"], rel=0.01
    )
    # CPU is accounted to each tool and to the store that served it
    for tool in result["tools"]:
        cpu = result["cpu_per_file_ms"][tool]
        assert cpu["client"] > 0 and cpu["store"] >= 0, (tool, cpu)
        load = result["load"][tool]
        assert load["others_cores_median"] >= 0 and len(load["samples"]) == 1
    # five tiny PUTs can cost the store less than one clock tick (10 ms) of CPU;
    # ours (PUT, HEAD and a manifest per file) is the one that must show
    assert result["cpu_per_file_ms"]["strongroom"]["store"] > 0, result["cpu_per_file_ms"]
    # one fresh station per repetition, and every tool wrote into its bucket
    (station_dir,) = (tmp_path / "stations").iterdir()
    assert (station_dir / "var" / "catalog.db").exists()


def test_equal_work_loop_stores_locked_checked_originals_and_manifests(seaweed, tmp_path: Path):
    """The baseline does the work it claims: per file a locked original with the
    server's SHA-256, and a locked ~1 KB manifest, both create-only."""
    station = Workspace(tmp_path, seaweed).station("equal")
    files = data.random_files(tmp_path / "eq", 3, 5000, "eq")
    result = station.equal_work(files[0].parent, "eq")
    assert json.loads(result.stdout) == {"files": 3} and result.cpu_seconds > 0
    client = plain_client(seaweed)
    for path in files:
        digest = hashlib.sha256(path.read_bytes())
        head = client.head_object(
            Bucket=station.bucket, Key=f"eq/originals/{digest.hexdigest()}", ChecksumMode="ENABLED"
        )
        assert head["ChecksumSHA256"] == base64.b64encode(digest.digest()).decode()
        assert head["ObjectLockMode"] == "COMPLIANCE"
        manifest = client.head_object(
            Bucket=station.bucket, Key=f"eq/manifests/{digest.hexdigest()}.json"
        )
        assert 900 <= manifest["ContentLength"] <= 1200
        assert manifest["ObjectLockMode"] == "COMPLIANCE"
    # a second run finds every key taken: create-only, so it fails instead of overwriting
    with pytest.raises(BenchError, match=r"PreconditionFailed|412"):
        station.equal_work(files[0].parent, "eq")


def test_time_to_safe_reads_release_from_the_catalog(tmp_path: Path, seaweed):
    result = measure.time_to_safe(Workspace(tmp_path, seaweed), _tiny_plan())
    entry = result["10 KB"]
    assert len(entry["time_to_safe_s"]["samples"]) == 2
    # released after the file settled: never before the settle time has passed
    assert min(entry["time_to_safe_s"]["samples"]) >= 0.5
    assert entry["settle_s"] == 0.5
    dock = next((tmp_path / "stations").iterdir()) / "dock"
    assert [p.name for p in dock.iterdir() if not p.name.startswith(".")] == []


def test_memory_reports_peak_rss_of_the_daemon_and_the_ingest(tmp_path: Path, seaweed):
    result = measure.memory(Workspace(tmp_path, seaweed), _tiny_plan())
    assert result["peak_rss_bytes"] > 20 * 1024 * 1024  # a Python process with boto3 loaded
    assert result["ingest_peak_rss_mb"] > 20
    assert result["seconds"] > 0
    assert not (tmp_path / "data" / "memory" / "large.bin").exists()


def test_conditions_count_the_cpu_of_others_but_not_what_is_accounted():
    """The load a figure is labelled with: CPU used meanwhile by anyone but the tool,
    the store and the bench itself."""
    busy = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.6: pass"
    conditions = Conditions.begin()
    subprocess.run([sys.executable, "-c", busy], check=True)
    seen = conditions.end(accounted_cpu=0.0)
    assert seen["others_cpu_s"] >= 0.5, seen
    assert seen["others_cores"] > 0 and len(seen["load_start"]) == 3
    conditions = Conditions.begin()
    subprocess.run([sys.executable, "-c", busy], check=True)
    # the same process, accounted as the tool's: nothing (or next to nothing) is left over
    assert conditions.end(accounted_cpu=10.0)["others_cpu_s"] == 0
