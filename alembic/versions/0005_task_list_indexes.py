"""Indexes for the task list's filters (``durable serve``, ``durable list``).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03

The dashboard and ``GET /api/v1/tasks`` list tasks newest first, filtered by state, workflow,
queue, name or creation time, one page at a time (``id < cursor``). State and workflow had
their ``(column, id)`` indexes already; queue and name get the same shape, so that each filter
walks its index backwards from the cursor and stops after one page, however many finished
tasks the table holds. ``since`` uses an index on ``created_at``.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("tasks_queue_idx", "tasks", ["queue", "id"], schema="durable")
    op.create_index("tasks_name_idx", "tasks", ["name", "id"], schema="durable")
    op.create_index("tasks_created_idx", "tasks", ["created_at"], schema="durable")


def downgrade() -> None:
    op.drop_index("tasks_created_idx", table_name="tasks", schema="durable")
    op.drop_index("tasks_name_idx", table_name="tasks", schema="durable")
    op.drop_index("tasks_queue_idx", table_name="tasks", schema="durable")
