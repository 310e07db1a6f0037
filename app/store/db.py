"""Engines and transactions for both backends.

Postgres: SQLAlchemy's asyncio engine on asyncpg, one pool for reads and writes.

SQLite: the standard sqlite3 driver behind a thin async facade. Each SQLite connection lives
in worker threads, and every statement is one hop to a thread and back. (aiosqlite, which
SQLAlchemy's async SQLite dialect uses, pays several hops and queue round trips per
statement: measured here, a two-statement transaction took 877 us through it and 90 us
through sqlite3, so the facade keeps the embedded default fast without blocking the loop.)
SQLite allows one writer: all writes go through one connection, one transaction at a time,
opened with BEGIN IMMEDIATE so writers queue in-process instead of failing with SQLITE_BUSY
mid-transaction; reads use their own connections and never wait for the writer (WAL).

Callers see the same interface on both: `async with db.write() as conn` / `db.read()`, with
`await conn.execute(...)`, `scalar`, `scalars`, `exec_driver_sql` and `run_sync`.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Iterator,
    Sequence,
)
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar, cast

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from app.errors import ConfigError
from app.store.dialects import DialectOps, dialect_ops
from app.store.urls import DatabaseURL

SQLITE_BUSY_TIMEOUT_MS = 30_000
SQLITE_READERS = 4
# Units of work waiting for the SQLite writer are committed together, up to this many.
SQLITE_GROUP_COMMIT = 64

T = TypeVar("T")


def hot(statement: T) -> T:
    """Mark a prebuilt statement as hot: on SQLite it is compiled once and then run on the
    sqlite3 connection directly (SQLAlchemy's per-call execution context costs several
    times what SQLite takes to run the statement); on Postgres the same on asyncpg, in
    single-statement units (ReadsOnly), where SQLAlchemy's execution path was a fifth of
    the server's CPU. Only for statements whose parameters and columns need no type
    conversion (strings, integers, lists of them); anything else falls back to the normal
    path. Rows come back as plain tuples: read them by index."""
    marked: T = statement.execution_options(baton_hot=True)  # type: ignore[attr-defined]
    return marked


class _Raw:
    """A hot statement compiled for SQLite: its SQL, the order of its parameters, and the
    values of those it carries itself (e.g. the OFFSET 0 SQLite adds to a bound LIMIT)."""

    __slots__ = ("defaults", "names", "returns_rows", "sql")

    def __init__(
        self, sql: str, names: tuple[str, ...], returns_rows: bool, defaults: dict[str, Any]
    ) -> None:
        self.sql = sql
        self.names = names
        self.returns_rows = returns_rows
        self.defaults = defaults


_RAW_CACHE: dict[tuple[int, str], tuple[Any, _Raw | None]] = {}


def _raw_for(statement: Any, dialect: Any) -> _Raw | None:
    """The compiled form of a hot statement, or None when it must take the normal path."""
    # Only marked statements are cached: they are built once, so the cache stays small
    # (caching every statement seen would keep each ad-hoc query alive forever).
    if not getattr(statement, "_execution_options", {}).get("baton_hot"):
        return None
    key = (id(statement), dialect.name)
    found = _RAW_CACHE.get(key)
    if found is not None and found[0] is statement:
        return found[1]
    raw: _Raw | None = None
    compiled = statement.compile(dialect=dialect)
    converts = bool(getattr(compiled, "_bind_processors", None)) or any(
        col[3]._cached_result_processor(dialect, None) is not None
        for col in getattr(compiled, "_result_columns", ())
    )
    expanding = any(b.expanding for b in compiled.binds.values())
    if not converts and not expanding and compiled.positiontup is not None:
        raw = _Raw(
            compiled.string,
            tuple(compiled.positiontup),
            # A text statement's columns are unknown: read as rows (a hot text write must
            # RETURN what it reports; its rowcount is the rows returned).
            bool(getattr(compiled, "_result_columns", None))
            or isinstance(statement, sa.TextClause),
            {name: b.value for name, b in compiled.binds.items() if not b.required},
        )
    _RAW_CACHE[key] = (statement, raw)  # keeps the statement alive with its id
    return raw


class _RawResult:
    """The rows of a hot statement: plain tuples, already fetched."""

    __slots__ = ("_rows", "rowcount")

    def __init__(self, rows: list[tuple[Any, ...]], rowcount: int) -> None:
        self._rows = rows
        self.rowcount = rowcount

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return iter(self._rows)

    def first(self) -> tuple[Any, ...] | None:
        return self._rows[0] if self._rows else None

    def all(self) -> list[tuple[Any, ...]]:
        return self._rows

    def scalar(self) -> Any:
        return self._rows[0][0] if self._rows else None

    def scalars(self) -> list[Any]:
        return [row[0] for row in self._rows]


def _run_raw(conn: sa.Connection, raw: _Raw, parameters: Any) -> _RawResult:
    dbapi = conn.connection.driver_connection
    assert dbapi is not None
    names = raw.names
    if raw.defaults:
        if isinstance(parameters, list):
            parameters = [raw.defaults | p for p in parameters]
        else:
            parameters = raw.defaults | (parameters or {})
    if isinstance(parameters, list):
        cursor = dbapi.executemany(raw.sql, [tuple(p[n] for n in names) for p in parameters])
    else:
        values = tuple(parameters[n] for n in names) if parameters else ()
        cursor = dbapi.execute(raw.sql, values)
    rows = cursor.fetchall() if raw.returns_rows else []
    return _RawResult(rows, cursor.rowcount)


# -- SQLite: sqlite3 in threads behind an async facade -----------------------------------


def _sqlite_engine(url: DatabaseURL, *, begin: str, pool_size: int) -> sa.Engine:
    engine = sa.create_engine(
        url.url,
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=60,
        # Connections move between the pool's threads, one user at a time.
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control from the driver so BEGIN below is the one that runs.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        conn.connection.driver_connection.execute(begin)  # type: ignore[union-attr]

    return engine


class _Result:
    """A fully fetched result, so nothing touches the connection off its thread later."""

    def __init__(self, result: sa.CursorResult[Any]) -> None:
        self.rowcount = result.rowcount
        self._frozen = result.freeze() if result.returns_rows else None

    def _rows(self) -> sa.Result[Any]:
        if self._frozen is None:
            raise sa.exc.ResourceClosedError("This result object does not return rows.")
        return self._frozen()

    def __iter__(self) -> Iterator[sa.Row[Any]]:
        return iter(self._rows())

    def first(self) -> sa.Row[Any] | None:
        return self._rows().first()

    def all(self) -> Sequence[sa.Row[Any]]:
        return self._rows().all()

    def one(self) -> sa.Row[Any]:
        return self._rows().one()

    def scalar(self) -> Any:
        return self._rows().scalar()

    def scalars(self) -> sa.ScalarResult[Any]:
        return self._rows().scalars()

    def mappings(self) -> sa.MappingResult:
        return self._rows().mappings()


Hop = Callable[..., Awaitable[Any]]
_Unit = Callable[[AsyncConnection], Awaitable[Any]]


class _ThreadedConnection:
    """AsyncConnection's interface over a sqlite3 connection that lives in another thread:
    every call is one hop there and back. With `hop=None` the caller already runs in that
    thread (a unit of work, see Database.run_write) and calls go straight through."""

    def __init__(self, conn: sa.Connection, hop: Hop | None) -> None:
        self._conn = conn
        self._hop_fn = hop
        self.dialect = conn.dialect

    async def _hop(self, fn: Callable[..., T], *args: Any) -> T:
        if self._hop_fn is None:
            return fn(*args)
        result: T = await self._hop_fn(fn, *args)
        return result

    async def execute(self, statement: Any, parameters: Any = None) -> _Result | _RawResult:
        raw = _raw_for(statement, self.dialect)
        if raw is not None:
            return await self._hop(_run_raw, self._conn, raw, parameters)

        def run() -> _Result:
            return _Result(self._conn.execute(statement, parameters))

        return await self._hop(run)

    async def scalar(self, statement: Any, parameters: Any = None) -> Any:
        raw = _raw_for(statement, self.dialect)
        if raw is not None:
            return (await self._hop(_run_raw, self._conn, raw, parameters)).scalar()
        return await self._hop(self._conn.scalar, statement, parameters)

    async def scalars(self, statement: Any, parameters: Any = None) -> list[Any]:
        raw = _raw_for(statement, self.dialect)
        if raw is not None:
            return (await self._hop(_run_raw, self._conn, raw, parameters)).scalars()

        def run() -> list[Any]:
            return list(self._conn.scalars(statement, parameters).all())

        return await self._hop(run)

    async def exec_driver_sql(self, statement: str, parameters: Any = None) -> _Result:
        def run() -> _Result:
            return _Result(self._conn.exec_driver_sql(statement, parameters))

        return await self._hop(run)

    async def run_sync(self, fn: Callable[..., T], *args: Any) -> T:
        return await self._hop(fn, self._conn, *args)

    async def commit(self) -> None:
        await self._hop(self._conn.commit)

    async def rollback(self) -> None:
        await self._hop(self._conn.rollback)


class _LoopThread:
    """A thread running its own event loop: the SQLite writer. Whole units of work run
    there as coroutines whose statements complete synchronously, so a transaction costs one
    hop from the server's loop instead of one per statement."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return await asyncio.wrap_future(future)

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        async def call() -> T:
            return fn(*args)

        return await self.run(call())

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self.loop.close()


def _open(engine: sa.Engine) -> sa.Connection:
    conn = engine.connect()
    try:
        # BEGIN now: a hot statement goes past SQLAlchemy and would not start one.
        conn.begin()
    except BaseException:
        conn.close()
        raise
    return conn


def _close(conn: sa.Connection, commit: bool) -> None:
    try:
        if commit:
            conn.commit()
        else:
            conn.rollback()
    finally:
        conn.close()


# -- single-statement units (Postgres) ---------------------------------------------------


class WriteNeedsTransaction(Exception):
    """A unit run on `single_statement_writes` tried to write before its final statement;
    the caller runs it again as an ordinary transaction."""


class ReadsOnly:
    """An AsyncConnection stand-in that runs SELECTs and refuses everything else with
    WriteNeedsTransaction; `final` runs the one write that ends the unit."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn
        self._driver: Any = None  # the asyncpg connection, for hot statements
        # What may write the final statement (set by the caller: its own unit, not one a
        # nested step creates on the way, such as a sub-workflow's start).
        self.owner: object = None
        self.written = False

    async def _run(self, statement: Any, params: Any) -> Any:
        raw = _raw_for(statement, self._conn.dialect)
        if raw is None or isinstance(params, list):  # executemany: SQLAlchemy's path
            return await self._conn.execute(statement, params)
        # Hot: straight to asyncpg. Safe here and only here: the connection is in
        # autocommit, so there is no transaction SQLAlchemy would have begun around it.
        if self._driver is None:
            self._driver = (await self._conn.get_raw_connection()).driver_connection
        if raw.defaults:
            params = raw.defaults | (params or {})
        values = [params[n] for n in raw.names] if params else []
        try:
            if raw.returns_rows:
                rows = await self._driver.fetch(raw.sql, *values)
                return _RawResult([tuple(r) for r in rows], len(rows))
            status: str = await self._driver.execute(raw.sql, *values)
        except Exception:
            if self._driver.is_closed():  # the pool must not hand out a dead connection
                await self._conn.invalidate()
            raise
        tail = status.rsplit(" ", 1)[-1]
        return _RawResult([], int(tail) if tail.isdigit() else -1)

    def _check(self, statement: Any) -> None:
        if self.written:  # nothing may follow the final write: it is committed already
            raise RuntimeError("a statement after the final one of a single-statement unit")
        # A locking read means the unit relies on a lock held to its end: a transaction.
        if isinstance(statement, sa.Select) and statement._for_update_arg is None:
            return
        if isinstance(statement, sa.TextClause):
            text = statement.text.lstrip()[:7].upper()
            if text.startswith("SELECT") and "FOR UPDATE" not in statement.text:
                return
        raise WriteNeedsTransaction

    async def execute(self, statement: Any, params: Any = None) -> Any:
        self._check(statement)
        return await self._run(statement, params)

    async def scalar(self, statement: Any, params: Any = None) -> Any:
        self._check(statement)
        return (await self._run(statement, params)).scalar()

    async def scalars(self, statement: Any, params: Any = None) -> Any:
        self._check(statement)
        return (await self._run(statement, params)).scalars()

    async def final(self, owner: object, statement: Any, params: Any) -> Any:
        if owner is not self.owner or self.written:
            raise WriteNeedsTransaction
        self.written = True
        return await self._run(statement, params)

    def __getattr__(self, name: str) -> Any:
        # Anything else (run_sync, begin...) takes the safe path, unless the write is done.
        if self.written:
            raise RuntimeError(f"{name} after the final statement of a single-statement unit")
        raise WriteNeedsTransaction


def _holding(lock: threading.Lock, fn: Callable[..., T], *args: Any) -> T:
    with lock:
        return fn(*args)


# -- the database ------------------------------------------------------------------------


class Database:
    def __init__(self, url: DatabaseURL, *, pool_size: int = 10) -> None:
        self.url = url
        self.ops: DialectOps = dialect_ops(url.dialect)
        if url.is_sqlite:
            path = url.sqlite_path
            assert path is not None
            Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
            self._sqlite_writer = _sqlite_engine(url, begin="BEGIN IMMEDIATE", pool_size=1)
            self._sqlite_reader = _sqlite_engine(url, begin="BEGIN", pool_size=SQLITE_READERS)
            # One thread for the one writer connection; a few for readers.
            self._writer_thread = _LoopThread("baton-sqlite-write")
            self._read_pool = ThreadPoolExecutor(
                SQLITE_READERS, thread_name_prefix="baton-sqlite-read"
            )
            self._write_lock = asyncio.Lock()
            # Group commit: units queued while the writer is busy run next, together.
            self._pending: list[
                tuple[Callable[[AsyncConnection], Awaitable[Any]], asyncio.Future[Any]]
            ] = []
            self._draining = False
            # At most one read session per reader connection, taken on the loop: a thread
            # must never block waiting for a pooled connection, or the threads that would
            # give connections back could all be taken by such waiters (a deadlock).
            self._read_slots = asyncio.Semaphore(SQLITE_READERS)
        else:
            # No pre-ping round trip on every checkout (one per transaction, ~10% of the
            # statements of a workflow step): after a database restart, the first statement
            # on a dead connection fails, SQLAlchemy then renews the whole pool, and the
            # caller's retry (runner loops, clients) gets a fresh connection.
            # No overflow: an overflow connection is closed when it is given back, so under
            # load every checkout past the pool opened a new backend (fork, auth, asyncpg's
            # type introspection): 510 new connections for 1,000 workflows at C=64, half the
            # throughput. Callers wait for a pooled connection instead; no unit holds two.
            self._engine = create_async_engine(
                url.url, pool_size=pool_size, max_overflow=0, pool_timeout=60
            )

    @property
    def dialect(self) -> str:
        return self.url.dialect

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction: committed when the block exits, rolled back on error."""
        if not self.url.is_sqlite:
            async with self._engine.begin() as conn:
                yield conn
            return
        async with (
            self._write_lock,
            self._sqlite_session(self._sqlite_writer, self._writer_thread.call) as conn,
        ):
            yield conn

    async def run_write(self, unit: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """Run `unit(conn)` as one write transaction: committed if it returns, rolled back
        if it raises. On SQLite the whole unit runs in the writer thread; it must not touch
        objects bound to the server's event loop (wake-ups go after it returns)."""
        if not self.url.is_sqlite:
            async with self._engine.begin() as conn:
                return await unit(conn)
        # Group commit (SQLite): units that arrive while the writer is busy are run next in
        # one transaction, each inside its own savepoint, so one unit's failure undoes only
        # that unit. Nobody hears back before the COMMIT: durability is the same as one
        # transaction per unit, with one commit, one hop to the writer thread and one
        # BEGIN for the whole group.
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._pending.append((unit, future))
        if not self._draining:
            self._draining = True
            asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._pending:
                group = self._pending[:SQLITE_GROUP_COMMIT]
                del self._pending[: len(group)]
                # A caller that gave up (cancelled) before its unit ran: do not run it.
                group = [(unit, future) for unit, future in group if not future.done()]
                if not group:
                    continue
                units = [unit for unit, _ in group]
                try:
                    async with self._write_lock:
                        outcomes = await self._writer_thread.run(self._sqlite_group(units))
                except BaseException as exc:  # the commit itself failed: nothing was written
                    for _, future in group:
                        if not future.done():
                            future.set_exception(exc)
                    if not isinstance(exc, Exception):
                        raise
                    continue
                for (_, future), (ok, value) in zip(group, outcomes, strict=True):
                    if future.done():  # the caller went away (cancelled)
                        continue
                    if ok:
                        future.set_result(value)
                    else:
                        future.set_exception(value)
        finally:
            self._draining = False
            if self._pending:  # stopped early (cancelled): the queued units still run
                self._draining = True
                asyncio.get_running_loop().create_task(self._drain())

    async def _sqlite_group(self, units: list[_Unit]) -> list[tuple[bool, Any]]:
        outcomes: list[tuple[bool, Any]] = []
        with self._sqlite_writer.connect() as sync_conn:
            conn = cast(AsyncConnection, _ThreadedConnection(sync_conn, None))
            # BEGIN now: a hot statement goes past SQLAlchemy and would not start one.
            sync_conn.begin()
            dbapi = sync_conn.connection.driver_connection
            assert dbapi is not None
            try:
                if len(units) == 1:  # the common idle case: no savepoint needed
                    try:
                        outcomes.append((True, await units[0](conn)))
                    except Exception as exc:
                        sync_conn.rollback()
                        return [(False, exc)]
                else:
                    for unit in units:
                        dbapi.execute("SAVEPOINT baton_unit")
                        try:
                            outcomes.append((True, await unit(conn)))
                        except Exception as exc:
                            dbapi.execute("ROLLBACK TO SAVEPOINT baton_unit")
                            outcomes.append((False, exc))
                        dbapi.execute("RELEASE SAVEPOINT baton_unit")
            except BaseException:
                sync_conn.rollback()
                raise
            sync_conn.commit()
        return outcomes

    @asynccontextmanager
    async def single_statement_writes(self) -> AsyncIterator[AsyncConnection]:
        """Postgres only: a connection without a transaction, whose reads see the latest
        committed data statement by statement, for a unit that writes everything in ONE
        statement (atomic on its own): no BEGIN and COMMIT round trips. Only statements
        that read may run before that write (ReadsOnly checks)."""
        assert not self.url.is_sqlite
        async with self._engine.connect() as conn:
            auto = await conn.execution_options(isolation_level="AUTOCOMMIT")
            yield cast(AsyncConnection, ReadsOnly(auto))

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A read-only snapshot."""
        if not self.url.is_sqlite:
            async with self._engine.connect() as conn:
                try:
                    yield conn
                finally:
                    await conn.rollback()
            return
        async with (
            self._read_slots,
            self._sqlite_session(self._sqlite_reader, self._read_hop, commit=False) as conn,
        ):
            yield conn

    async def _read_hop(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._read_pool, fn, *args)

    @asynccontextmanager
    async def _sqlite_session(
        self, engine: sa.Engine, hop: Hop, *, commit: bool = True
    ) -> AsyncIterator[AsyncConnection]:
        # One hop to open (connect + BEGIN) and one to end (COMMIT or ROLLBACK + close).
        sync_conn: sa.Connection = await hop(_open, engine)
        # A session's calls may land on different pool threads. They run one after another,
        # except when the caller is cancelled mid-call: its statement goes on in one thread
        # while the rollback and close start in another, and sqlite3 closing a connection
        # that another thread is using crashes the process (seen: a refresh cancelled at
        # shutdown). The session's lock makes the close wait for the statement.
        lock = threading.Lock()

        async def serial(fn: Callable[..., Any], *args: Any) -> Any:
            return await hop(_holding, lock, fn, *args)

        facade = _ThreadedConnection(sync_conn, serial)
        try:
            # The facade quacks like AsyncConnection for everything the store uses.
            yield cast(AsyncConnection, facade)
        except BaseException:
            await serial(_close, sync_conn, False)
            raise
        await serial(_close, sync_conn, commit)

    async def ping(self) -> None:
        async with self.read() as conn:
            await conn.execute(sa.text("SELECT 1"))

    async def dispose(self) -> None:
        if self.url.is_sqlite:
            await self._writer_thread.call(self._sqlite_writer.dispose)
            await self._read_hop(self._sqlite_reader.dispose)
            self._writer_thread.stop()
            self._read_pool.shutdown(wait=False)
        else:
            await self._engine.dispose()


async def check_reachable(db: Database, timeout_s: float = 10.0) -> None:
    """Fail with a one-line ConfigError when the database cannot be reached."""
    try:
        await asyncio.wait_for(db.ping(), timeout_s)
    except TimeoutError:
        raise ConfigError(
            f"cannot reach the database at {db.url.safe()}: timed out after {timeout_s:.0f}s"
        ) from None
    except Exception as exc:  # driver errors vary; all mean "not usable"
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        first = reason[0] if reason else type(exc).__name__
        raise ConfigError(f"cannot reach the database at {db.url.safe()}: {first}") from None
