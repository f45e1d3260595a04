"""Event payloads keep their text as written: ``json`` instead of ``jsonb``.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03

A replay must hand the workflow the values its first run saw, dict key order included (SPEC
3). ``jsonb`` stores objects with their keys reordered (shorter keys first), so a recorded
``{"zebra": 1, "apple": 2}`` came back as ``{"apple": 2, "zebra": 1}`` and code iterating it
paired recorded outcomes with other keys. ``json`` keeps the text. Histories written before
this revision were already reordered when written; both a first run and its replays read them
back the same way, so nothing changes for them.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("ALTER TABLE durable.events ALTER COLUMN payload TYPE json USING payload::json")


def downgrade() -> None:
    op.execute("ALTER TABLE durable.events ALTER COLUMN payload TYPE jsonb USING payload::jsonb")
