"""Workflow schedules and their execution records.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "schedules",
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("workflow_name", sa.String(255), nullable=False),
        sa.Column("paused", sa.Boolean, nullable=False),
        sa.Column("next_run_time", sa.BigInteger, nullable=True),
        sa.Column("buffered_slot", sa.BigInteger, nullable=True),
        sa.Column("last_run_time", sa.BigInteger, nullable=True),
        sa.Column("last_workflow_id", sa.String(36), nullable=True),
        sa.Column("body", sa.JSON, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_schedules"),
    )
    op.create_index("ix_schedules_workflow_name", "schedules", ["workflow_name"])
    op.create_index("ix_schedules_next_run_time", "schedules", ["next_run_time"])

    op.create_table(
        "schedule_executions",
        sa.Column("execution_id", sa.String(36), nullable=False),
        sa.Column("schedule_name", sa.String(255), nullable=False),
        sa.Column("scheduled_time", sa.BigInteger, nullable=False),
        sa.Column("slot_time", sa.BigInteger, nullable=True),
        sa.Column("execution_time", sa.BigInteger, nullable=False),
        sa.Column("workflow_name", sa.String(255), nullable=False),
        sa.Column("workflow_id", sa.String(36), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("doc", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("execution_id", name="pk_schedule_executions"),
        sa.UniqueConstraint(
            "schedule_name", "slot_time", name="uq_schedule_executions_schedule_name_slot_time"
        ),
    )
    op.create_index(
        "ix_schedule_executions_execution_time", "schedule_executions", ["execution_time"]
    )
    op.create_index(
        "ix_schedule_executions_schedule_name_scheduled_time",
        "schedule_executions",
        ["schedule_name", "scheduled_time"],
    )


def downgrade() -> None:
    op.drop_index(
        "ix_schedule_executions_schedule_name_scheduled_time", table_name="schedule_executions"
    )
    op.drop_index("ix_schedule_executions_execution_time", table_name="schedule_executions")
    op.drop_table("schedule_executions")
    op.drop_index("ix_schedules_next_run_time", table_name="schedules")
    op.drop_index("ix_schedules_workflow_name", table_name="schedules")
    op.drop_table("schedules")
