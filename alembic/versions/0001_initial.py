"""The initial durable schema.

Revision ID: 0001
Revises:
Create Date: 2025-11-23

Written by hand to equal durable/store/schema.py at this revision, and frozen: later schema
changes get their own revision, so this file never imports schema.py.
tests/integration/test_migrations.py checks that upgrading an empty database to head gives the
schema that ``metadata.create_all`` gives. Constraint names are the ones Postgres would choose,
spelled out so that later migrations can refer to them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "durable"
TASKS_ID = f"{SCHEMA}.tasks.id"


def _stamped(name: str) -> sa.Column[Any]:
    """A NOT NULL timestamptz column that defaults to the transaction's now()."""
    return sa.Column(
        name, sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")
    )


def upgrade() -> None:
    # env.py creates the schema already (alembic_version lives there); repeated so that this
    # revision stands on its own, e.g. in `alembic upgrade --sql` output.
    op.execute(f'CREATE SCHEMA IF NOT EXISTS "{SCHEMA}"')

    op.create_table(
        "tasks",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("workflow", sa.Text(), nullable=False),
        sa.Column(
            "args",
            postgresql.JSONB(),
            nullable=False,
            server_default=sa.text("'[]'::jsonb"),
        ),
        sa.Column(
            "kwargs",
            postgresql.JSONB(),
            nullable=False,
            server_default=sa.text("'{}'::jsonb"),
        ),
        sa.Column("key", sa.Text(), nullable=True),
        sa.Column("queue", sa.Text(), nullable=False, server_default="default"),
        sa.Column("state", sa.Text(), nullable=False, server_default="pending"),
        sa.Column("result", postgresql.JSONB(), nullable=True),
        sa.Column("error", postgresql.JSONB(), nullable=True),
        sa.Column("parent_id", sa.BigInteger(), nullable=True),
        sa.Column("detached", sa.Boolean(), nullable=False, server_default=sa.text("false")),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("losses", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("lease", sa.BigInteger(), nullable=False, server_default=sa.text("0")),
        sa.Column("worker_id", sa.Text(), nullable=True),
        sa.Column("wake_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("waiting_for", postgresql.JSONB(), nullable=True),
        sa.Column(
            "cancel_requested", sa.Boolean(), nullable=False, server_default=sa.text("false")
        ),
        sa.Column("deadline_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("run", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("log_base", sa.Integer(), nullable=False, server_default=sa.text("0")),
        _stamped("created_at"),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        _stamped("updated_at"),
        sa.PrimaryKeyConstraint("id", name="tasks_pkey"),
        sa.UniqueConstraint("key", name="tasks_key_key"),
        sa.ForeignKeyConstraint(
            ["parent_id"], [TASKS_ID], name="tasks_parent_id_fkey", ondelete="SET NULL"
        ),
        sa.CheckConstraint(
            "state IN ('pending', 'running', 'suspended', 'complete', 'failed', 'cancelled')",
            name="tasks_state_check",
        ),
        schema=SCHEMA,
    )
    # Partial indexes: the claim, the timer scan and the takeover read only live rows, so they
    # stay as small as the backlog however much finished history the table holds.
    op.create_index(
        "tasks_pending_idx",
        "tasks",
        ["queue", "id"],
        schema=SCHEMA,
        postgresql_where=sa.text("state = 'pending'"),
    )
    op.create_index(
        "tasks_wake_idx",
        "tasks",
        ["wake_at"],
        schema=SCHEMA,
        postgresql_where=sa.text("state = 'suspended' AND wake_at IS NOT NULL"),
    )
    op.create_index(
        "tasks_running_idx",
        "tasks",
        ["worker_id"],
        schema=SCHEMA,
        postgresql_where=sa.text("state = 'running'"),
    )
    op.create_index(
        "tasks_parent_idx",
        "tasks",
        ["parent_id"],
        schema=SCHEMA,
        postgresql_where=sa.text("parent_id IS NOT NULL"),
    )
    op.create_index("tasks_workflow_idx", "tasks", ["workflow", "id"], schema=SCHEMA)
    op.create_index("tasks_state_idx", "tasks", ["state", "id"], schema=SCHEMA)

    op.create_table(
        "events",
        sa.Column("task_id", sa.BigInteger(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("label", sa.Text(), nullable=False),
        sa.Column("payload", postgresql.JSONB(), nullable=True),
        _stamped("at"),
        sa.PrimaryKeyConstraint("task_id", "seq", name="events_pkey"),
        sa.ForeignKeyConstraint(
            ["task_id"], [TASKS_ID], name="events_task_id_fkey", ondelete="CASCADE"
        ),
        schema=SCHEMA,
    )

    op.create_table(
        "logs",
        sa.Column("task_id", sa.BigInteger(), nullable=False),
        sa.Column("line_no", sa.Integer(), nullable=False),
        sa.Column("line", sa.Text(), nullable=False),
        _stamped("at"),
        sa.PrimaryKeyConstraint("task_id", "line_no", name="logs_pkey"),
        sa.ForeignKeyConstraint(
            ["task_id"], [TASKS_ID], name="logs_task_id_fkey", ondelete="CASCADE"
        ),
        schema=SCHEMA,
    )

    op.create_table(
        "workers",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("host", sa.Text(), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("queues", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("concurrency", sa.Integer(), nullable=False),
        sa.Column("lease_timeout", sa.Float(), nullable=False, server_default=sa.text("30")),
        _stamped("started_at"),
        _stamped("heartbeat_at"),
        sa.PrimaryKeyConstraint("id", name="workers_pkey"),
        schema=SCHEMA,
    )

    op.create_table(
        "promises",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False, server_default="pending"),
        sa.Column("value", postgresql.JSONB(), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        _stamped("created_at"),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="promises_pkey"),
        sa.CheckConstraint(
            "state IN ('pending', 'resolved', 'rejected')", name="promises_state_check"
        ),
        schema=SCHEMA,
    )

    op.create_table(
        "promise_waiters",
        sa.Column("promise_id", sa.Text(), nullable=False),
        sa.Column("task_id", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("promise_id", "task_id", name="promise_waiters_pkey"),
        sa.ForeignKeyConstraint(
            ["task_id"], [TASKS_ID], name="promise_waiters_task_id_fkey", ondelete="CASCADE"
        ),
        schema=SCHEMA,
    )

    op.create_table(
        "notifications",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("task_id", sa.BigInteger(), nullable=False),
        sa.Column("event", sa.Text(), nullable=False),
        sa.Column("data", postgresql.JSONB(), nullable=True),
        _stamped("created_at"),
        sa.Column("consumed_seq", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="notifications_pkey"),
        sa.ForeignKeyConstraint(
            ["task_id"], [TASKS_ID], name="notifications_task_id_fkey", ondelete="CASCADE"
        ),
        schema=SCHEMA,
    )
    # A task's unread mailbox in FIFO order.
    op.create_index(
        "notifications_mailbox_idx",
        "notifications",
        ["task_id", "id"],
        schema=SCHEMA,
        postgresql_where=sa.text("consumed_seq IS NULL"),
    )


def downgrade() -> None:
    # Children before tasks, which they reference; indexes and constraints go with their
    # tables. The schema stays: it holds alembic_version, which alembic updates after this.
    for table in ("notifications", "promise_waiters", "promises", "workers", "logs", "events"):
        op.drop_table(table, schema=SCHEMA)
    op.drop_table("tasks", schema=SCHEMA)
