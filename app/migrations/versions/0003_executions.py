"""Workflow and task executions, queues, task logs, poll data.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "workflows",
        sa.Column("workflow_id", sa.String(36), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("correlation_id", sa.String(255), nullable=True),
        sa.Column("priority", sa.Integer, nullable=False),
        sa.Column("parent_workflow_id", sa.String(36), nullable=True),
        sa.Column("idempotency_key", sa.String(255), nullable=True),
        sa.Column("created_by", sa.String(255), nullable=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.Column("end_time", sa.BigInteger, nullable=True),
        sa.Column("timeout_at", sa.BigInteger, nullable=True),
        sa.Column("doc", sa.Text, nullable=False),
        sa.Column("definition", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("workflow_id", name="pk_workflows"),
        sa.UniqueConstraint("name", "idempotency_key", name="uq_workflows_name_idempotency_key"),
    )
    op.create_index("ix_workflows_correlation_id", "workflows", ["correlation_id"])
    op.create_index("ix_workflows_parent_workflow_id", "workflows", ["parent_workflow_id"])
    op.create_index("ix_workflows_created_at", "workflows", ["created_at"])
    op.create_index("ix_workflows_timeout_at", "workflows", ["timeout_at"])
    op.create_index("ix_workflows_name_status", "workflows", ["name", "status"])

    op.create_table(
        "tasks",
        sa.Column("task_id", sa.String(36), nullable=False),
        sa.Column("workflow_id", sa.String(36), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("ref_name", sa.String(255), nullable=False),
        sa.Column("task_type", sa.String(255), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("scheduled_time", sa.BigInteger, nullable=False),
        sa.Column("start_time", sa.BigInteger, nullable=True),
        sa.Column("end_time", sa.BigInteger, nullable=True),
        sa.Column("update_time", sa.BigInteger, nullable=False),
        sa.Column("timeout_at", sa.BigInteger, nullable=True),
        sa.Column("doc", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("task_id", name="pk_tasks"),
    )
    op.create_index("ix_tasks_timeout_at", "tasks", ["timeout_at"])
    op.create_index("ix_tasks_workflow_id_seq", "tasks", ["workflow_id", "seq"])
    op.create_index("ix_tasks_task_type_status", "tasks", ["task_type", "status"])

    op.create_table(
        "queue",
        sa.Column("queue_name", sa.String(255), nullable=False),
        sa.Column("item_id", sa.String(36), nullable=False),
        sa.Column("due_at", sa.BigInteger, nullable=False),
        sa.Column("priority", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("queue_name", "item_id", name="pk_queue"),
    )
    op.create_index("ix_queue_queue_name_due_at", "queue", ["queue_name", "due_at"])

    op.create_table(
        "task_logs",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("task_id", sa.String(36), nullable=False),
        sa.Column("log", sa.Text, nullable=False),
        sa.Column("created_time", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_task_logs"),
    )
    op.create_index("ix_task_logs_task_id", "task_logs", ["task_id"])

    op.create_table(
        "poll_data",
        sa.Column("queue_name", sa.String(255), nullable=False),
        sa.Column("domain", sa.String(255), nullable=False),
        sa.Column("worker_id", sa.String(255), nullable=True),
        sa.Column("last_poll_time", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("queue_name", "domain", name="pk_poll_data"),
    )


def downgrade() -> None:
    op.drop_table("poll_data")
    op.drop_table("task_logs")
    op.drop_table("queue")
    op.drop_table("tasks")
    op.drop_table("workflows")
