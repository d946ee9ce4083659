"""`python -m glue_pipeline.store.migrations "what changed"`: writes the next revision from what
schema.py has and a store at head lacks (Alembic's autogenerate on a scratch SQLite store), and
makes it the HEAD. Review it before committing: autogenerate misses renames, for one."""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

from alembic import command
from alembic.script import ScriptDirectory

from glue_pipeline.store.engine import make_engine
from glue_pipeline.store.migrate import upgrade_store
from glue_pipeline.store.migrations import alembic_config

REVISION_ID_LIMIT = 32  # the version table's version_num is a VARCHAR(32)


def next_revision_id(message: str) -> str:
    number = sum(1 for _ in ScriptDirectory.from_config(alembic_config()).walk_revisions()) + 1
    slug = re.sub(r"[^a-z0-9]+", "_", message.lower()).strip("_")
    return f"{number:04d}_{slug}"[:REVISION_ID_LIMIT].rstrip("_")


def write_revision(message: str) -> str:
    revision = next_revision_id(message)
    with tempfile.TemporaryDirectory() as folder:
        engine = make_engine(f"sqlite:///{Path(folder) / 'store.db'}")
        try:
            upgrade_store(engine)
            with engine.connect() as conn:
                command.revision(alembic_config(conn), message, autogenerate=True, rev_id=revision)
        finally:
            engine.dispose()
    package = Path(__file__).with_name("__init__.py")
    package.write_text(re.sub(r'^HEAD = ".*"$', f'HEAD = "{revision}"', package.read_text(), flags=re.MULTILINE))
    return revision


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    print(f"wrote glue_pipeline/store/migrations/versions/{write_revision(sys.argv[1])}.py; HEAD is now it")
