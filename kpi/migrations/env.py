"""Alembic environment: runs migrations on the connection that `kpi.migrate` hands over."""

from alembic import context

from kpi.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
