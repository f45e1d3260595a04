"""Workers record where their pid means something: the local takeover of dead workers.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23

``workers.local_identity`` names the machine boot and the pid namespace a worker runs in
(see durable/worker/liveness.py). A worker that shares it with another can ask the kernel
whether that one's pid still exists, and take over its tasks at once when it does not, instead
of waiting for its lease to run out. NULL (another platform, an older worker) means "unknown":
such a worker is only ever taken over by its lease.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "durable"


def upgrade() -> None:
    op.add_column("workers", sa.Column("local_identity", sa.Text(), nullable=True), schema=SCHEMA)


def downgrade() -> None:
    op.drop_column("workers", "local_identity", schema=SCHEMA)
