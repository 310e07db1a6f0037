"""Event handlers and the event actions waiting to be applied.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "event_handlers",
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("event", sa.String(1024), nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("body", sa.JSON, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=True),
        sa.PrimaryKeyConstraint("name", name="pk_event_handlers"),
    )
    op.create_index("ix_event_handlers_event", "event_handlers", ["event"])

    op.create_table(
        "event_actions",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_event_actions"),
    )


def downgrade() -> None:
    op.drop_table("event_actions")
    op.drop_index("ix_event_handlers_event", table_name="event_handlers")
    op.drop_table("event_handlers")
