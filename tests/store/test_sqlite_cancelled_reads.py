"""A SQLite read cancelled while its statement runs in a pool thread is closed only once the
statement has finished: its rollback and close used to run on another thread at the same
time, and the connection was closed under the running statement ("Cannot operate on a
closed database", or a crash of the whole process; seen when a secrets refresh was cancelled
at shutdown). Runs in a child process, since a crash would take the test runner down."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from tests.conftest import REPO_ROOT

SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    import sqlalchemy as sa
    from app.store.db import Database
    from app.store.urls import parse_database_url

    MANY_ROWS = sa.text(
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 300000)"
        " SELECT x FROM c"
    )

    async def main() -> None:
        db = Database(parse_database_url("sqlite:///" + sys.argv[1]))

        async def read() -> None:
            async with db.read() as conn:
                await conn.execute(MANY_ROWS)

        for _ in range(5):
            task = asyncio.create_task(read())
            await asyncio.sleep(0.02)  # the statement is running in a pool thread now
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await db.dispose()
        print("ok")

    asyncio.run(main())
    """
)


def test_a_read_cancelled_mid_statement_is_closed_after_the_statement(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "reads.db")],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ok"
