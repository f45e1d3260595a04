"""The schema revision this code needs, without importing alembic."""

from __future__ import annotations

# The alembic head revision (alembic/versions/). The store compares it with the database's
# durable.alembic_version at start and raises SchemaOutdated if they differ, which keeps
# alembic and SQLAlchemy out of the worker's import path. Bump it with every new migration;
# tests/integration/test_migrations.py pins it equal to alembic's head.
SCHEMA_REVISION = "0006"
