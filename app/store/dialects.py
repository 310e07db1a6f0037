"""The few statements that differ between SQLite and Postgres, behind one interface.

Everything else in the store is dialect-neutral SQLAlchemy Core. Later features add the
queries that must differ (claiming work with SKIP LOCKED, notifications) here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite


class DialectOps(Protocol):
    name: str

    def upsert(
        self, table: sa.Table, values: dict[str, object], keys: list[str], update: list[str]
    ) -> sa.Executable: ...

    def upsert_statement(self, table: sa.Table, keys: list[str], update: list[str]) -> Any:
        """The upsert as a reusable statement for a list of rows (one executemany)."""
        ...

    def lock_rows(self, query: sa.Select[Any]) -> sa.Select[Any]:
        """Lock the selected rows for this transaction (Postgres); SQLite's single writer
        already serialises every write transaction."""
        ...

    def skip_locked(self, query: sa.Select[Any]) -> sa.Select[Any]:
        """Lock the selected rows, passing over rows another transaction holds, so several
        processes claim disjoint work."""
        ...


class _OnConflictOps:
    """Both dialects spell upsert as INSERT ... ON CONFLICT; only the construct differs."""

    def __init__(self, name: str, insert: Callable[[sa.Table], Any]) -> None:
        self.name = name
        self._insert = insert
        self._row_locks = name == "postgresql"
        self._statements: dict[tuple[str, tuple[str, ...], tuple[str, ...]], Any] = {}

    def lock_rows(self, query: sa.Select[Any]) -> sa.Select[Any]:
        return query.with_for_update() if self._row_locks else query

    def skip_locked(self, query: sa.Select[Any]) -> sa.Select[Any]:
        return query.with_for_update(skip_locked=True) if self._row_locks else query

    def upsert_statement(self, table: sa.Table, keys: list[str], update: list[str]) -> Any:
        key = (table.name, tuple(keys), tuple(update))
        stmt = self._statements.get(key)
        if stmt is None:
            insert = self._insert(table)
            stmt = self._statements[key] = insert.on_conflict_do_update(
                index_elements=keys, set_={c: insert.excluded[c] for c in update}
            ).execution_options(baton_hot=True)
        return stmt

    def upsert(
        self, table: sa.Table, values: dict[str, object], keys: list[str], update: list[str]
    ) -> sa.Executable:
        stmt = self._insert(table).values(values)
        result: sa.Executable = stmt.on_conflict_do_update(
            index_elements=keys, set_={c: stmt.excluded[c] for c in update}
        )
        return result


def dialect_ops(name: str) -> DialectOps:
    if name == "sqlite":
        return _OnConflictOps("sqlite", sqlite.insert)
    return _OnConflictOps("postgresql", postgresql.insert)
