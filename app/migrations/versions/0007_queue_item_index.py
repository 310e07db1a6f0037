"""An index on queue.item_id alone.

Finishing a task removes its queue item by id (the queue it is in is not at hand): without
this index every removal scanned the whole queue table, the largest cost of a worker task
update once thousands of tasks were queued.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_queue_item_id", "queue", ["item_id"])


def downgrade() -> None:
    op.drop_index("ix_queue_item_id", table_name="queue")
