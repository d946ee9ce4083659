"""Vocabulary checks: a CHECK constraint, ck_<table>_<column>, on each column that holds one of the
pipeline's closed vocabularies (glue_pipeline/vocabulary.py): statuses, actions, the log level,
the match method, a contact's origin and a tenant's relationship. NULL stays allowed where the
column allows it. The words are written out below as they were at this revision: a later change
to a vocabulary comes with its own revision that replaces the constraint.

A store holding a word outside its column's vocabulary (no release wrote one: a hand edit or
another tool did) is not upgraded. Before anything changes, the upgrade looks for such rows; if
there are any it raises a ConfigError naming GLUE_STORE_URL and, for each table and column, the
unknown values with their number of rows and the words allowed, and the fix: change those rows to
one of the words (or delete them), then run `glue-pipeline store upgrade` again. Nothing is
guessed, changed or deleted: the upgrade's transaction rolls back, the store stays at
0001_baseline with every row, and every run and command refuses it with the same message until
the rows are fixed.

SQLite cannot add a constraint to a table, so each table is copied with its constraints (batch
mode, recreate "always"), keeping its rows, indexes, unique constraints and foreign keys (the
migration checks foreign keys before it commits). PostgreSQL adds them with ALTER TABLE; that
validates the rows again, which the look beforehand has made sure pass.

Revision ID: 0002_vocabulary_checks
Revises: 0001_baseline
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_vocabulary_checks"
down_revision = "0001_baseline"
branch_labels = None
depends_on = None

# table -> column -> the words allowed (vocabulary.py's Literal types as of this revision).
CHECKS: dict[str, dict[str, tuple[str, ...]]] = {
    "contacts": {"created_by": ("store", "microsoft")},
    "contact_microsoft": {"status": ("enabled", "disabled", "removed")},
    "tenants": {"relationship": ("dap", "gdap", "both", "direct")},
    "tenant_matches": {"status": ("matched", "suggested", "conflict", "unmatched", "ignored"),
                       "method": ("exact", "accepted", "manual", "created")},
    "match_decisions": {"action": ("accept", "match", "ignore", "unignore", "create_organization", "link_user",
                                   "approve_create")},
    "contact_decisions": {"action": ("link", "create")},
    "sync_runs": {"status": ("running", "succeeded", "failed")},
    "sync_results": {"status": ("synced", "held", "failed")},
    "tenant_sync_state": {"status": ("synced", "held")},
    "sync_log": {"level": ("info", "warning", "error"),
                 "action": ("contact_created", "contact_updated", "contact_ambiguous", "contact_held",
                            "contact_unlinked", "user_removed", "users_skipped", "value_cleaned", "tenant_note",
                            "tenant_held", "tenant_unchanged", "tenant_failed")},
}
SHOWN = 10  # unknown values of a column a refusal lists; it counts the others


def name(table: str, column: str) -> str:
    return f"ck_{table}_{column}"


def condition(column: str, words: tuple[str, ...]) -> sa.ColumnElement[bool]:
    return sa.column(column).in_(words)


def upgrade() -> None:
    _refuse_unknown_words(op.get_bind())
    sqlite = op.get_bind().dialect.name == "sqlite"
    for table, columns in CHECKS.items():
        if sqlite:
            with op.batch_alter_table(table, recreate="always") as batch:
                for column, words in columns.items():
                    batch.create_check_constraint(name(table, column), condition(column, words))
        else:
            for column, words in columns.items():
                op.create_check_constraint(name(table, column), table, condition(column, words))


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    for table, columns in CHECKS.items():
        if sqlite:
            with op.batch_alter_table(table, recreate="always") as batch:
                for column in columns:
                    batch.drop_constraint(name(table, column), type_="check")
        else:
            for column in columns:
                op.drop_constraint(name(table, column), table, type_="check")


def _refuse_unknown_words(conn: sa.Connection) -> None:
    """A ConfigError naming each table, column and unknown value, when the store holds any."""
    found: list[tuple[str, str, str]] = []
    for table, columns in CHECKS.items():
        for column, words in columns.items():
            value: sa.ColumnClause[str] = sa.column(column)
            rows = conn.execute(sa.select(value, sa.func.count()).select_from(sa.table(table, value))
                                .where(value.is_not(None), value.not_in(words))
                                .group_by(value).order_by(value)).all()
            if rows:
                unknown = ", ".join(f"{_shown(v)} ({n} {'row' if n == 1 else 'rows'})" for v, n in rows[:SHOWN])
                more = f" and {len(rows) - SHOWN} more values" if len(rows) > SHOWN else ""
                found.append((table, column, f"{table}.{column} holds {unknown}{more} (allowed: {', '.join(words)})"))
    if not found:
        return
    from glue_pipeline.settings import ConfigError
    from glue_pipeline.store.engine import store_setting

    table, column, _ = found[0]
    raise ConfigError(
        f"{store_setting(conn.engine.url.render_as_string(hide_password=False))}: the store cannot be upgraded "
        f"to revision {revision}: it holds values outside the vocabularies (glue_pipeline/vocabulary.py) that "
        "the revision's CHECK constraints allow: "
        + "; ".join(problem for _, _, problem in found)
        + f". Nothing was changed. Fix: change those rows to one of the allowed words (UPDATE {table} SET "
        f"{column} = '<allowed word>' WHERE {column} = '<value>') or delete them, then run "
        "`glue-pipeline store upgrade` again")


def _shown(value: object) -> str:
    """A stored value as the message quotes it: one line, escaped, at most 40 characters."""
    text = str(value)
    return repr(text if len(text) <= 40 else text[:40] + "...")
