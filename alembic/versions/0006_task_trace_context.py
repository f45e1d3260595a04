"""Tasks keep the OpenTelemetry context of the code that launched them.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03

A nullable column: adding it rewrites nothing, and launches without tracing leave it NULL.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("tasks", sa.Column("trace", postgresql.JSONB(), nullable=True), schema="durable")


def downgrade() -> None:
    op.drop_column("tasks", "trace", schema="durable")
