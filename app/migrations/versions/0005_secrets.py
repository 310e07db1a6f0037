"""Secrets: sealed values, their kept versions, the audit trail, tags and grants.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "secrets",
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.Column("created_by", sa.String(255), nullable=True),
        sa.Column("updated_by", sa.String(255), nullable=True),
        sa.Column("last_rotated_time", sa.BigInteger, nullable=True),
        sa.Column("last_rotated_by", sa.String(255), nullable=True),
        sa.PrimaryKeyConstraint("name", name="pk_secrets"),
    )
    op.create_table(
        "secret_versions",
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("written_by", sa.String(255), nullable=True),
        sa.Column("workflow_id", sa.String(36), nullable=True),
        sa.PrimaryKeyConstraint("name", "version", name="pk_secret_versions"),
    )
    op.create_table(
        "secret_audit",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("at", sa.BigInteger, nullable=False),
        sa.Column("actor", sa.String(255), nullable=True),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("version", sa.Integer, nullable=True),
        sa.Column("workflow_id", sa.String(36), nullable=True),
        sa.Column("detail", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_secret_audit"),
    )
    op.create_index("ix_secret_audit_name_id", "secret_audit", ["name", "id"])
    op.create_table(
        "secret_tags",
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("value", sa.String(1024), nullable=False),
        sa.PrimaryKeyConstraint("name", "key", name="pk_secret_tags"),
    )
    op.create_table(
        "secret_grants",
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("subject_type", sa.String(16), nullable=False),
        sa.Column("subject_id", sa.String(255), nullable=False),
        sa.Column("access", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint(
            "name", "subject_type", "subject_id", "access", name="pk_secret_grants"
        ),
    )


def downgrade() -> None:
    op.drop_table("secret_grants")
    op.drop_table("secret_tags")
    op.drop_index("ix_secret_audit_name_id", table_name="secret_audit")
    op.drop_table("secret_audit")
    op.drop_table("secret_versions")
    op.drop_table("secrets")
