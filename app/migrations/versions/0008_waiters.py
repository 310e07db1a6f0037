"""Processes waiting on a workflow's changes (see app.store.tables.waiters).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "waiters",
        sa.Column("workflow_id", sa.String(36), nullable=False),
        sa.Column("waiter_id", sa.String(36), nullable=False),
        sa.Column("until_ms", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("workflow_id", "waiter_id", name="pk_waiters"),
    )
    op.create_index("ix_waiters_until_ms", "waiters", ["until_ms"])


def downgrade() -> None:
    op.drop_index("ix_waiters_until_ms", table_name="waiters")
    op.drop_table("waiters")
