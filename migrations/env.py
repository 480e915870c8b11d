"""Alembic environment: run over a connection handed in by aliases.database.

`relay db upgrade` (and every command on SQLite) opens the async engine and
passes its connection through config.attributes, so there is one way in.
"""
from alembic import context

from aliases.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise SystemExit("run migrations with `relay db upgrade`, which supplies the database connection")

context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
