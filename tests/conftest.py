"""Shared fixtures: a real SeaweedFS and a real PostgreSQL for the session, a
fresh station per test.

The store is the one operators run (``archive.localstore``: ``weed mini``
locked down on 127.0.0.1), started once per test session in a fresh folder.
Each test gets its own bucket, data folder and dock, so tests never see each
other's objects and a COMPLIANCE lock left behind harms nobody.

The catalog is SQLite unless a module asks for more with
``pytestmark = pytest.mark.catalogs("sqlite", "postgresql")``: then each of
its tests runs once per catalog, on PostgreSQL in a fresh database of the
session's own server (``tests/pgserver.py``). Under pytest-xdist every worker
has its own store and server, on its own ports.

The store is ``weed mini`` unless a test or module asks for more with
``pytest.mark.stores("mini", "cluster")``: then it runs once per store, the
second time against the session's SeaweedFS cluster (``archive.localcluster``:
1 master, 3 volume servers in two racks, replication 010, a filer, two S3
gateways named in ``[store] endpoints``), started only when a test needs it.
A test on the cluster runs on the SQLite catalog only (its subject is the
store); ``stores(..., cluster_only={"param": [values]})`` limits it further to
some of the test's own parameters, to keep CI within its time budget.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import pgserver
import pytest
from botocore.config import Config

from archive import localcluster, localstore
from archive.context import Archive
from config.settings import Settings, load_settings

REPO = Path(__file__).resolve().parent.parent
STRONGROOM = [sys.executable, "-m", "frontdoors.main"]
CATALOGS = ("sqlite", "postgresql")
STORES = ("mini", "cluster")


def worker_index() -> int:
    """0 without xdist, N for xdist worker ``gwN``."""
    name = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    return int(name.removeprefix("gw") or 0)


def store_port_base() -> int:
    """A free SeaweedFS port base in this xdist worker's own range, so two
    workers starting their stores at once cannot pick the same ports."""
    start = 21000 + 800 * worker_index()
    return localstore.find_port_base(start, start + 800)


def start_store(folder: Path) -> localstore.LocalStore:
    return localstore.start(folder, store_port_base())


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[localstore.LocalStore]:
    """One locked-down ``weed mini`` for the whole test session."""
    folder = tmp_path_factory.mktemp("seaweedfs")
    store = start_store(folder)
    try:
        yield store
    finally:
        store.stop()


def cluster_port_base() -> int:
    """A free cluster port range in this xdist worker's own part of 40000–48999."""
    start = 40000 + 1500 * worker_index()
    return localcluster.find_base(start, start + 1500)


@pytest.fixture(scope="session")
def seaweed_cluster(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[localcluster.LocalCluster]:
    """One boxed SeaweedFS cluster for the whole session (only if a test asks)."""
    cluster = localcluster.start(tmp_path_factory.mktemp("cluster"), cluster_port_base())
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def store_backend(request: pytest.FixtureRequest) -> str:
    """``mini`` unless the ``stores`` marker parametrizes it."""
    return getattr(request, "param", "mini")


@pytest.fixture
def store_under_test(request: pytest.FixtureRequest, store_backend: str):
    """The session's store of this test's kind: ``weed mini`` or the cluster."""
    return store_for(request, store_backend)


def store_for(request: pytest.FixtureRequest, backend: str):
    name = "seaweed_cluster" if backend == "cluster" else "seaweed"
    return request.getfixturevalue(name)


def store_toml(store) -> str:
    """The ``[store]`` lines naming a store: every gateway of a cluster."""
    lines = f'endpoint_url = "{store.endpoint_url}"\n'
    if getattr(store, "endpoints", None):
        lines += f"endpoints = {json.dumps(store.endpoints)}\n"
    return lines


@pytest.fixture(scope="session")
def pg_server() -> Iterator[pgserver.PgServer]:
    """One PostgreSQL for the session (started only if a test needs it)."""
    server = pgserver.start_server()
    try:
        yield server
    finally:
        server.destroy()


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("dist", "no") == "loadgroup" and "PYTEST_XDIST_WORKER" not in os.environ:
        # where the workers leave each test's group for the scheduler (below);
        # set before the workers start, so they inherit it
        folder = Path(tempfile.mkdtemp(prefix="strongroom-xdist-"))
        os.environ[GROUPS_FILE] = str(folder / "groups.json")
    config.addinivalue_line(
        "markers", "catalogs(*names): run the module's tests on these catalogs (default sqlite)"
    )
    config.addinivalue_line(
        "markers",
        "stores(*names, cluster_only=None): run on these stores, mini and/or cluster "
        "(default mini); cluster_only={param: [values]} limits the cluster runs",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize ``catalog_backend`` by the ``catalogs`` marker and
    ``store_backend`` by the ``stores`` marker (module scope, so module-scoped
    stations work and tests are grouped per catalog and store)."""
    stores = metafunc.definition.get_closest_marker("stores")
    if stores and "store_backend" in metafunc.fixturenames:
        unknown = set(stores.args) - set(STORES)
        assert not unknown, f"unknown stores {unknown}"
        metafunc.parametrize("store_backend", stores.args, scope="module", indirect=True)
    if "catalog_backend" not in metafunc.fixturenames:
        return
    marker = metafunc.definition.get_closest_marker("catalogs")
    names = marker.args if marker else ("sqlite",)
    unknown = set(names) - set(CATALOGS)
    assert not unknown, f"unknown catalogs {unknown}"
    metafunc.parametrize("catalog_backend", names, scope="module", indirect=True)


@pytest.fixture(scope="module")
def catalog_backend(request: pytest.FixtureRequest) -> str:
    return request.param


def drop_cluster_runs_not_wanted(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The cluster runs only on SQLite and only the ``cluster_only`` parameters."""
    keep, drop = [], []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if params.get("store_backend") != "cluster":
            keep.append(item)
            continue
        only = item.get_closest_marker("stores").kwargs.get("cluster_only") or {}
        wanted = params.get("catalog_backend", "sqlite") == "sqlite" and all(
            params.get(name) in values for name, values in only.items()
        )
        (keep if wanted else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


#: the modules that took longest in the last full run, slowest first (the
#: cluster's tests are one group of their own): `make test` hands them to the
#: two xdist workers first, so that neither is left with a long module at the
#: end while the other idles. Only the balance depends on this list.
SLOW_FIRST = (
    "cluster",
    "test_faults",
    "test_api_scopes",
    "test_bad_input",
    "test_playback",
    "test_disposition",
    "test_catalog_faults",
    "test_uploads",
    "test_station_keys",
    "test_api_schemathesis",
    "test_api_roles",
    "test_api_routes",
    "test_daemon",
    "test_key_rotation",
    "test_api_serve",
    "test_crash",
    "test_api_hardening",
    "test_agencies",
)
#: module-scoped fixtures that only carry a parameter: sharing them saves nothing
PARAMETER_FIXTURES = {"catalog_backend", "store_backend"}


GROUPS_FILE = "STRONGROOM_XDIST_GROUPS"


def xdist_group(item: pytest.Item) -> str | None:
    """The xdist group of a test under ``--dist loadgroup`` (``make test``).

    Tests that share a module-scoped fixture (a station set up once and read by
    many parametrised cases) go to one worker, so it is built once, not once per
    worker; they are grouped per module and per catalog/store, as the fixture
    is. Every test on the cluster is in one group, so only one worker starts a
    cluster. A test that shares nothing is scheduled on its own (None)."""
    params = getattr(getattr(item, "callspec", None), "params", {})
    if params.get("store_backend") == "cluster" or "seaweed_cluster" in getattr(
        item, "fixturenames", ()
    ):
        return "cluster"
    fixtures = getattr(item, "_fixtureinfo", None)
    shared = fixtures is not None and any(
        defs[-1].scope == "module" and name not in PARAMETER_FIXTURES
        for name, defs in fixtures.name2fixturedefs.items()
        if defs
    )
    if not shared:
        return None
    key = "-".join(str(params[name]) for name in sorted(PARAMETER_FIXTURES & set(params)))
    return f"{item.path.stem}:{key}" if key else item.path.stem


def slowness_rank(item: pytest.Item) -> int:
    name = "cluster" if xdist_group(item) == "cluster" else item.path.stem
    return SLOW_FIRST.index(name) if name in SLOW_FIRST else len(SLOW_FIRST)


@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> Iterator[None]:
    """Drop the cluster runs not wanted; once pytest has grouped the tests by
    their parametrised fixtures, move the slow modules to the front (a stable
    sort: each module keeps its order); an xdist worker then writes down each
    test's group for the scheduler."""
    drop_cluster_runs_not_wanted(config, items)
    yield
    items.sort(key=slowness_rank)
    if "PYTEST_XDIST_WORKER" in os.environ and os.environ.get(GROUPS_FILE):
        groups = {item.nodeid: xdist_group(item) for item in items}
        target = Path(os.environ[GROUPS_FILE])
        part = target.with_suffix(f".{os.environ['PYTEST_XDIST_WORKER']}")
        part.write_text(json.dumps({k: v for k, v in groups.items() if v}), encoding="utf-8")
        part.replace(target)  # both workers write the same map


def pytest_unconfigure(config: pytest.Config) -> None:
    groups = os.environ.get(GROUPS_FILE)
    if groups and "PYTEST_XDIST_WORKER" not in os.environ:
        shutil.rmtree(Path(groups).parent, ignore_errors=True)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """``--dist loadgroup`` by :func:`xdist_group`. (xdist's own loadgroup
    marks the group in ``item._nodeid``, which pytest 9 no longer reads, so
    its ``xdist_group`` marks group nothing.) The workers write the groups
    before they report their collection, which the scheduler waits for."""
    if config.getoption("dist", "no") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class SharedFixtureGroups(LoadScopeScheduling):
        groups: dict[str, str] | None = None

        def _split_scope(self, nodeid: str) -> str:
            if self.groups is None:
                self.groups = json.loads(Path(os.environ[GROUPS_FILE]).read_text("utf-8"))
            return self.groups.get(nodeid, nodeid)

    return SharedFixtureGroups(config, log)


def new_catalog_url(request: pytest.FixtureRequest, backend: str) -> str:
    """A fresh catalog: the station's own SQLite file, or a new PostgreSQL database."""
    if backend == "postgresql":
        return request.getfixturevalue("pg_server").create_database()
    return "sqlite:///var/catalog.db"


def raw_s3(store: localstore.LocalStore):
    """A plain boto3 client, as an attacker or an auditor with keys would use."""
    return boto3.session.Session().client(
        "s3",
        endpoint_url=store.endpoint_url,
        aws_access_key_id=store.credentials["access_key_id"],
        aws_secret_access_key=store.credentials["secret_access_key"],
        region_name="us-east-1",
        config=Config(
            s3={"addressing_style": "path"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )


@dataclass
class Station:
    """One Strongroom station in a temp folder, pointed at the session's store."""

    root: Path
    config: Path
    bucket: str
    store: localstore.LocalStore
    dock: Path
    env: dict[str, str] = field(default_factory=dict)
    #: the catalog the config names: SQLite in var/ or a PostgreSQL database
    catalog_url: str = "sqlite:///var/catalog.db"
    name: str = "dock-01"

    @property
    def backend(self) -> str:
        return "postgresql" if self.catalog_url.startswith("postgresql") else "sqlite"

    @property
    def absolute_catalog_url(self) -> str:
        """The catalog URL usable from any folder (a SQLite path made absolute)."""
        if self.backend == "sqlite":
            return f"sqlite:///{self.root / 'var' / 'catalog.db'}"
        return self.catalog_url

    @property
    def s3(self):
        return raw_s3(self.store)

    def ingest_bytes(self, name: str, data: bytes) -> dict:
        """Archive ``data`` as a file called ``name`` with ``strongroom ingest``
        (in place, outside the dock); returns the item from ``--json``."""
        source = self.root / "incoming" / name
        source.parent.mkdir(exist_ok=True)
        source.write_bytes(data)
        return json.loads(self.cli("ingest", str(source), "--json").stdout)["items"][0]

    def settings(self) -> Settings:
        return load_settings(self.config)

    def archive(self) -> Archive:
        return Archive.open(self.settings())

    def write_config(
        self, extra: str = "", *, settle: float = 0.5, after_archive: str = "delete"
    ) -> None:
        self.config.write_text(
            f"""
[station]
name = "{self.name}"
data_dir = "var"

[[docks]]
path = "dock"
settle_seconds = {settle}
after_archive = "{after_archive}"

[store]
{store_toml(self.store)}bucket = "{self.bucket}"
multipart_threshold_mb = 8
part_size_mb = 5

[catalog]
url = "{self.catalog_url}"

[pipeline]
rescan_seconds = 2
retry_initial_seconds = 0.5
retry_max_seconds = 2

[api]
listen = "127.0.0.1:0"
{extra}
""",
            encoding="utf-8",
        )
        # a PostgreSQL catalog URL carries a password: such a file must be private
        self.config.chmod(0o600)

    def cli(self, *args: str, check: bool = True, timeout: float = 300, env: dict | None = None):
        """Run ``strongroom ARGS --config …`` in a subprocess, as an operator would."""
        result = subprocess.run(
            [*STRONGROOM, *args, "--config", str(self.config)],
            cwd=self.root,
            env={**os.environ, **self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"strongroom {' '.join(args)} exited {result.returncode}\n"
                f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
            )
        return result

    def start_daemon(
        self, env: dict | None = None, log_name: str = "daemon.log", wrapper: list[str] = ()
    ) -> Daemon:
        """``strongroom run`` in the background (``wrapper``: e.g. setpriv to drop rights)."""
        log = (self.root / log_name).open("ab")
        process = subprocess.Popen(
            [*wrapper, *STRONGROOM, "run", "--config", str(self.config)],
            cwd=self.root,
            env={**os.environ, **self.env, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        return Daemon(process, self.root / log_name)


@dataclass
class Daemon:
    process: subprocess.Popen
    log: Path

    def stop(self, timeout: float = 60) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def wait_until(predicate, timeout: float = 60, interval: float = 0.2, message: str = "condition"):
    """Poll ``predicate`` until it returns a truthy value; fail with ``message``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")


@pytest.fixture
def station(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
    catalog_backend: str,
    store_backend: str,
) -> Station:
    """A configured station with its own bucket and catalog, initialised (key,
    bucket, lock test), on the store the test runs on."""
    seaweed = store_for(request, store_backend)
    bucket = f"t-{uuid.uuid4().hex[:16]}"
    env = seaweed.env()
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    dock = tmp_path / "dock"
    station = Station(
        tmp_path,
        tmp_path / "strongroom.toml",
        bucket,
        seaweed,
        dock,
        env,
        catalog_url=new_catalog_url(request, catalog_backend),
    )
    station.write_config()
    init_in_process(station)
    return station


def init_in_process(station: Station) -> None:
    """What ``strongroom init`` does (data folders, catalog tables, signing key,
    bucket, lock self-test, public key), in this process and under the umask the
    CLI sets: a fresh interpreter per test station cost about a second of CPU,
    and ``init`` is not the subject of the tests that use ``station``
    (``module_station`` and the tests of ``init`` itself run the command)."""
    from archive.bootstrap import initialize
    from archive.store import ObjectStore

    settings = station.settings()
    store = ObjectStore(settings.store)
    umask = os.umask(0o027)  # as the CLI's start does: nothing world-readable
    try:
        initialize(settings, store)
    finally:
        os.umask(umask)
        store.close()


# --- the case-system API (issue 4) ---------------------------------------------

API_ROLES = ("admin", "auditor", "case-system")


@dataclass
class ApiHandle:
    """A real uvicorn serving the API of one station on 127.0.0.1 (in this process)."""

    url: str
    tokens: dict[str, str]
    archive: Archive
    server: object

    def headers(self, role: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"} if role else {}

    def request(self, method: str, path: str, role: str | None = "admin", **kwargs):
        import httpx

        headers = {**self.headers(role), **kwargs.pop("headers", {})}
        return httpx.request(method, self.url + path, headers=headers, timeout=60, **kwargs)

    def get(self, path: str, role: str | None = "admin", **kwargs):
        return self.request("GET", path, role, **kwargs)

    def stop(self) -> None:
        self.server.stop()  # type: ignore[attr-defined]
        self.archive.close()


def start_api(
    station: Station, extra: str = "", scoped: dict[str, tuple[str, list[str]]] | None = None
) -> ApiHandle:
    """Give the station a 0600 tokens file with one all-unit token per role
    (and one per ``scoped`` entry: handle name → (role, units)), rewrite its
    config (``extra`` is appended inside ``[api]`` first, so it may start with
    more ``[api]`` keys), and serve the API on a free port."""
    from frontdoors.api.auth import hash_token, new_token
    from frontdoors.api.server import ApiServer
    from ingest.uploads import upload_area

    tokens = {role: new_token() for role in [*API_ROLES, *(scoped or {})]}
    entries = []
    for who, token in tokens.items():
        role, units = (scoped or {}).get(who, (who, []))
        entry = f'[[tokens]]\nname = "{who}-client"\nrole = "{role}"\n'
        entry += f'sha256 = "{hash_token(token)}"\n'
        entry += f"units = {json.dumps(units)}\n" if units else "all_units = true\n"
        entries.append(entry)
    path = station.root / "tokens.toml"
    path.write_text("".join(entries), encoding="utf-8")
    path.chmod(0o600)
    station.write_config(f'tokens_file = "{path}"\n{extra}')
    archive = station.archive()
    server = ApiServer(archive, uploads=upload_area(archive)).start()
    return ApiHandle(server.url, tokens, archive, server)


@pytest.fixture
def api(station: Station) -> Iterator:
    """``api(extra="")`` starts the station's API; every server is stopped afterwards."""
    started: list[ApiHandle] = []

    def start(extra: str = "", scoped: dict[str, tuple[str, list[str]]] | None = None):
        handle = start_api(station, extra, scoped)
        started.append(handle)
        return handle

    yield start
    for handle in started:
        handle.stop()


@pytest.fixture(scope="module")
def module_station(
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
    catalog_backend: str,
    store_backend: str,
) -> Iterator[Station]:
    """Like ``station``, but shared by the tests of one module (for a set-up that
    many parametrised cases only read)."""
    seaweed = store_for(request, store_backend)
    root = tmp_path_factory.mktemp("station")
    env = seaweed.env()
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        shared = Station(
            root,
            root / "strongroom.toml",
            f"t-{uuid.uuid4().hex[:16]}",
            seaweed,
            root / "dock",
            env,
            catalog_url=new_catalog_url(request, catalog_backend),
        )
        shared.write_config()
        shared.cli("init")
        yield shared
