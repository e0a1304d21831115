"""Alembic's environment: run migrations on the connection :mod:`archive.schema`
hands over (``config.attributes["connection"]``), never from an ini file."""

from __future__ import annotations

from alembic import context

from archive.db import Base, import_models

import_models()
connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters by copying
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
