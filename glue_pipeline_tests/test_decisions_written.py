"""Contact decisions as a sync writes them into a real store, run after run: what an analyst
decided is written without breaking the store's one-link-per-user rule, and a re-run converges
(creates nothing more)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import Engine, func, insert, select

from glue_pipeline.columns import DECISION_COLUMNS
from glue_pipeline.options import SyncOptions
from glue_pipeline.plan import ContactPlan, plan_contacts, skip_reasons
from glue_pipeline.store import schema, writer
from glue_pipeline.store.engine import make_engine
from glue_pipeline.store.migrate import upgrade_store
from glue_pipeline_tests.test_matching_properties import NOW, TENANT_ID, Case, snapshot, user_row


@pytest.fixture
def store(pg_database: str) -> Iterator[Engine]:
    """A migrated store with one organization (id 1), matched to the tenant."""
    engine = make_engine(pg_database)
    upgrade_store(engine)
    with engine.begin() as conn:
        conn.execute(insert(schema.organizations), [{"id": 1, "name": "Contoso Ltd", "created_at": NOW,
                                                     "updated_at": NOW}])
    yield engine
    engine.dispose()


def _contact(engine: Engine, email: str, linked_user: str | None = None) -> int:
    """A contact of organization 1 with one email, linked to a user of the tenant when given."""
    with engine.begin() as conn:
        contact_id = int(conn.execute(insert(schema.contacts).returning(schema.contacts.c.id), [{
            "organization_id": 1, "created_by": "store", "created_at": NOW, "updated_at": NOW}]).scalar_one())
        conn.execute(insert(schema.contact_emails), [{"contact_id": contact_id, "value": email, "label": "Work",
                                                      "is_primary": True}])
        if linked_user is not None:
            conn.execute(insert(schema.contact_microsoft), [{
                "contact_id": contact_id, "tenant_id": TENANT_ID, "user_id": linked_user,
                "user_principal_name": f"{linked_user}@contoso.com", "status": "enabled"}])
    return contact_id


def _sync(engine: Engine, case: Case, decisions: list[tuple[str, str, int | None]]) -> ContactPlan:
    """Plan the tenant's contacts from the store, as a sync does, and write them."""
    extract, options = snapshot(case), SyncOptions()
    with engine.begin() as conn:
        index = writer.read_contact_index(conn, 1, TENANT_ID)
        plan = plan_contacts(extract, options, skip_reasons(extract, options), index.emails, index.linked,
                             pd.DataFrame(decisions, columns=DECISION_COLUMNS), writer.read_org_contacts(conn, 1),
                             NOW, index.foreign)
        writer.apply_contacts(conn, 1, plan.writes, NOW, "run")
    return plan


def _links(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {r.user_id: r.contact_id for r in conn.execute(
            select(schema.contact_microsoft.c.user_id, schema.contact_microsoft.c.contact_id))}


def _contact_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(schema.contacts)).scalar_one())


def _actions(plan: ContactPlan) -> dict[str, tuple[Any, Any]]:
    return {r["user_id"]: (r["action"], r["matched_on"]) for r in plan.matches.to_dict("records")}


def test_users_approved_with_one_address_are_each_created_once(store: Engine) -> None:
    """Two users whose UPNs differ only in case, both approved: each gets its own contact, and the
    next syncs follow their links."""
    case = Case("Contoso Ltd", ["contoso.com"], [user_row("a", "ann@contoso.com"), user_row("b", "ANN@contoso.com")],
                [])
    decisions: list[tuple[str, str, int | None]] = [("a", "create", None), ("b", "create", None)]
    assert _actions(_sync(store, case, decisions)) == {"a": ("create", "decision"), "b": ("create", "decision")}
    created = _links(store)
    assert set(created) == {"a", "b"} and len(set(created.values())) == 2
    for _ in range(2):
        assert _actions(_sync(store, case, decisions)) == {"a": ("match", "user_id"), "b": ("match", "user_id")}
        assert (_links(store), _contact_count(store)) == (created, 2)


def test_a_link_decision_moves_the_contact_of_a_linked_user(store: Engine) -> None:
    """User b is linked to contact 10 and approved for a new contact; an analyst links user a to 10.
    The first sync gives 10 to a and holds b (a user has one link: b's moves only as 10 is
    written); the next creates b's contact; the one after changes nothing."""
    contact_id = _contact(store, "b@contoso.com", linked_user="b")
    case = Case("Contoso Ltd", ["contoso.com"], [user_row("a", "a@contoso.com"), user_row("b", "b@contoso.com")], [])
    decisions: list[tuple[str, str, int | None]] = [("a", "link", contact_id), ("b", "create", None)]

    first = _sync(store, case, decisions)
    assert _actions(first) == {"a": ("match", "decision"), "b": ("held", "user_id")}
    assert f"links contact {contact_id}, linked to this user until now, to a@contoso.com" in \
        first.matches.set_index("user_id").at["b", "reason"]
    assert _links(store) == {"a": contact_id}

    assert _actions(_sync(store, case, decisions)) == {"a": ("match", "decision"), "b": ("create", "decision")}
    links = _links(store)
    assert links["a"] == contact_id and links["b"] != contact_id and _contact_count(store) == 2

    assert _actions(_sync(store, case, decisions)) == {"a": ("match", "decision"), "b": ("match", "user_id")}
    assert (_links(store), _contact_count(store)) == (links, 2)
