"""Flow control and schedules (SPEC 12): queue settings, priority, keys, debounce, cron.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03

New task columns (priority, concurrency_key, debounce_key, debounce_until) are added at the end
of the table, where schema.py declares them. The claim's index now orders pending tasks by
priority, then launch order (queue last: see schema.py). Slots are not stored: they are
counted from task rows by the claims of limited queues (see durable/store/queries.py,
CLAIM_LIMITED), so nothing here can leak.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "durable"


def upgrade() -> None:
    op.add_column(
        "tasks",
        sa.Column("priority", sa.Integer(), nullable=False, server_default=sa.text("0")),
        schema=SCHEMA,
    )
    op.add_column("tasks", sa.Column("concurrency_key", sa.Text(), nullable=True), schema=SCHEMA)
    op.add_column("tasks", sa.Column("debounce_key", sa.Text(), nullable=True), schema=SCHEMA)
    op.add_column(
        "tasks",
        sa.Column("debounce_until", sa.DateTime(timezone=True), nullable=True),
        schema=SCHEMA,
    )
    op.drop_index("tasks_pending_idx", table_name="tasks", schema=SCHEMA)
    op.create_index(
        "tasks_pending_idx",
        "tasks",
        ["priority", "id", "queue"],
        schema=SCHEMA,
        postgresql_where=sa.text("state = 'pending'"),
    )
    op.create_index(
        "tasks_concurrency_key_idx",
        "tasks",
        ["queue", "concurrency_key"],
        schema=SCHEMA,
        postgresql_where=sa.text(
            "concurrency_key IS NOT NULL AND state IN ('pending', 'running', 'suspended')"
        ),
    )
    op.create_index(
        "tasks_debounce_idx",
        "tasks",
        ["debounce_key"],
        unique=True,
        schema=SCHEMA,
        postgresql_where=sa.text("debounce_key IS NOT NULL AND state = 'pending' AND attempts = 0"),
    )
    op.create_index(
        "tasks_delayed_idx",
        "tasks",
        ["wake_at"],
        schema=SCHEMA,
        postgresql_where=sa.text("state = 'pending' AND wake_at IS NOT NULL"),
    )
    op.create_table(
        "queues",
        sa.Column("name", sa.Text(), primary_key=True),
        sa.Column("concurrency", sa.Integer(), nullable=True),
        sa.Column("key_concurrency", sa.Integer(), nullable=True),
        sa.Column("rate_limit", sa.Integer(), nullable=True),
        sa.Column("rate_period", sa.Float(), nullable=True),
        sa.Column("paused", sa.Boolean(), nullable=False, server_default=sa.text("false")),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("now()"),
        ),
        sa.CheckConstraint(
            "concurrency IS NULL OR concurrency >= 0", name="queues_concurrency_check"
        ),
        sa.CheckConstraint(
            "key_concurrency IS NULL OR key_concurrency >= 1",
            name="queues_key_concurrency_check",
        ),
        sa.CheckConstraint(
            "(rate_limit IS NULL) = (rate_period IS NULL) AND (rate_limit IS NULL OR "
            "(rate_limit >= 1 AND rate_period > 0))",
            name="queues_rate_check",
        ),
        schema=SCHEMA,
    )
    op.create_table(
        "queue_starts",
        sa.Column(
            "queue",
            sa.Text(),
            sa.ForeignKey("durable.queues.name", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("task_id", sa.BigInteger(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        schema=SCHEMA,
    )
    op.create_index("queue_starts_idx", "queue_starts", ["queue", "at"], schema=SCHEMA)
    op.create_table(
        "schedules",
        sa.Column("name", sa.Text(), primary_key=True),
        sa.Column("workflow", sa.Text(), nullable=False),
        sa.Column("cron", sa.Text(), nullable=False),
        sa.Column("timezone", sa.Text(), nullable=False, server_default="UTC"),
        sa.Column(
            "args",
            sa.dialects.postgresql.JSONB(),
            nullable=False,
            server_default=sa.text("'[]'::jsonb"),
        ),
        sa.Column(
            "kwargs",
            sa.dialects.postgresql.JSONB(),
            nullable=False,
            server_default=sa.text("'{}'::jsonb"),
        ),
        sa.Column("queue", sa.Text(), nullable=False, server_default="default"),
        sa.Column("overlap", sa.Text(), nullable=False, server_default="skip"),
        sa.Column("catch_up", sa.Float(), nullable=False, server_default=sa.text("0")),
        sa.Column("paused", sa.Boolean(), nullable=False, server_default=sa.text("false")),
        sa.Column("next_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_task_id", sa.BigInteger(), nullable=True),
        sa.Column("buffered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("now()"),
        ),
        sa.CheckConstraint(
            "overlap IN ('skip', 'buffer_one', 'allow', 'cancel_other')",
            name="schedules_overlap_check",
        ),
        schema=SCHEMA,
    )
    op.create_index(
        "schedules_next_idx",
        "schedules",
        ["next_at"],
        schema=SCHEMA,
        postgresql_where=sa.text("NOT paused"),
    )


def downgrade() -> None:
    op.drop_table("schedules", schema=SCHEMA)
    op.drop_table("queue_starts", schema=SCHEMA)
    op.drop_table("queues", schema=SCHEMA)
    op.drop_index("tasks_delayed_idx", table_name="tasks", schema=SCHEMA)
    op.drop_index("tasks_debounce_idx", table_name="tasks", schema=SCHEMA)
    op.drop_index("tasks_concurrency_key_idx", table_name="tasks", schema=SCHEMA)
    op.drop_index("tasks_pending_idx", table_name="tasks", schema=SCHEMA)
    op.create_index(
        "tasks_pending_idx",
        "tasks",
        ["queue", "id"],
        schema=SCHEMA,
        postgresql_where=sa.text("state = 'pending'"),
    )
    for column in ("debounce_until", "debounce_key", "concurrency_key", "priority"):
        op.drop_column("tasks", column, schema=SCHEMA)
