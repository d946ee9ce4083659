"""Hostile customer tenants, end to end through the sandbox on SQLite and PostgreSQL.

- A tenant named like another tenant's organization takes nothing: it is held as a conflict,
  and the other tenant's contacts never change, whatever the order of the syncs; only an
  analyst's decisions let it share the organization or take a contact, and they are recorded.
- No value from Graph fails a tenant: NUL bytes, control characters, values longer than their
  column and users listed twice are cleaned where they enter, each change logged once per user
  and field, and an error never carries other users' data.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import insert, select

from glue_pipeline.decisions import apply_decision
from glue_pipeline.demo import sandbox_settings
from glue_pipeline.graph.client import GraphClient
from glue_pipeline.options import SyncOptions
from glue_pipeline.sandbox.server import Sandbox, SandboxConfig
from glue_pipeline.sandbox.world import AssignedLicense, Domain, Tenant, User, World
from glue_pipeline.store import schema
from glue_pipeline.store.engine import make_engine
from glue_pipeline.store.migrate import upgrade_store
from glue_pipeline.store.seed import seed_store
from glue_pipeline.sync import TenantOutcome, discover_into, failure_message, recorded_run, sync_context
from glue_pipeline.untrusted import Cleaner, clean_skus, clean_users, unique_users, user_limits
from glue_pipeline_tests.stores import matched_world

BACKENDS = ["sqlite", "postgres"]


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        return str(request.getfixturevalue("pg_database"))
    return f"sqlite:///{tmp_path / 'store.db'}"


class Store:
    """A seeded store synced from a sandbox, tenant by tenant in a chosen order."""

    def __init__(self, sandbox: Sandbox, world: World, url: str, **settings: object) -> None:
        self.sandbox, self.world = sandbox, world
        self.engine = make_engine(url)
        self.settings = settings
        seed_store(self.engine, world.store)
        self.tenant_ids = discover_into(self.engine, self.client())

    def client(self) -> GraphClient:
        return GraphClient(sandbox_settings(self.sandbox, self.world, max_retries=2, **self.settings),
                           backoff_base_s=0.001)

    def sync(self, tenant_ids: list[str], concurrency: int = 1) -> dict[str, TenantOutcome]:
        """One run over the tenants; with concurrency 1 they are synced in the order given."""
        ctx = sync_context(self.client(), self.engine, f"run-{uuid.uuid4().hex[:12]}", SyncOptions())
        return {o.tenant_id: o for o in recorded_run(ctx, tenant_ids, concurrency)}

    def rows(self, table, **where: object) -> list[dict]:  # type: ignore[no-untyped-def]
        query = select(table)
        for column, value in where.items():
            query = query.where(table.c[column] == value)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def contact(self, contact_id: int) -> dict:
        """Everything about a contact: its row, emails, phones and Microsoft link."""
        return {"contact": self.rows(schema.contacts, id=contact_id),
                "emails": sorted(map(repr, self.rows(schema.contact_emails, contact_id=contact_id))),
                "phones": sorted(map(repr, self.rows(schema.contact_phones, contact_id=contact_id))),
                "link": self.rows(schema.contact_microsoft, contact_id=contact_id)}

    def match(self, tenant_id: str) -> dict:
        return self.rows(schema.tenant_matches, tenant_id=tenant_id)[0]


def _licensed_member(tenant: Tenant) -> User:
    return next(u for u in tenant.users if u.userType == "Member" and u.accountEnabled and u.assignedLicenses
                and "#EXT#" not in u.userPrincipalName)


def _user_sku(tenant: Tenant) -> str:
    return next(s.skuId for s in tenant.skus if s.appliesTo == "User" and s.capabilityStatus == "Enabled")


def _impostor(victim: Tenant, victim_user: User) -> Tenant:
    """A tenant named like the victim's organization ("ADATUM  " for "Adatum"), whose licensed
    user carries the victim user's address as mail and as an alias."""
    tenant_id = str(uuid.uuid4())
    domain = f"impostor{tenant_id[:8]}.onmicrosoft.com"
    template = next(s for s in victim.skus if s.skuId == _user_sku(victim))
    sku = template.model_copy(update={"enabled": 10})
    user = User(id=str(uuid.uuid4()), userPrincipalName=f"mallory@{domain}", displayName="Mallory Attacker",
                givenName="Mallory", surname="Attacker", jobTitle="Owner", mobilePhone="+1 555 0100",
                mail=victim_user.userPrincipalName.upper(),
                proxyAddresses=[f"SMTP:mallory@{domain}", f"smtp:{victim_user.userPrincipalName}"],
                assignedLicenses=[AssignedLicense(skuId=sku.skuId)])
    return Tenant(id=tenant_id, display_name=f"  {victim.display_name.upper()}  ",
                  domains=[Domain(name=domain, is_default=True, is_initial=True)], users=[user], skus=[sku])


@pytest.fixture
def takeover(store_url: str, sandbox_state: Path) -> Iterator[tuple[Store, Tenant, Tenant, int]]:
    """A victim tenant synced alone first (its contact linked), then an impostor tenant in the
    world: (store, victim, impostor, the victim user's contact id)."""
    world = matched_world(seed=21, tenants=3, users=45)
    victim = world.tenants[0]
    victim_user = _licensed_member(victim)
    impostor = _impostor(victim, victim_user)
    world.tenants.append(impostor)
    with Sandbox(SandboxConfig(world=world), state_dir=sandbox_state) as sandbox:
        store = Store(sandbox, world, store_url)
        others = [t for t in store.tenant_ids if t != impostor.id]
        assert store.sync(others)[victim.id].status == "synced"
        link = store.rows(schema.contact_microsoft, tenant_id=victim.id, user_id=victim_user.id)
        assert link, "the victim's user is linked to a contact"
        yield store, victim, impostor, link[0]["contact_id"]
        store.engine.dispose()


def test_a_tenant_named_like_another_tenants_organization_takes_nothing(takeover) -> None:  # type: ignore[no-untyped-def]
    store, victim, impostor, contact_id = takeover
    before = store.contact(contact_id)
    organization_id = store.match(victim.id)["organization_id"]

    for order, concurrency in (([impostor.id, victim.id], 1), ([victim.id, impostor.id], 1),
                               ([impostor.id, victim.id], 2), ([impostor.id], 1)):
        outcomes = store.sync(order, concurrency)
        assert outcomes[impostor.id].status == "held", outcomes[impostor.id].error
        match = store.match(impostor.id)
        assert (match["status"], match["organization_id"]) == ("conflict", None)
        assert store.contact(contact_id) == before, f"the victim's contact changed (order {order})"
        assert not store.rows(schema.contact_microsoft, tenant_id=impostor.id), "the impostor wrote nothing"
        assert store.match(victim.id)["organization_id"] == organization_id

    suggestion = store.rows(schema.tenant_suggestions, tenant_id=impostor.id)
    assert [(s["rank"], s["organization_id"], s["score"]) for s in suggestion] == [(1, organization_id, 100)]
    assert victim.id in suggestion[0]["reasons"] and "already matched to tenant" in suggestion[0]["reasons"]
    held = [r for r in store.rows(schema.sync_log, tenant_id=impostor.id) if r["action"] == "tenant_held"]
    assert held and "already matched to tenant" in held[-1]["message"] and victim.id in held[-1]["message"]


def test_only_analysts_decisions_share_an_organization_or_move_a_contact(takeover) -> None:  # type: ignore[no-untyped-def]
    store, victim, impostor, contact_id = takeover
    impostor_user = impostor.users[0]
    store.sync([impostor.id])
    before = store.contact(contact_id)

    # The analyst says both tenants belong to the organization: the impostor's user that would
    # match the victim's contact is held, naming the other tenant and the contact.
    apply_decision(store.engine, "accept", impostor.id, by="ana")
    assert store.match(impostor.id)["status"] == "matched"
    for order in ([impostor.id], [victim.id, impostor.id], [impostor.id, victim.id]):
        outcomes = store.sync(order)
        assert outcomes[impostor.id].status == "synced", outcomes[impostor.id].error
        assert store.contact(contact_id) == before
    held = store.rows(schema.held_users, tenant_id=impostor.id, user_id=impostor_user.id)
    assert held, "the user is held"
    assert f"contact {contact_id}" in held[0]["reason"] and victim.id in held[0]["reason"]
    assert not store.rows(schema.contact_microsoft, tenant_id=impostor.id)

    # Only an explicit link moves the contact; it is recorded, and it does not flip back.
    apply_decision(store.engine, "link_user", impostor.id, user_id=impostor_user.id, contact_id=contact_id,
                   by="ana")
    store.sync([impostor.id])
    link = store.contact(contact_id)["link"][0]
    assert (link["tenant_id"], link["user_id"]) == (impostor.id, impostor_user.id)
    audit = store.rows(schema.match_decisions, tenant_id=impostor.id, action="link_user")
    assert [(a["user_id"], a["contact_id"], a["decided_by"]) for a in audit] == [(impostor_user.id, contact_id, "ana")]
    moved = store.contact(contact_id)
    for order in ([victim.id], [victim.id, impostor.id], [impostor.id, victim.id]):
        store.sync(order)
        assert store.contact(contact_id)["link"] == moved["link"], "the contact stays where the analyst put it"
    victim_user = _licensed_member(victim)
    held = store.rows(schema.held_users, tenant_id=victim.id, user_id=victim_user.id)
    assert held and impostor.id in held[0]["reason"], "the victim's user is held, naming the other tenant"


# --------------------------------------------------------------------------- hostile values


LONG_TITLE = "Chief " + "Very " * 80 + "Officer"  # over 255 characters


def _hostile_users(tenant: Tenant) -> list[User]:
    domain = tenant.default_domain
    sku = AssignedLicense(skuId=_user_sku(tenant))
    return [
        User(id=str(uuid.uuid4()), userPrincipalName=f"nul.surname@{domain}", displayName="Nul Surname",
             givenName="Nul", surname="Smi\x00th", assignedLicenses=[sku]),
        User(id=str(uuid.uuid4()), userPrincipalName=f"long.title@{domain}", displayName="Long Title",
             givenName="Long", surname="Title", jobTitle=LONG_TITLE, mobilePhone="+44 " + "7" * 100,
             assignedLicenses=[sku]),
        User(id=str(uuid.uuid4()), userPrincipalName=f"escapes@{domain}",
             displayName="Eve\r\n| forged | row |\x1b]0;pwned\x07", givenName="\x1b[2JEve\u202e",
             surname="Escape\u200b", officeLocation="Floor\t3", assignedLicenses=[sku]),
    ]


def _log(store: Store, tenant_id: str, action: str) -> list[dict]:
    return [r for r in store.rows(schema.sync_log, tenant_id=tenant_id) if r["action"] == action]


def test_values_that_would_fail_a_tenant_are_cleaned_where_they_enter(store_url: str, sandbox_state: Path) -> None:
    world = matched_world(seed=23, tenants=2, users=40)
    tenant = world.tenants[0]
    tenant.street = "1 Main St\x00\x1b]0;pwned\x07"
    hostile = _hostile_users(tenant)
    tenant.users.extend(hostile)
    next(s for s in tenant.skus if s.skuId == _user_sku(tenant)).enabled += len(hostile)
    with Sandbox(SandboxConfig(world=world), state_dir=sandbox_state) as sandbox:
        sandbox.faults.repeated_users = {tenant.id}  # a paging glitch lists users twice
        store = Store(sandbox, world, store_url, page_size=7)
        first = store.sync(store.tenant_ids)[tenant.id]
        assert first.status == "synced" and first.error is None, first.error
        assert sandbox.stats.paging_faults > 0, "users were listed twice"
        second = store.sync(store.tenant_ids)[tenant.id]
        assert second.status == "synced" and second.counts.created == 0, "a re-run converges"
        sandbox.faults.repeated_users.clear()

    links = {r["user_id"]: r for r in store.rows(schema.contact_microsoft, tenant_id=tenant.id)}
    written = {u.id: store.rows(schema.contacts, id=links[u.id]["contact_id"])[0] for u in hostile}
    nul, long_title, escapes = (written[u.id] for u in hostile)
    assert nul["last_name"] == "Smith"
    assert long_title["title"] == LONG_TITLE[:255]
    phones = store.rows(schema.contact_phones, contact_id=links[hostile[1].id]["contact_id"])
    assert [len(p["value"]) for p in phones if p["label"] == "Mobile"] == [64]
    assert (escapes["first_name"], escapes["last_name"], escapes["location"]) == ("[2JEve", "Escape", "Floor 3")
    assert store.rows(schema.tenants, tenant_id=tenant.id)[0]["street"] == "1 Main St]0;pwned"
    user_ids = [r["user_id"] for r in store.rows(schema.contact_microsoft, tenant_id=tenant.id)]
    assert len(user_ids) == len(set(user_ids)), "no user is written twice"

    cleaned = _log(store, tenant.id, "value_cleaned")
    by_user_field = [(r["run_id"], r["user_id"], r["message"].split(":")[0]) for r in cleaned]
    assert len(by_user_field) == len(set(by_user_field)), "one warning per user and field and sync"
    by_user_field = [(user_id, field) for _run, user_id, field in by_user_field]
    assert all(r["level"] == "warning" for r in cleaned)
    expected = {(hostile[0].id, "surname"), (hostile[1].id, "jobTitle"), (hostile[1].id, "mobilePhone"),
                (hostile[2].id, "givenName"), (hostile[2].id, "surname"), (hostile[2].id, "displayName"),
                (hostile[2].id, "officeLocation"), (None, "organization.street")}
    assert expected <= set(by_user_field), sorted(expected - set(by_user_field), key=str)
    twice = [r for r in cleaned if r["message"].startswith("id: listed 2 times")]
    assert twice and all(r["user_id"] for r in twice), "users listed twice are named"
    for row in cleaned:
        assert "Smi" not in row["message"] and "Very Very" not in row["message"], "no value is copied"
    assert not any(r["error"] for r in store.rows(schema.sync_results, tenant_id=tenant.id))
    store.engine.dispose()


def test_a_store_error_names_its_cause_and_carries_no_row_values(store_url: str) -> None:
    engine = make_engine(store_url)
    upgrade_store(engine)
    secret_name = "Private Person " + "x" * 300
    now = pd.Timestamp.now(tz="UTC").to_pydatetime()
    with pytest.raises(Exception) as caught, engine.begin() as conn:
        org = conn.execute(insert(schema.organizations).values(name="Org", created_at=now, updated_at=now)
                           .returning(schema.organizations.c.id)).scalar_one()
        row = {"organization_id": org, "first_name": secret_name, "created_by": "store", "created_at": now,
               "updated_at": now}
        conn.execute(insert(schema.contacts).values(id=1, **row))
        conn.execute(insert(schema.contacts).values(id=1, **row))  # the same key twice
    message = failure_message(caught.value, engine)
    assert "the store refused the tenant's writes" in message and "GLUE_STORE_URL" in message
    assert "Private Person" not in message and "Private Person" not in str(caught.value)
    # SQLite refuses the second key; PostgreSQL the value too long for its column first.
    assert any(cause in message for cause in ("UNIQUE constraint", "value too long")), message
    engine.dispose()


# --------------------------------------------------------------------------- the boundary itself


def test_the_boundary_drops_what_has_the_wrong_shape() -> None:
    cleaner = Cleaner()
    guid = str(uuid.uuid4())
    rows = [
        {"id": "not-a-guid", "userPrincipalName": "x@example.com"},
        {"id": guid, "userPrincipalName": "a@example.com", "givenName": {"nested": "object"},
         "businessPhones": "+1 555 0100", "proxyAddresses": ["smtp:b@example.com", 7, None],
         "accountEnabled": "yes", "assignedLicenses": [{"skuId": "nope"}, {"skuId": guid}, "x"],
         "signInActivity": {"lastSignInDateTime": "2026-11-30T10:00:00Z\x00"}, "surname": 42},
        {"id": guid, "userPrincipalName": "a@example.com", "surname": "Kept Last"},
    ]
    users = unique_users(clean_users(rows, user_limits({"last_name": "surname"}), cleaner), cleaner)
    assert [u["id"] for u in users] == [guid] and users[0]["surname"] == "Kept Last"
    first = clean_users(rows[1:2], user_limits({}), Cleaner())[0]
    assert first["givenName"] is None and first["businessPhones"] == []
    assert first["proxyAddresses"] == ["smtp:b@example.com", "7"]
    assert first["accountEnabled"] is None and first["surname"] == "42"
    assert first["assignedLicenses"] == [{"skuId": guid, "disabledPlans": []}]
    assert first["signInActivity"] == {"lastSignInDateTime": "2026-11-30T10:00:00Z"}
    notes = {(c.user_id, c.field): c.message for c in cleaner.found}
    assert "not a GUID" in notes[(None, "id")] and "not-a-guid" in notes[(None, "id")]
    assert notes[(guid, "id")] == "id: listed 2 times in one read: kept once"
    for field in ("givenName", "businessPhones", "accountEnabled", "assignedLicenses",
                  "signInActivity.lastSignInDateTime"):
        assert (guid, field) in notes, field

    sku_cleaner = Cleaner()
    skus = clean_skus([{"skuId": guid, "skuPartNumber": "SPB"},
                       {"skuId": guid, "skuPartNumber": "SPB", "consumedUnits": "lots",
                        "prepaidUnits": {"enabled": 10**12, "warning": -3}}, {"skuId": "x"}], sku_cleaner)
    assert len(skus) == 1 and skus[0]["consumedUnits"] == 0
    assert skus[0]["prepaidUnits"] == {"enabled": 2**31 - 1, "suspended": 0, "warning": 0}
    assert {c.field for c in sku_cleaner.found} >= {"subscribedSkus", f"subscribedSku {guid} consumedUnits"}


# --------------------------------------------------------------------------- look-alikes


def _lookalike(address: str) -> str:
    """The address with its first Latin a, e or o replaced by the Cyrillic letter that looks the
    same (U+0430, U+0435, U+043E)."""
    local, _, domain = address.partition("@")
    position = next(i for i, ch in enumerate(local) if ch in "aeo")
    return local[:position] + {"a": "\u0430", "e": "\u0435", "o": "\u043e"}[local[position]] + \
        local[position + 1:] + "@" + domain


def test_a_user_whose_upn_looks_like_a_contacts_email_is_held(store_url: str, sandbox_state: Path) -> None:
    world = matched_world(seed=25, tenants=2, users=40)
    tenant = world.tenants[0]
    seeded = {e.value.lower() for c in world.store.contacts for e in c.emails}
    original = next(u for u in _victim_candidates(tenant) if u.userPrincipalName.lower() in seeded
                    and any(ch in "aeo" for ch in u.userPrincipalName.split("@")[0]))
    impostor = User(id=str(uuid.uuid4()), userPrincipalName=_lookalike(original.userPrincipalName),
                    displayName="Someone Else", givenName="Someone", surname="Else",
                    assignedLicenses=[AssignedLicense(skuId=_user_sku(tenant))])
    tenant.users.append(impostor)
    next(s for s in tenant.skus if s.skuId == _user_sku(tenant)).enabled += 1
    with Sandbox(SandboxConfig(world=world), state_dir=sandbox_state) as sandbox:
        store = Store(sandbox, world, store_url)
        for _ in range(2):  # held, and held again: never created
            assert store.sync(store.tenant_ids)[tenant.id].status == "synced"
            assert not store.rows(schema.contact_microsoft, tenant_id=tenant.id, user_id=impostor.id)
    contact_id = store.rows(schema.contact_microsoft, tenant_id=tenant.id, user_id=original.id)[0]["contact_id"]
    held = store.rows(schema.held_users, tenant_id=tenant.id, user_id=impostor.id)
    assert held, "the look-alike user waits for an analyst"
    reason = held[0]["reason"]
    assert f"likely duplicate of contact {contact_id}" in reason and "CYRILLIC" in reason, reason
    assert str(contact_id) in (held[0]["candidate_contact_ids"] or "")
    store.engine.dispose()


def _victim_candidates(tenant: Tenant) -> list[User]:
    return [u for u in tenant.users if u.userType == "Member" and u.accountEnabled and u.assignedLicenses
            and "#EXT#" not in u.userPrincipalName]
