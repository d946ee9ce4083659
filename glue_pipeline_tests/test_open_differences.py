"""Open differences (store table open_differences), through the sandbox on SQLite and PostgreSQL.

A documented value a sync replaced with Microsoft's stays listed after later syncs that found
nothing new (first seen kept, last seen moved on by a sync that read the contact again), follows
Microsoft and the documentation as they move, closes when the two agree again or the contact
leaves, is never touched by another tenant's sync, and is stored as it is and shown inert however
hostile it is. The tenant's `differences` table is the store's open differences.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from alembic import command
from sqlalchemy import delete, insert, inspect, select, update

from glue_pipeline.cache import TenantCache
from glue_pipeline.decisions import apply_decision
from glue_pipeline.demo import sandbox_settings
from glue_pipeline.graph.client import GraphClient
from glue_pipeline.options import SyncOptions
from glue_pipeline.sandbox.generate import generate_world
from glue_pipeline.sandbox.server import Sandbox, SandboxConfig
from glue_pipeline.sandbox.world import (
    AssignedLicense,
    ContactEmail,
    ContactPhone,
    Domain,
    Sku,
    StoreContact,
    StoreOrganization,
    StoreSeed,
    Tenant,
    User,
    World,
)
from glue_pipeline.store import schema
from glue_pipeline.store.engine import make_engine
from glue_pipeline.store.migrate import _migration, upgrade_store
from glue_pipeline.store.migrations import alembic_config
from glue_pipeline.store.rows import as_utc
from glue_pipeline.store.seed import seed_store
from glue_pipeline.sync import TenantOutcome, discover_into, recorded_run, sync_context

od = schema.open_differences
NAMESPACE = uuid.UUID("5d0c4a52-6f0e-4d8a-9b9e-0f3c2a1d7e61")
# A documented title an analyst might paste: markdown that would add rows, a link, an image and
# HTML, a terminal escape, a bidi override and a line break; long, up to the column's 255.
HOSTILE_TITLE = ("| forged | row |\n![x](https://evil.example/p.png) [click](https://evil.example) "
                 "<script>alert(1)</script> \x1b[2J\u202eevil`code`&amp; ").ljust(255, "~")


def _id(name: str) -> str:
    return str(uuid.uuid5(NAMESPACE, name))


def _tenant(name: str, slug: str) -> Tenant:
    sku = Sku(skuId=_id(f"{slug}:sku"), skuPartNumber="SPE_E3", enabled=10)

    def user(first: str, title: str, mobile: str) -> User:
        return User(id=_id(f"{slug}:{first}"), userPrincipalName=f"{first.lower()}@{slug}.example",
                    displayName=f"{first} {slug.title()}", givenName=first, surname=slug.title(),
                    jobTitle=title, mobilePhone=mobile, assignedLicenses=[AssignedLicense(skuId=sku.skuId)])

    return Tenant(id=_id(slug), display_name=name,
                  domains=[Domain(name=f"{slug}.example", is_default=True),
                           Domain(name=f"{slug}.onmicrosoft.com", is_initial=True)],
                  users=[user("Ada", "Director", "+1 555 0101"), user("Bob", "Engineer", "+1 555 0102")],
                  skus=[sku])


def _contacts(tenant: Tenant, organization_id: int, first_id: int, ada_title: str) -> list[StoreContact]:
    """A documented contact per user: Ada's title and mobile phone differ from Microsoft's, Bob's
    agree."""
    ada, bob = tenant.users
    return [StoreContact(id=first_id, organization_id=organization_id, first_name=ada.givenName,
                         last_name=ada.surname, title=ada_title,
                         emails=[ContactEmail(value=ada.userPrincipalName, primary=True)],
                         phones=[ContactPhone(value="+1 555 0199", label="Mobile", primary=True)]),
            StoreContact(id=first_id + 1, organization_id=organization_id, first_name=bob.givenName,
                         last_name=bob.surname, title=bob.jobTitle,
                         emails=[ContactEmail(value=bob.userPrincipalName, primary=True)],
                         phones=[ContactPhone(value=bob.mobilePhone or "", label="Mobile", primary=True)])]


def make_world(ada_title: str = "Manager") -> World:
    """Two tenants, each matched by name to its organization, with two documented users."""
    base = generate_world(seed=3, tenants=1, users=5, revoked=0)
    tenants = [_tenant("Contoso Ltd", "contoso"), _tenant("Fabrikam Inc", "fabrikam")]
    organizations = [StoreOrganization(id=n, name=t.display_name) for n, t in enumerate(tenants, start=1)]
    contacts = [c for n, t in enumerate(tenants) for c in _contacts(t, n + 1, 10 * (n + 1), ada_title)]
    return World(partner=base.partner, app=base.app, tenants=tenants,
                 store=StoreSeed(organizations=organizations, contacts=contacts))


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        return str(request.getfixturevalue("pg_database"))
    return f"sqlite:///{tmp_path / 'store.db'}"


class Store:
    """A seeded store synced from a sandbox; each sync is its own run."""

    def __init__(self, sandbox: Sandbox, url: str, folder: Path) -> None:
        self.sandbox, self.folder = sandbox, folder
        self.engine = make_engine(url)
        self.run_id = ""  # the last sync's
        seed_store(self.engine, sandbox.world.store)
        self.tenant_ids = discover_into(self.engine, self.client())

    def client(self) -> GraphClient:
        return GraphClient(sandbox_settings(self.sandbox, self.sandbox.world))

    def sync(self, *tenants: Tenant, delta: bool = False) -> dict[str, TenantOutcome]:
        """One run over the tenants (all by default): a full read of their users, or with `delta`
        a delta query on top of the last snapshot. Its id is `run_id`."""
        self.run_id = f"run-{uuid.uuid4().hex[:12]}"
        ctx = sync_context(self.client(), self.engine, self.run_id, SyncOptions(users_delta=delta),
                           TenantCache(self.folder / "cache"), self.folder / "tables")
        outcomes = recorded_run(ctx, [t.id for t in tenants] or self.tenant_ids, 1)
        assert all(o.status == "synced" for o in outcomes), [(o.tenant_id, o.error) for o in outcomes]
        return {o.tenant_id: o for o in outcomes}

    def rows(self, tenant: Tenant) -> dict[tuple[int, str], dict[str, Any]]:
        """The tenant's open differences by (contact id, field)."""
        with self.engine.connect() as conn:
            return {(r["contact_id"], r["field"]): dict(r)
                    for r in conn.execute(select(od).where(od.c.tenant_id == tenant.id)).mappings()}

    def last_sync(self, tenant: Tenant) -> tuple[str, Any]:
        """The id of the last run and the time it recorded for the tenant (sync_results)."""
        results = schema.sync_results
        with self.engine.connect() as conn:
            at = conn.execute(select(results.c.finished_at).where(
                results.c.run_id == self.run_id, results.c.tenant_id == tenant.id)).scalar_one()
        return self.run_id, at

    def document(self, contact_id: int, **values: object) -> None:
        """An analyst's edit of a contact in the store (touching updated_at, as README asks)."""
        with self.engine.begin() as conn:
            conn.execute(update(schema.contacts).where(schema.contacts.c.id == contact_id)
                         .values(**values, updated_at=datetime.now(UTC)))

    def document_phone(self, contact_id: int, label: str, value: str) -> None:
        """An analyst's edit of a contact's phone (touching the contact's updated_at)."""
        phones = schema.contact_phones
        with self.engine.begin() as conn:
            conn.execute(update(phones).where(phones.c.contact_id == contact_id, phones.c.label == label)
                         .values(value=value))
        self.document(contact_id)

    def add_contact(self, **values: object) -> int:
        """A contact documented by hand, without an email; its id."""
        now = datetime.now(UTC)
        with self.engine.begin() as conn:
            return int(conn.execute(insert(schema.contacts).values(**values, created_by="store", created_at=now,
                                                                   updated_at=now)).inserted_primary_key[0])

    def contact(self, contact_id: int) -> dict[str, Any]:
        with self.engine.connect() as conn:
            return dict(conn.execute(select(schema.contacts).where(schema.contacts.c.id == contact_id))
                        .mappings().one())


def table(outcome: TenantOutcome) -> pd.DataFrame:
    """The tenant's `differences` table as its materialization wrote it (Parquet)."""
    path = outcome.report["differences"]["path"]
    assert path is not None
    return pd.read_parquet(path)


def microsoft(sandbox: Sandbox, tenant: Tenant, first: str, **values: object) -> None:
    """Change a user in Microsoft (the sandbox's world), as an admin would."""
    served = next(t for t in sandbox.world.tenants if t.id == tenant.id)
    user = next(u for u in served.users if u.givenName == first)
    for name, value in values.items():
        setattr(user, name, value)
    sandbox.refresh()


@pytest.fixture
def world(request: pytest.FixtureRequest) -> World:
    """The world of make_world; a test may give Ada's documented title (indirect parameter)."""
    return make_world(getattr(request, "param", "Manager"))


@pytest.fixture
def store(world: World, store_url: str, sandbox_state: Path, tmp_path: Path) -> Iterator[Store]:
    with Sandbox(SandboxConfig(world=world.model_copy(deep=True)), state_dir=sandbox_state) as sandbox:
        store = Store(sandbox, store_url, tmp_path)
        yield store
        store.engine.dispose()


ADA = 10  # Contoso's Ada (contact id)
TITLE, MOBILE = (ADA, "title"), (ADA, "mobile phone")
FABRIKAM_ADA = {(20, "title"), (20, "mobile phone")}


def test_a_difference_stays_listed_after_syncs_that_found_no_change(store: Store, world: World) -> None:
    contoso = world.tenants[0]
    first = store.sync(delta=True)
    rows = store.rows(contoso)
    run1, at1 = store.last_sync(contoso)
    assert set(rows) == {TITLE, MOBILE}, "documented values replaced; Bob agrees, overlay and aliases are not listed"
    assert (rows[TITLE]["store_value"], rows[TITLE]["microsoft_value"]) == ("Manager", "Director")
    assert (rows[MOBILE]["store_value"], rows[MOBILE]["microsoft_value"]) == ("+1 555 0199", "+1 555 0101")
    assert rows[TITLE]["first_seen_at"] == rows[TITLE]["last_seen_at"] == at1 and rows[TITLE]["run_id"] == run1
    assert rows[TITLE]["user_id"] == contoso.users[0].id
    assert store.contact(ADA)["title"] == "Director", "the sync still writes Microsoft's value"
    shown = table(first[contoso.id])
    assert list(shown["field"]) == ["mobile phone", "title"]
    assert set(shown["contact_name"]) == {"Ada Contoso"}
    assert set(shown["user_principal_name"]) == {"ada@contoso.example"}

    unchanged = store.sync(delta=True)  # nothing changed: not planned, nothing read or written
    assert unchanged[contoso.id].unchanged
    assert store.rows(contoso) == rows

    again = store.sync()  # a full read: the contact is compared again and agrees with the store
    assert not again[contoso.id].unchanged and again[contoso.id].counts.updated == 0
    run3, at3 = store.last_sync(contoso)
    for key in (TITLE, MOBILE):
        now = store.rows(contoso)[key]
        assert now["first_seen_at"] == rows[key]["first_seen_at"], "first seen is kept"
        assert (now["last_seen_at"], now["run_id"]) == (at3, run3), "last seen moved on to the sync that read it"
        assert (now["store_value"], now["microsoft_value"]) == (rows[key]["store_value"], rows[key]["microsoft_value"])
    shown = table(again[contoso.id])
    assert len(shown) == 2 and set(shown["run_id"]) == {run3}
    assert set(shown["first_seen_at"]) == {pd.Timestamp(as_utc(at1))}
    assert set(shown["last_seen_at"]) == {pd.Timestamp(as_utc(at3))}


def test_a_difference_follows_both_sides_and_closes_when_they_agree_again(store: Store, world: World) -> None:
    contoso = world.tenants[0]
    store.sync()
    opened = store.rows(contoso)

    # Microsoft moves on; someone documents Microsoft's new mobile number before the sync would.
    microsoft(store.sandbox, contoso, "Ada", jobTitle="VP", mobilePhone="+1 555 0111")
    store.document_phone(ADA, "Mobile", "+1 555 0111")
    store.sync()
    rows = store.rows(contoso)
    assert set(rows) == {TITLE}, "store and Microsoft agree on the mobile number: closed"
    assert (rows[TITLE]["store_value"], rows[TITLE]["microsoft_value"]) == ("Manager", "VP")
    assert rows[TITLE]["first_seen_at"] == opened[TITLE]["first_seen_at"]

    store.document(ADA, title="Head of IT")  # yet another documented value
    store.sync()
    rows = store.rows(contoso)
    assert (rows[TITLE]["store_value"], rows[TITLE]["microsoft_value"]) == ("Head of IT", "VP")
    assert rows[TITLE]["first_seen_at"] == opened[TITLE]["first_seen_at"]
    assert store.contact(ADA)["title"] == "VP"

    microsoft(store.sandbox, contoso, "Ada", jobTitle="Head of IT")  # Microsoft returns to it
    outcome = store.sync()
    assert store.rows(contoso) == {}
    assert store.contact(ADA)["title"] == "Head of IT"
    assert len(table(outcome[contoso.id])) == 0


def test_a_contact_that_leaves_takes_its_differences(store: Store, world: World) -> None:
    contoso, fabrikam = world.tenants
    store.sync()
    assert set(store.rows(contoso)) == {TITLE, MOBILE} and set(store.rows(fabrikam)) == FABRIKAM_ADA
    store.sandbox.remove_user(contoso.id, contoso.users[0].id)  # Ada leaves Contoso's Microsoft 365
    store.sync(contoso)
    assert store.rows(contoso) == {}

    # An analyst links Fabrikam's Ada to another contact: her old one is unlinked.
    other = store.add_contact(organization_id=2, first_name="Ada", last_name="Fabrikam")
    apply_decision(store.engine, "link_user", fabrikam.id, user_id=fabrikam.users[0].id, contact_id=other,
                   by="ana")
    store.sync(fabrikam)
    assert store.rows(fabrikam) == {}, "the old contact is unlinked; the new one documented nothing Microsoft replaced"

    store.document(21, title="Lead")  # Fabrikam's Bob, deleted from the documentation once synced
    store.sync(fabrikam)
    assert set(store.rows(fabrikam)) == {(21, "title")}
    with store.engine.begin() as conn:
        for child in (schema.contact_emails, schema.contact_phones, schema.contact_microsoft):
            conn.execute(delete(child).where(child.c.contact_id == 21))
    assert set(store.rows(fabrikam)) == {(21, "title")}
    with store.engine.begin() as conn:
        conn.execute(delete(schema.contacts).where(schema.contacts.c.id == 21))
    assert store.rows(fabrikam) == {}


def test_a_tenants_sync_never_touches_another_tenants_differences(store: Store, world: World) -> None:
    contoso, fabrikam = world.tenants
    store.sync()
    theirs = store.rows(fabrikam)
    assert set(theirs) == FABRIKAM_ADA

    microsoft(store.sandbox, contoso, "Ada", jobTitle="Manager")  # Contoso's title closes
    store.sync(contoso)
    assert set(store.rows(contoso)) == {MOBILE}
    assert store.rows(fabrikam) == theirs, "Fabrikam's rows, last seen and run included, are as they were"

    outcome = store.sync(fabrikam)
    assert set(store.rows(fabrikam)) == set(theirs) and set(store.rows(contoso)) == {MOBILE}
    assert set(table(outcome[fabrikam.id])["user_principal_name"]) == {"ada@fabrikam.example"}


@pytest.mark.parametrize("world", [HOSTILE_TITLE], indirect=True, ids=["hostile"])
def test_hostile_values_are_stored_as_they_are_and_shown_inert(store: Store, world: World) -> None:
    contoso = world.tenants[0]
    microsoft(store.sandbox, contoso, "Ada", jobTitle="[**Director**](https://evil.example) | <b>x</b>")
    outcome = store.sync(contoso)
    row = store.rows(contoso)[TITLE]
    assert row["store_value"] == HOSTILE_TITLE, "the documented value is kept exactly"
    assert row["microsoft_value"] == "[**Director**](https://evil.example) | <b>x</b>"
    assert table(outcome[contoso.id]).set_index("field").loc["title", "store_value"] == HOSTILE_TITLE

    preview = outcome[contoso.id].report["differences"]["preview"]
    assert preview is not None
    lines = preview.split("\n")
    assert len(lines) == 4, "a header, a separator and a line per row (title, mobile phone): none added"
    cells = [len(re.split(r"(?<!\\)\|", line)) for line in lines]
    assert cells == [cells[0]] * 4, "no value adds a cell"
    assert re.search(r"(?<!\\)[<\[`&]", preview) is None, "no link, image, HTML, entity or code span"
    assert "\x1b" not in preview and "\u202e" not in preview


def test_the_revision_adds_and_removes_the_table(store_url: str) -> None:
    engine = make_engine(store_url)
    try:
        upgrade_store(engine)
        declared = _shape(engine)
        with _migration(engine) as conn:
            command.downgrade(alembic_config(conn), "0003_operations")
        assert "open_differences" not in inspect(engine).get_table_names()
        with _migration(engine) as conn:
            command.upgrade(alembic_config(conn), "0004_open_differences")
        assert _shape(engine) == declared
    finally:
        engine.dispose()


def _shape(engine: Any) -> dict[str, object]:
    inspector = inspect(engine)
    return {"columns": [(c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns("open_differences")],
            "primary key": inspector.get_pk_constraint("open_differences")["constrained_columns"],
            "foreign keys": [(f["constrained_columns"], f["referred_table"], f["options"])
                             for f in inspector.get_foreign_keys("open_differences")],
            "indexes": sorted((i["name"], tuple(i["column_names"])) for i in inspector.get_indexes("open_differences"))}
