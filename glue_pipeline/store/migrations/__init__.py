"""The store's schema revisions (Alembic): env.py and versions/ beside this file, no alembic.ini.

A change to the tables in schema.py comes with a revision: `python -m glue_pipeline.store.migrations
"what changed"` writes it from the difference (review it), and HEAD below names it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # alembic costs a quarter of a second to import: only migrating needs it
    from alembic.config import Config
    from sqlalchemy import Connection

# Not Alembic's default `alembic_version`: Dagster's PostgreSQL storage keeps its own revision
# there, and the store and Dagster's instance may share one database.
VERSION_TABLE = "glue_store_version"
BASELINE = "0001_baseline"  # the tables stores had before their schema was versioned
# The newest revision in versions/, known without importing alembic: checking that a store is
# at head runs at the start of every run and command (test_migrations checks it is the head).
HEAD = "0007_weighed_organizations"


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic's configuration for the store's revisions, migrating `connection`."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent).replace("%", "%%"))
    config.set_main_option("file_template", "%%(rev)s")
    config.attributes["connection"] = connection
    return config
