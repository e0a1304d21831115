"""Hostile bundles: the offline verifier never passes one, never reads a byte
outside the bag (inotify watches the files the bundles point at), never ends
in a traceback, and stays in flat memory (peak RSS measured in a subprocess).

Every hostile bundle is made from one good bundle exported once for the
module: traversal and absolute paths in manifests and tag manifests,
symbolic links (files, payload folders, tag files, ``data`` itself, loops),
duplicate entries, a Payload-Oxum that lies, truncated files, names that are
not UTF-8, FIFOs, a 10 GB sparse payload, manifests of 100,000 lines,
malformed documents and a bundle re-signed with another key.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import hashlib
import io
import json
import os
import random
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from archive.dsse import envelope_bytes, key_id, sign_envelope
from archive.note import encode_vkey, sign_note
from tests.test_export_bundle import make_bundle
from verify.offline import main

REPO = Path(__file__).resolve().parent.parent
GB = 1024**3
IN_ACCESS, IN_OPEN = 0x1, 0x20


# --- helpers any bundle test can use ------------------------------------------------


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def rebag(bundle: Path, digests: dict[str, str] | None = None) -> None:
    """Rewrite manifest-sha256.txt, Payload-Oxum and tagmanifest-sha256.txt to
    match what is now in the bag – the consistent lie a forger tells. Symbolic
    links are never read: their digest comes from ``digests`` (by target)."""
    digests = digests or {}
    lines, total, count = [], 0, 0
    for folder, dirs, names in os.walk(bundle / "data"):
        dirs.sort()
        for name in sorted(names + [d for d in dirs if (Path(folder) / d).is_symlink()]):
            path = Path(folder) / name
            rel = path.relative_to(bundle).as_posix()
            if path.is_symlink():
                digest = digests.get(os.readlink(path), "0" * 64)
            elif path.is_file():
                digest = sha256_hex(path.read_bytes())
                total += path.stat().st_size
                count += 1
            else:
                digest = "0" * 64
            lines.append(f"{digest}  {rel}\n")
    (bundle / "manifest-sha256.txt").write_text("".join(lines))
    info = bundle / "bag-info.txt"
    text = "".join(
        f"Payload-Oxum: {total}.{count}\n" if line.startswith("Payload-Oxum:") else line
        for line in info.read_text().splitlines(keepends=True)
    )
    info.write_text(text)
    retag(bundle)


def retag(bundle: Path) -> None:
    tags = sorted(
        p.name
        for p in bundle.iterdir()
        if p.is_file() and not p.is_symlink() and p.name != "tagmanifest-sha256.txt"
    )
    (bundle / "tagmanifest-sha256.txt").write_text(
        "".join(f"{sha256_hex((bundle / n).read_bytes())}  {n}\n" for n in tags)
    )


def forge(bundle: Path, attacker: SigningKey) -> None:
    """Re-sign every manifest and the checkpoint with ``attacker``, put its key
    in data/keys/, and re-bag: a bundle that verifies perfectly – with the
    key it brought itself."""
    data = bundle / "data"
    raw = bytes(attacker.verify_key)
    for manifest in [*(data / "manifests").glob("*.dsse.json"), *data.glob("derivatives/*/*.json")]:
        envelope = json.loads(manifest.read_text())
        payload = json.loads(base64.b64decode(envelope["payload"]))
        manifest.write_bytes(
            envelope_bytes(sign_envelope(payload, envelope["payloadType"], attacker))
        )
    keys = data / "keys"
    old = json.loads(next(keys.glob("*.json")).read_text())
    for path in keys.iterdir():
        path.unlink()
    name = old["key_name"]
    document = {
        "keyid": key_id(raw),
        "algorithm": "ed25519",
        "public_key": raw.hex(),
        "key_name": name,
        "vkey": encode_vkey(name, raw),
    }
    (keys / f"{key_id(raw)}.json").write_text(json.dumps(document, indent=2) + "\n")
    checkpoint = data / "ledger" / "checkpoint.txt"
    text = checkpoint.read_text()
    body = text[: text.rfind("\n\n") + 1]
    checkpoint.write_text(sign_note(body, name, attacker))
    rebag(bundle)


def run_main(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


class Inotify:
    """Open and read events on files and folders outside the bag."""

    def __init__(self, folders: list[Path]) -> None:
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self.libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        assert self.fd >= 0
        for folder in folders:
            wd = self.libc.inotify_add_watch(self.fd, os.fsencode(folder), IN_OPEN | IN_ACCESS)
            assert wd >= 0, folder

    def events(self) -> bytes:
        seen = b""
        while True:
            try:
                seen += os.read(self.fd, 65536)
            except BlockingIOError:
                return seen

    def close(self) -> None:
        os.close(self.fd)


# --- the module's one good bundle ------------------------------------------------------


@dataclass
class Good:
    bundle: Path
    key: Path  # the auditor's own copy of the station key (outside the bag)
    outside: Path
    secret: Path
    ids: list[str]
    known: dict[str, str] = field(default_factory=dict)  # symlink target -> its digest


@pytest.fixture(scope="module")
def good(module_station, tmp_path_factory) -> Good:
    root = tmp_path_factory.mktemp("fuzz")
    bundle, items = make_bundle(module_station, root)
    key = root / "station.pem"
    key.write_bytes(next((bundle / "data" / "keys").glob("*.pem")).read_bytes())
    outside = root / "outside"
    outside.mkdir()
    secret = outside / "secret"
    secret.write_bytes(b"never to be read by the verifier " + os.urandom(16).hex().encode())
    shutil.copytree(bundle / "data", outside / "data")
    for name in ("bag-info.txt", "manifest-sha256.txt"):
        shutil.copy(bundle / name, outside / name)
    known = {str(secret): sha256_hex(secret.read_bytes())}
    for path in (outside / "data").rglob("*"):
        if path.is_file():
            rel = path.relative_to(outside / "data").as_posix()
            known[str(path)] = sha256_hex((bundle / "data" / rel).read_bytes())
    return Good(bundle, key, outside, secret, [i["evidence_id"] for i in items], known)


# --- the hostile mutations ----------------------------------------------------------------
# each: (name, mutate(case, rng, good), the check that must fail, cases to make)

Mutate = Callable[[Path, random.Random, Good], None]


def _append(path: Path, line: str | bytes) -> None:
    with path.open("ab") as handle:
        handle.write(line if isinstance(line, bytes) else line.encode())


def _original(case: Path, good: Good, rng: random.Random) -> Path:
    evidence_id = rng.choice(good.ids)
    return next((case / "data" / "originals" / evidence_id).iterdir())


def _random_digest(rng: random.Random) -> str:
    return f"{rng.getrandbits(256):064x}"


def m_absolute_payload(case, rng, good):
    target = rng.choice([str(good.secret), "/etc/passwd", "/etc/hostname"])
    _append(case / "manifest-sha256.txt", f"{_random_digest(rng)}  {target}\n")


def m_traversal_payload(case, rng, good):
    depth = rng.randint(1, 4)
    path = "data/" + "../" * depth + "outside/secret"
    path = rng.choice([path, f"data/originals/{'../' * (depth + 1)}outside/secret"])
    _append(case / "manifest-sha256.txt", f"{_random_digest(rng)}  {path}\n")


def m_traversal_tag(case, rng, good):
    path = rng.choice(
        ["../outside/secret", "../../" * rng.randint(1, 3) + "etc/passwd", str(good.secret)]
    )
    _append(case / "tagmanifest-sha256.txt", f"{_random_digest(rng)}  {path}\n")


def m_dot_path(case, rng, good):
    manifest = case / "manifest-sha256.txt"
    lines = manifest.read_text().splitlines(keepends=True)
    i = rng.randrange(len(lines))
    digest, name = lines[i].split("  ", 1)
    lines[i] = f"{digest}  {rng.choice([name.replace('/', '/./', 1), name.replace('/', '//', 1)])}"
    manifest.write_text("".join(lines))


def m_symlink_file(case, rng, good):
    original = _original(case, good, rng)
    original.unlink()
    original.symlink_to(rng.choice([good.secret, Path("/etc/passwd")]))
    rebag(case, good.known)


def m_symlink_payload_folder(case, rng, good):
    evidence_id = rng.choice(good.ids)
    folder = case / "data" / "originals" / evidence_id
    shutil.rmtree(folder)
    folder.symlink_to(good.outside / "data" / "originals" / evidence_id)
    if rng.random() < 0.5:
        rebag(case, good.known)


def m_symlink_ledger(case, rng, good):
    shutil.rmtree(case / "data" / "ledger")
    (case / "data" / "ledger").symlink_to(good.outside / "data" / "ledger")


def m_symlink_data(case, rng, good):
    shutil.rmtree(case / "data")
    (case / "data").symlink_to(good.outside / "data")


def m_symlink_tag_file(case, rng, good):
    name = rng.choice(["bag-info.txt", "manifest-sha256.txt"])
    (case / name).unlink()
    (case / name).symlink_to(good.outside / name)


def m_symlink_key(case, rng, good):
    key = next((case / "data" / "keys").glob("*.json"))
    key.unlink()
    key.symlink_to(good.outside / "data" / "keys" / key.name)
    rebag(case, good.known)


def m_symlink_loop_or_dangling(case, rng, good):
    link = case / "data" / rng.choice(["loop", "originals/loop"])
    link.symlink_to(rng.choice([".", "..", "/", "/nonexistent/target"]))


def m_duplicate(case, rng, good):
    name = rng.choice(["manifest-sha256.txt", "tagmanifest-sha256.txt"])
    manifest = case / name
    lines = manifest.read_text().splitlines(keepends=True)
    line = rng.choice(lines)
    path = line.split("  ", 1)[1]
    extra = line if rng.random() < 0.5 else f"{_random_digest(rng)}  {path}"
    lines.insert(rng.randrange(len(lines) + 1), extra)
    manifest.write_text("".join(lines))
    if name == "manifest-sha256.txt":
        retag(case)


def m_oxum_lies(case, rng, good):
    info = case / "bag-info.txt"
    text = info.read_text()
    start = text.index("Payload-Oxum: ") + len("Payload-Oxum: ")
    end = text.index("\n", start)
    total, count = (int(x) for x in text[start:end].split("."))
    choice = rng.randrange(3)
    if choice == 0:
        total += rng.choice([-1, 1, 10 * GB])
    elif choice == 1:
        count += rng.choice([-1, 1])
    lie = f"{total}.{count}" if choice < 2 else "not-an-oxum"
    info.write_text(text[:start] + lie + text[end:])
    retag(case)


def m_truncate_original(case, rng, good):
    original = _original(case, good, rng)
    data = original.read_bytes()
    original.write_bytes(data[: rng.randrange(len(data))])
    if rng.random() < 0.5:
        rebag(case)


def m_truncate_document(case, rng, good):
    target = rng.choice(
        [
            *(case / "data" / "ledger").glob("*.json"),
            *(case / "data" / "manifests").glob("*.json"),
            case / "data" / "ledger" / "checkpoint.txt",
        ]
    )
    data = target.read_bytes()
    target.write_bytes(data[: rng.randrange(len(data))])
    rebag(case)


def m_truncate_manifest(case, rng, good):
    manifest = case / rng.choice(["manifest-sha256.txt", "tagmanifest-sha256.txt"])
    data = manifest.read_bytes()
    manifest.write_bytes(data[: rng.randrange(1, len(data) - 1)])


def m_non_utf8_file(case, rng, good):
    folder = case / "data" / rng.choice(["", "originals", "ledger"])
    name = b"\xff\xfe" + bytes([rng.randrange(0x80, 0xFF)]) + b".MP4"
    with open(os.path.join(os.fsencode(folder), name), "wb") as handle:
        handle.write(b"x" * 100)
    _append(
        case / "manifest-sha256.txt",
        f"{sha256_hex(b'x' * 100)}  ".encode()
        + os.fsencode(folder.relative_to(case))
        + b"/"
        + name
        + b"\n",
    )


def m_non_utf8_manifest_line(case, rng, good):
    manifest = case / rng.choice(["manifest-sha256.txt", "tagmanifest-sha256.txt"])
    data = manifest.read_bytes().split(b"\n")
    i = rng.randrange(len(data) - 1)
    data[i] = data[i][:70] + b"\xc3\x28" + data[i][72:]
    manifest.write_bytes(b"\n".join(data))


def m_non_utf8_folder(case, rng, good):
    evidence_id = rng.choice(good.ids)
    folder = os.fsencode(case / "data" / "originals") + b"/" + evidence_id.encode() + b"\xe9"
    os.rename(case / "data" / "originals" / evidence_id, folder)


def m_fifo(case, rng, good):
    fifo = case / "data" / rng.choice(["pipe", "originals/pipe", "ledger/pipe.json"])
    os.mkfifo(fifo)
    rebag(case)


def m_sparse_original(case, rng, good):
    original = _original(case, good, rng)
    with original.open("r+b") as handle:
        handle.truncate(10 * GB)
    if rng.random() < 0.5:  # the consistent lie: the Oxum says 10 GB too
        info = case / "bag-info.txt"
        total = sum(p.stat().st_size for p in (case / "data").rglob("*") if p.is_file())
        count = sum(1 for p in (case / "data").rglob("*") if p.is_file())
        text = "".join(
            f"Payload-Oxum: {total}.{count}\n" if line.startswith("Payload-Oxum:") else line
            for line in info.read_text().splitlines(keepends=True)
        )
        info.write_text(text)
        retag(case)


def m_sparse_extra(case, rng, good):
    extra = case / "data" / "ledger" / "big.json"
    with extra.open("wb") as handle:
        handle.truncate(10 * GB)
    total = sum(p.stat().st_size for p in (case / "data").rglob("*") if p.is_file())
    count = sum(1 for p in (case / "data").rglob("*") if p.is_file())
    _append(case / "manifest-sha256.txt", f"{_random_digest(rng)}  data/ledger/big.json\n")
    info = case / "bag-info.txt"
    text = "".join(
        f"Payload-Oxum: {total}.{count}\n" if line.startswith("Payload-Oxum:") else line
        for line in info.read_text().splitlines(keepends=True)
    )
    info.write_text(text)
    retag(case)


def m_huge_manifest(case, rng, good):
    manifest = case / "manifest-sha256.txt"
    with manifest.open("a") as handle:
        for n in range(100_000):
            if rng.random() < 0.5:
                handle.write(f"{n:064x}  data/originals/x{n}/clip.MP4\n")
            else:
                handle.write(f"garbage line {n} {'../' * (n % 5)}\n")
    retag(case)


def m_long_line(case, rng, good):
    _append(case / "manifest-sha256.txt", "0" * 64 + "  data/" + "a" * 200_000)


def m_directory_entry(case, rng, good):
    folder = rng.choice(["data/originals", "data/ledger", "data"])
    _append(case / "manifest-sha256.txt", f"{_random_digest(rng)}  {folder}\n")
    retag(case)


def m_byte_flip(case, rng, good):
    files = sorted(p for p in case.rglob("*") if p.is_file() and p.stat().st_size)
    target = rng.choice(files)
    data = bytearray(target.read_bytes())
    i = rng.randrange(len(data))
    data[i] ^= 1 << rng.randrange(8)
    target.write_bytes(bytes(data))


def m_extra_file(case, rng, good):
    where = rng.choice(["data/originals/extra.MP4", "data/notes.txt", "README-FIRST.txt"])
    (case / where).write_bytes(b"run this other verifier instead")


def m_missing_file(case, rng, good):
    files = sorted(p for p in case.rglob("*") if p.is_file())
    rng.choice(files).unlink()


def m_big_envelope(case, rng, good):
    manifest = next((case / "data" / "manifests").glob("*.dsse.json"))
    manifest.write_text("[" + "0," * (1024 * 1024) + "0]")
    rebag(case)


def m_malformed_documents(case, rng, good):
    choice = rng.randrange(5)
    manifest = next((case / "data" / "manifests").glob("*.dsse.json"))
    ledger = next(p for p in (case / "data" / "ledger").glob("ev-*.json"))
    if choice == 0:
        envelope = json.loads(manifest.read_text())
        envelope["signatures"] = rng.choice([7, "x", [1, 2], None, [{"keyid": 5}]])
        manifest.write_text(json.dumps(envelope))
    elif choice == 1:
        manifest.write_text(json.dumps(rng.choice([[], 1, "s", None, {"payload": 3}])))
    elif choice == 2:
        document = json.loads(ledger.read_text())
        document["leaves"] = rng.choice([5, "x", None, [1], [{"index": "x"}]])
        ledger.write_text(json.dumps(document))
    elif choice == 3:
        document = json.loads(ledger.read_text())
        document["checkpoint"] = rng.choice([5, "x", [1]])
        document["leaves"][0]["inclusion_proof"] = rng.choice([["zz"], [5], "ab", None])
        ledger.write_text(json.dumps(document))
    else:
        (case / "data" / "ledger" / "checkpoint.txt").write_bytes(
            rng.choice([b"", b"\xff\xfe\n\n", b"x\n\n\xe2\x80\x94 k " + b"A" * 100 + b"\n"])
        )
    rebag(case)


def m_forged(case, rng, good):
    forge(case, SigningKey.generate())


MUTATIONS: list[tuple[Mutate, str, int]] = [
    (m_absolute_payload, "bag.payload", 9),
    (m_traversal_payload, "bag.payload", 9),
    (m_traversal_tag, "bag.tag", 9),
    (m_dot_path, "bag.payload", 7),
    (m_symlink_file, "bag.entry", 8),
    (m_symlink_payload_folder, "bag.entry", 8),
    (m_symlink_ledger, "bag.entry", 4),
    (m_symlink_data, "bag.entry", 4),
    (m_symlink_tag_file, "bag.entry", 6),
    (m_symlink_key, "bag.entry", 4),
    (m_symlink_loop_or_dangling, "bag.entry", 6),
    (m_duplicate, "bag.", 10),
    (m_oxum_lies, "bag.oxum", 9),
    (m_truncate_original, "original.sha256", 8),
    (m_truncate_document, "", 8),
    (m_truncate_manifest, "bag.", 6),
    (m_non_utf8_file, "bag.entry", 6),
    (m_non_utf8_manifest_line, "bag.", 6),
    (m_non_utf8_folder, "bag.entry", 4),
    (m_fifo, "bag.entry", 6),
    (m_sparse_original, "", 4),
    (m_sparse_extra, "bag.payload", 2),
    (m_huge_manifest, "bag.payload", 2),
    (m_long_line, "bag.payload", 3),
    (m_directory_entry, "bag.payload", 4),
    (m_byte_flip, "", 30),
    (m_extra_file, "bag.", 6),
    (m_missing_file, "", 15),
    (m_big_envelope, "manifest.signature", 3),
    (m_malformed_documents, "", 20),
    (m_forged, "manifest.signature", 4),
]


def test_hostile_bundles_never_pass_never_leave_the_bag_never_crash(good, tmp_path):
    cases = [(m, expect, seed) for m, expect, n in MUTATIONS for seed in range(n)]
    assert len(cases) >= 200
    # the control: the good bundle passes with the auditor's key, so every
    # failure below comes from the mutation
    code, out, err = run_main(str(good.bundle), "--pubkey", str(good.key))
    assert code == 0 and not err, out
    never = {sha256_hex(good.secret.read_bytes()), sha256_hex(Path("/etc/passwd").read_bytes())}
    # /etc is not watched: other processes on the machine read /etc/passwd all the
    # time; the hash check covers it, and the outside folder stands for it
    watched = [good.outside, *(p for p in good.outside.rglob("*") if p.is_dir())]
    inotify = Inotify(watched)
    problems = []
    try:
        for number, (mutate, expect, seed) in enumerate(cases):
            case = tmp_path / f"case-{number}"
            shutil.copytree(good.bundle, case, symlinks=True)
            mutate(case, random.Random(seed), good)
            inotify.events()
            name = f"{mutate.__name__}[{seed}]"
            try:
                code, out, err = run_main(str(case), "--pubkey", str(good.key), "--json")
            except Exception as exc:  # a traceback is a finding, listed with the rest
                problems.append(f"{name}: raised {exc!r}")
                continue
            touched = inotify.events()
            if code != 1 or err:
                problems.append(f"{name}: exit {code}, stderr {err[-500:]!r}")
                continue
            report = json.loads(out)
            failed = {c["check"] for c in report["failures"]} | set(report.get("more_failures", {}))
            if report["ok"] or not any(c.startswith(expect) for c in failed):
                problems.append(f"{name}: expected a failed {expect!r} check, got {failed}")
            if touched:
                problems.append(f"{name}: something outside the bag was opened or read")
            if any(h in out for h in never):
                problems.append(f"{name}: printed the hash of a file outside the bag")
            shutil.rmtree(case, ignore_errors=True)
    finally:
        inotify.close()
    assert not problems, "\n".join(problems)


def _peak_rss_kib(bundle: Path, key: Path) -> tuple[int, int]:
    """(exit status, peak RSS in KiB) of the verifier run alone in a subprocess."""
    # VmHWM, not getrusage: ru_maxrss survives exec and would report pytest's own peak
    code = (
        "import contextlib, io, re\n"
        "from verify.offline import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    rc = main([{str(bundle)!r}, '--pubkey', {str(key)!r}])\n"
        "status = open('/proc/self/status').read()\n"
        "print(rc, re.search(r'VmHWM:\\s+(\\d+) kB', status).group(1))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert result.returncode == 0, result.stderr
    rc, peak = result.stdout.split()
    return int(rc), int(peak)


def test_memory_stays_flat_for_huge_manifests_and_a_10_gb_sparse_payload(good, tmp_path):
    _, baseline = _peak_rss_kib(good.bundle, good.key)
    for mutate in (m_huge_manifest, m_sparse_original, m_sparse_extra):
        for seed in (0, 1):
            case = tmp_path / f"{mutate.__name__}-{seed}"
            shutil.copytree(good.bundle, case, symlinks=True)
            mutate(case, random.Random(seed), good)
            rc, peak = _peak_rss_kib(case, good.key)
            print(f"peak RSS {mutate.__name__}[{seed}]: {peak} KiB (good bundle {baseline} KiB)")
            assert rc == 1
            assert peak - baseline < 32 * 1024, (mutate.__name__, baseline, peak)
            shutil.rmtree(case)
