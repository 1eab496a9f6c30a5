"""Alembic environment shared by every service: it runs on the connection handed over by `migrations.upgrade`,
so migrations run inside the service's own transaction and need no URL in an ini file."""

from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=None, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
