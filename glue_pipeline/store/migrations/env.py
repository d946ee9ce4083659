"""Alembic's environment for the store: it migrates the connection it is handed (always online)."""

from alembic import context

from glue_pipeline.store.migrations import VERSION_TABLE
from glue_pipeline.store.schema import metadata

context.configure(
    connection=context.config.attributes["connection"],
    target_metadata=metadata,
    version_table=VERSION_TABLE,
    # SQLite alters a table by copying it; batch operations do that, and are plain ALTERs elsewhere.
    render_as_batch=True,
)
with context.begin_transaction():
    context.run_migrations()
