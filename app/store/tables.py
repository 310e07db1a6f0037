"""Tables. Times are epoch milliseconds (Conductor's unit); documents are JSON.

Later features add their tables here and a migration beside them; the migration test
checks the two never drift apart.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

task_defs = sa.Table(
    "task_defs",
    metadata,
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("body", sa.JSON, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=True),
)

workflow_defs = sa.Table(
    "workflow_defs",
    metadata,
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("body", sa.JSON, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=True),
)

# -- authentication ---------------------------------------------------------------------
# Applications hold roles and access keys; a key's secret is stored only as a salted hash.

applications = sa.Table(
    "applications",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(255), nullable=False, unique=True),
    sa.Column("created_by", sa.String(255), nullable=True),
    sa.Column("updated_by", sa.String(255), nullable=True),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
)

application_roles = sa.Table(
    "application_roles",
    metadata,
    sa.Column(
        "application_id",
        sa.String(64),
        sa.ForeignKey("applications.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("role", sa.String(32), primary_key=True),
)

access_keys = sa.Table(
    "access_keys",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column(
        "application_id",
        sa.String(64),
        sa.ForeignKey("applications.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("secret_hash", sa.String(255), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
)

# Keys the server itself needs (the JWT signing key), shared by every process on one database.
server_keys = sa.Table(
    "server_keys",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(255), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
)

# -- executions -------------------------------------------------------------------------
# Each row keeps the full Conductor-shaped document in `doc` (JSON text); the columns beside
# it are copies of the fields the engine and search filter on, written by the same function.

workflows = sa.Table(
    "workflows",
    metadata,
    sa.Column("workflow_id", sa.String(36), primary_key=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("correlation_id", sa.String(255), nullable=True, index=True),
    sa.Column("priority", sa.Integer, nullable=False),
    sa.Column("parent_workflow_id", sa.String(36), nullable=True, index=True),
    sa.Column("idempotency_key", sa.String(255), nullable=True),
    sa.Column("created_by", sa.String(255), nullable=True),
    sa.Column("created_at", sa.BigInteger, nullable=False, index=True),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    sa.Column("end_time", sa.BigInteger, nullable=True),
    # When the workflow's own timeout must be checked; NULL when it has none.
    sa.Column("timeout_at", sa.BigInteger, nullable=True, index=True),
    sa.Column("doc", sa.Text, nullable=False),
    # The definition the workflow runs, as JSON text: edits to the stored def do not
    # change a running workflow, and the text doubles as the parse-cache key.
    sa.Column("definition", sa.Text, nullable=False),
    sa.Index("ix_workflows_name_status", "name", "status"),
    sa.UniqueConstraint("name", "idempotency_key"),
)

tasks = sa.Table(
    "tasks",
    metadata,
    sa.Column("task_id", sa.String(36), primary_key=True),
    sa.Column("workflow_id", sa.String(36), nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("ref_name", sa.String(255), nullable=False),
    sa.Column("task_type", sa.String(255), nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("scheduled_time", sa.BigInteger, nullable=False),
    sa.Column("start_time", sa.BigInteger, nullable=True),
    sa.Column("end_time", sa.BigInteger, nullable=True),
    sa.Column("update_time", sa.BigInteger, nullable=False),
    # When a timeout clock of this task runs out; NULL when none runs.
    sa.Column("timeout_at", sa.BigInteger, nullable=True, index=True),
    sa.Column("doc", sa.Text, nullable=False),
    sa.Index("ix_tasks_workflow_id_seq", "workflow_id", "seq"),
    sa.Index("ix_tasks_task_type_status", "task_type", "status"),
)

# One table for every queue: worker task queues ([domain:]taskType), Baton's own system task
# queue (_sys:<TYPE>). A row is due once due_at <= now. Worker polls delete the row (Conductor
# acks on poll); system runners push due_at forward as a lease and delete it when done.
queue = sa.Table(
    "queue",
    metadata,
    sa.Column("queue_name", sa.String(255), primary_key=True),
    sa.Column("item_id", sa.String(36), primary_key=True),
    sa.Column("due_at", sa.BigInteger, nullable=False),
    sa.Column("priority", sa.Integer, nullable=False),
    sa.Index("ix_queue_queue_name_due_at", "queue_name", "due_at"),
    # A finished task's item is removed by id alone (0007).
    sa.Index("ix_queue_item_id", "item_id"),
)

# Processes waiting on a workflow's changes (synchronous execute, signal/sync) until
# `until_ms`. A change sends its cross-process wake-up for the workflow (pg_notify) only when
# a row is here: NOTIFY serialises committing transactions on a global lock, and nearly no
# change has anyone waiting on it in another process (0008). Postgres only; rows a crashed
# process left are ignored once their time has passed and removed by the next registration.
waiters = sa.Table(
    "waiters",
    metadata,
    sa.Column("workflow_id", sa.String(36), primary_key=True),
    sa.Column("waiter_id", sa.String(36), primary_key=True),
    sa.Column("until_ms", sa.BigInteger, nullable=False),
    sa.Index("ix_waiters_until_ms", "until_ms"),
)

task_logs = sa.Table(
    "task_logs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("task_id", sa.String(36), nullable=False, index=True),
    sa.Column("log", sa.Text, nullable=False),
    sa.Column("created_time", sa.BigInteger, nullable=False),
)

poll_data = sa.Table(
    "poll_data",
    metadata,
    sa.Column("queue_name", sa.String(255), primary_key=True),
    sa.Column("domain", sa.String(255), primary_key=True),  # '' when none
    sa.Column("worker_id", sa.String(255), nullable=True),
    sa.Column("last_poll_time", sa.BigInteger, nullable=False),
)

# -- events -----------------------------------------------------------------------------
# Event handlers keep Conductor's whole EventHandler document in `body`; `event` and `active`
# are copies for the lookup an EVENT task makes. `event_actions` holds handler actions to
# apply after the EVENT task's transaction commits (a `_sys:EVENT_ACTION` queue item points
# at each row); the transaction that applies one deletes its row.

event_handlers = sa.Table(
    "event_handlers",
    metadata,
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("event", sa.String(1024), nullable=False, index=True),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("body", sa.JSON, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=True),
)

event_actions = sa.Table(
    "event_actions",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
)

# -- secrets ----------------------------------------------------------------------------
# Values are sealed by app.secrets.keyring (AES-GCM, AAD "secret:<name>:<version>"), so a
# ciphertext cannot be moved to another row or version. `secret_versions` holds the current
# value and the last few before it (rollback); `secret_audit` records who touched what, never
# a value.

secrets = sa.Table(
    "secrets",
    metadata,
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    sa.Column("created_by", sa.String(255), nullable=True),
    sa.Column("updated_by", sa.String(255), nullable=True),
    sa.Column("last_rotated_time", sa.BigInteger, nullable=True),
    sa.Column("last_rotated_by", sa.String(255), nullable=True),
)

secret_versions = sa.Table(
    "secret_versions",
    metadata,
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("written_by", sa.String(255), nullable=True),
    sa.Column("workflow_id", sa.String(36), nullable=True),
)

secret_audit = sa.Table(
    "secret_audit",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("at", sa.BigInteger, nullable=False),
    sa.Column("actor", sa.String(255), nullable=True),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("version", sa.Integer, nullable=True),
    sa.Column("workflow_id", sa.String(36), nullable=True),
    sa.Column("detail", sa.Text, nullable=True),
    sa.Index("ix_secret_audit_name_id", "name", "id"),
)

secret_tags = sa.Table(
    "secret_tags",
    metadata,
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("value", sa.String(1024), nullable=False),
)

# Explicit access to one secret for one subject (an application), beyond its roles:
# Orkes' POST /api/auth/authorization with a SECRET_NAME target.
secret_grants = sa.Table(
    "secret_grants",
    metadata,
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("subject_type", sa.String(16), primary_key=True),
    sa.Column("subject_id", sa.String(255), primary_key=True),
    sa.Column("access", sa.String(16), primary_key=True),
)

# -- scheduler --------------------------------------------------------------------------
# `schedules.body` is the schedule as saved (Orkes' WorkflowSchedule without the fields the
# server computes); the columns beside it are what firing and listing filter on. This table,
# not APScheduler, is the source of truth: every process reads due slots from it.
# `schedule_executions` holds one record per fired slot; the unique (schedule_name,
# slot_time) key lets exactly one process take a slot. Run-now records have no slot_time.

schedules = sa.Table(
    "schedules",
    metadata,
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("workflow_name", sa.String(255), nullable=False, index=True),
    sa.Column("paused", sa.Boolean, nullable=False),
    # The next slot to fire; NULL while paused or once past scheduleEndTime.
    sa.Column("next_run_time", sa.BigInteger, nullable=True, index=True),
    # BUFFER_ONE: a slot held back until the previous run ends.
    sa.Column("buffered_slot", sa.BigInteger, nullable=True),
    sa.Column("last_run_time", sa.BigInteger, nullable=True),
    # NULL after a run whose start failed.
    sa.Column("last_workflow_id", sa.String(36), nullable=True),
    sa.Column("body", sa.JSON, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
)

schedule_executions = sa.Table(
    "schedule_executions",
    metadata,
    sa.Column("execution_id", sa.String(36), primary_key=True),
    sa.Column("schedule_name", sa.String(255), nullable=False),
    sa.Column("scheduled_time", sa.BigInteger, nullable=False),
    sa.Column("slot_time", sa.BigInteger, nullable=True),
    sa.Column("execution_time", sa.BigInteger, nullable=False, index=True),
    sa.Column("workflow_name", sa.String(255), nullable=False),
    sa.Column("workflow_id", sa.String(36), nullable=True),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("doc", sa.JSON, nullable=False),
    sa.UniqueConstraint("schedule_name", "slot_time"),
    sa.Index(
        "ix_schedule_executions_schedule_name_scheduled_time", "schedule_name", "scheduled_time"
    ),
)
