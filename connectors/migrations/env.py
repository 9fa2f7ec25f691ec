"""Alembic environment of the connector's local store: runs on the connection that
`connectors.store.LocalStore.open` hands over."""

from __future__ import annotations

from alembic import context

from connectors.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - offline use is not supported
    raise RuntimeError("the connector's store migrates itself when opened (LocalStore.open)")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
