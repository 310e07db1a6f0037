"""Fixtures: a fresh database per test on each backend, an in-process API client, and a
real `baton serve` process for end-to-end tests.

SQLite always runs. Postgres runs too when BATON_TEST_POSTGRES_URL is set: each test gets
its own database cloned from a migrated template, so tests never see each other's rows.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy.engine import make_url

from app.auth import passwords
from app.auth.permissions import Role
from app.clock import ManualClock
from app.config import Settings
from app.main import create_app
from app.store.db import Database
from app.store.migrate import upgrade
from app.store.urls import parse_database_url

POSTGRES_URL = os.environ.get("BATON_TEST_POSTGRES_URL", "")
BACKENDS = ["sqlite", "postgres"] if POSTGRES_URL else ["sqlite"]
REPO_ROOT = Path(__file__).resolve().parent.parent
# The admin access key every test server and in-process app is seeded with.
ADMIN_KEY_ID = "test-admin-key"
ADMIN_KEY_SECRET = "test-admin-secret-for-tests-only"
# The keyring of every test app and server (Postgres refuses to start without one).
TEST_SECRETS_KEY = "test:lbq7IollCfhv3LJ8kmw2Dp7bturnEP46brhE7s1Qd7c="


@pytest.fixture(autouse=True, scope="session")
def secrets_key_in_environment() -> Iterator[None]:
    """Every Settings() a test builds, and every process it starts, gets the test keyring;
    a test of the no-key case removes it from its own process's environment."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BATON_SECRETS_KEY", TEST_SECRETS_KEY)
        yield


@pytest.fixture(autouse=True, scope="session")
def cheap_secret_hashing() -> Iterator[None]:
    """Hash access key secrets at a test-only cost in-process; stored hashes carry their own
    parameters, so verification is unaffected. Server processes keep the real cost."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(passwords, "SCRYPT_N", 2**8)
        yield


def _pg_dsn(database: str | None = None) -> str:
    url = make_url(POSTGRES_URL)
    if database:
        url = url.set(database=database)
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


async def _pg_admin(sql: str) -> None:
    conn = await asyncpg.connect(_pg_dsn())
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _migrate(url: str) -> None:
    db = Database(parse_database_url(url), pool_size=1)
    try:
        await upgrade(db)
    finally:
        await db.dispose()


class PgDatabasePool:
    """Per-test Postgres databases, cloned from the template ahead of time by one thread and
    dropped after use by another. Each test still gets a fresh clone that no other test
    touched; it only no longer waits for the clone's CREATE DATABASE (~0.2 s) nor its
    DROP DATABASE (a forced checkpoint on Postgres 15: 0.2 s to seconds under load)."""

    READY = 3  # clones kept ready: enough to cover a run of quick tests
    MAX_PENDING_DROPS = 40  # ~8 MB each

    def __init__(self, template: str) -> None:
        self.template = template
        self._cond = threading.Condition()
        self._ready: list[str] = []
        self._drops: list[str] = []
        self._error: BaseException | None = None
        self._stopping = False
        self._threads = [
            threading.Thread(target=asyncio.run, args=(self._loop(job),), daemon=True)
            for job in (self._create_next, self._drop_next)
        ]
        for thread in self._threads:
            thread.start()

    def take(self, timeout_s: float = 120) -> str:
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while not self._ready:
                if self._error is not None:
                    raise RuntimeError(f"could not clone the template: {self._error!r}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError(f"no database was cloned in {timeout_s} s")
                self._cond.wait(left)
            name = self._ready.pop(0)
            self._cond.notify_all()
            return name

    def give_back(self, name: str) -> None:
        with self._cond:
            self._drops.append(name)
            self._cond.notify_all()
            # Drops falling far behind wait here: the clones waiting for one take disk space.
            deadline = time.monotonic() + 120
            while len(self._drops) > self.MAX_PENDING_DROPS and self._error is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError("databases were not dropped in 120 s")
                self._cond.wait(left)

    def close(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout=300)
        leftovers, self._ready, self._drops = self._ready + self._drops, [], []
        for name in leftovers:
            asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    async def _create_next(self, conn: asyncpg.Connection) -> bool:
        with self._cond:
            while len(self._ready) >= self.READY and not self._stopping:
                self._cond.wait()
            if self._stopping:
                return False
        name = f"baton_t_{uuid.uuid4().hex[:12]}"
        await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        with self._cond:
            self._ready.append(name)
            self._cond.notify_all()
        return True

    async def _drop_next(self, conn: asyncpg.Connection) -> bool:
        with self._cond:
            while not self._drops and not self._stopping:
                self._cond.wait()
            if not self._drops:
                return False
            name = self._drops.pop(0)
            self._cond.notify_all()
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        return True

    async def _loop(self, job: Callable[[asyncpg.Connection], Awaitable[bool]]) -> None:
        try:
            conn = await asyncpg.connect(_pg_dsn())
            try:
                while await job(conn):
                    pass
            finally:
                await conn.close()
        except Exception as exc:  # reported by take(); the test that waits fails with it
            with self._cond:
                self._error = exc
                self._cond.notify_all()


@dataclass
class Templates:
    sqlite_file: Path | None = None
    pg_database: str | None = None
    pg_pool: PgDatabasePool | None = None


@pytest.fixture(scope="session")
def templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Templates]:
    """Migrate once per session; each test copies the result (a file, or a template DB)."""
    t = Templates()
    sqlite_file = tmp_path_factory.mktemp("template") / "baton.db"
    asyncio.run(_migrate(f"sqlite:///{sqlite_file}"))
    t.sqlite_file = sqlite_file
    if POSTGRES_URL:
        # The pid keeps the templates of concurrent sessions (and xdist workers) apart.
        name = f"baton_tpl_{os.getpid()}"
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}"'))
        asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
        asyncio.run(_migrate(_pg_dsn(name)))
        t.pg_database = name
        t.pg_pool = PgDatabasePool(name)
    yield t
    if t.pg_pool is not None:
        t.pg_pool.close()
    if t.pg_database:
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{t.pg_database}" WITH (FORCE)'))


def fresh_database_url(backend: str, templates: Templates, tmp_path: Path) -> Iterator[str]:
    if backend == "sqlite":
        assert templates.sqlite_file is not None
        target = tmp_path / "baton.db"
        shutil.copyfile(templates.sqlite_file, target)
        yield f"sqlite:///{target}"
        return
    assert templates.pg_pool is not None
    name = templates.pg_pool.take()
    try:
        yield _pg_dsn(name)
    finally:
        templates.pg_pool.give_back(name)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    return value


@pytest.fixture
def database_url(backend: str, templates: Templates, tmp_path: Path) -> Iterator[str]:
    yield from fresh_database_url(backend, templates, tmp_path)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    # No background loops in-process: tests move the ManualClock and sweep by hand.
    return Settings(
        database_url=database_url,
        data_dir=tmp_path,
        instance_id="test-instance",
        background_enabled=False,
        admin_key_id=ADMIN_KEY_ID,
        admin_key_secret=SecretStr(ADMIN_KEY_SECRET),
        secrets_key=SecretStr(TEST_SECRETS_KEY),
    )


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(parse_database_url(database_url), pool_size=2)
    try:
        yield database
    finally:
        await database.dispose()


class TokenAuth(httpx.Auth):
    """X-Authorization with a token from POST /api/token, fetched on first use and again when
    the server answers EXPIRED_TOKEN (tests move the clock past a token's lifetime). A request
    that carries its own X-Authorization or Authorization header is sent as it is. With
    authentication disabled (/api/token answers 404) no header is sent."""

    requires_response_body = True

    def __init__(self, key_id: str, key_secret: str) -> None:
        self.key_id = key_id
        self.key_secret = key_secret
        self.token: str | None = None

    def _token_request(self, request: httpx.Request) -> httpx.Request:
        body = {"keyId": self.key_id, "keySecret": self.key_secret}
        return httpx.Request(
            "POST", request.url.copy_with(path="/api/token", query=None), json=body
        )

    def _fetch(self, response: httpx.Response) -> None:
        if response.status_code == 404:
            self.token = ""
            return
        assert response.status_code == 200, response.text
        self.token = response.json()["token"]

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if "x-authorization" in request.headers or "authorization" in request.headers:
            yield request
            return
        if self.token is None:
            self._fetch((yield self._token_request(request)))
        if self.token:
            request.headers["X-Authorization"] = self.token
        response = yield request
        expired = response.status_code == 401 and "EXPIRED_TOKEN" in response.text
        if expired:
            self._fetch((yield self._token_request(request)))
            request.headers["X-Authorization"] = self.token or ""
            yield request


@pytest.fixture
async def api_app(settings: Settings, clock: ManualClock) -> AsyncIterator[FastAPI]:
    """The app with its lifespan running (bootstrap included)."""
    app = create_app(settings, clock=clock)
    async with app.router.lifespan_context(app):
        yield app


def asgi_client(app: FastAPI, auth: httpx.Auth | None = None) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app)
    return httpx.AsyncClient(transport=transport, base_url="http://baton.test", auth=auth)


@pytest.fixture
async def client(api_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process client over ASGI, authenticated as the seeded ADMIN application."""
    async with asgi_client(api_app, TokenAuth(ADMIN_KEY_ID, ADMIN_KEY_SECRET)) as c:
        yield c


@pytest.fixture
async def anon_client(api_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The same app, with no token unless a request sets one."""
    async with asgi_client(api_app) as c:
        yield c


TokenFor = Callable[..., Awaitable[str]]


@pytest.fixture
def token_for(api_app: FastAPI, anon_client: httpx.AsyncClient) -> TokenFor:
    """`await token_for(Role.WORKER, ...)`: a token of a new application with those roles."""

    async def make(*roles: Role) -> str:
        auth = api_app.state.services.auth
        key_id, secret = await auth.create_key_for(f"app-{uuid.uuid4().hex[:8]}", list(roles))
        response = await anon_client.post("/api/token", json={"keyId": key_id, "keySecret": secret})
        assert response.status_code == 200, response.text
        token: str = response.json()["token"]
        return token

    return make


# -- a real server process --------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class ServerProcess:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    admin_key_id: str = ADMIN_KEY_ID
    admin_key_secret: str = ADMIN_KEY_SECRET

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def token(self) -> str:
        """A token for the seeded ADMIN access key."""
        body = {"keyId": self.admin_key_id, "keySecret": self.admin_key_secret}
        response = httpx.post(f"{self.url}/api/token", json=body, timeout=10)
        response.raise_for_status()
        token: str = response.json()["token"]
        return token

    def auth_headers(self) -> dict[str, str]:
        return {"X-Authorization": self.token()}


def _listens_on(pid: int, port: int) -> bool:
    """Whether process `pid` holds the listening socket of 127.0.0.1:`port` (Linux /proc);
    True where /proc cannot tell. With tests in parallel, another test's server may take the
    port a server was told to use, and answer its health check."""
    try:
        lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return True
    wanted = f":{port:04X}"
    inodes = {
        f"socket:[{cols[9]}]"
        for cols in (line.split() for line in lines)
        if cols[1].endswith(wanted) and cols[3] == "0A"  # 0A: LISTEN
    }
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                return True
        except OSError:
            continue
    return False


def start_server(
    database_url: str, data_dir: Path, extra_env: dict[str, str] | None = None
) -> ServerProcess:
    for _attempt in range(3):
        server = _start_server_once(database_url, data_dir, extra_env)
        if server is not None:
            return server
    raise RuntimeError("baton serve lost its port to another process three times")


def _start_server_once(
    database_url: str, data_dir: Path, extra_env: dict[str, str] | None
) -> ServerProcess | None:
    """A healthy server, or None when another process took its port first."""
    port = free_port()
    env = {
        **os.environ,
        "BATON_DATABASE_URL": database_url,
        "BATON_DATA_DIR": str(data_dir),
        "BATON_HOST": "127.0.0.1",
        "BATON_PORT": str(port),
        "BATON_ADMIN_KEY_ID": ADMIN_KEY_ID,
        "BATON_ADMIN_KEY_SECRET": ADMIN_KEY_SECRET,
        "BATON_SECRETS_KEY": TEST_SECRETS_KEY,
        **(extra_env or {}),
    }
    log_path = data_dir / f"server-{port}.log"
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve"],
            env=env,
            cwd=REPO_ROOT,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    server = ServerProcess(
        f"http://127.0.0.1:{port}",
        proc,
        log_path,
        admin_key_id=env["BATON_ADMIN_KEY_ID"],
        admin_key_secret=env["BATON_ADMIN_KEY_SECRET"],
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            if "address already in use" in server.log().lower():
                return None
            raise RuntimeError(f"baton serve exited early:\n{server.log()}")
        try:
            healthy = httpx.get(f"{server.url}/health", timeout=1).status_code == 200
        except httpx.TransportError:
            healthy = False
        if healthy and _listens_on(proc.pid, port):
            return server
        time.sleep(0.1)
    proc.kill()
    proc.wait(timeout=10)
    raise RuntimeError(f"baton serve did not become healthy in 30s:\n{server.log()}")


def stop_server(server: ServerProcess) -> None:
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(timeout=10)


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[ServerProcess]:
    proc = start_server(database_url, tmp_path)
    try:
        yield proc
    finally:
        stop_server(proc)
