"""Tenant isolation as a property (hypothesis), on SQLite and PostgreSQL.

For a random small world whose tenants are synced and their users linked to contacts, add an
adversarial tenant whose name, verified domain, mail, proxy addresses, UPNs and person names
are drawn to collide with the other tenants' (exactly, in another case, with extra spaces, or
with confusable letters); in half the examples an analyst matches it to a victim's
organization. Sync all tenants any number of times in any order, one by one or side by side:
no contact linked to another tenant's user changes in any field (its row, emails, phones and
Microsoft link), and the adversary is matched to an organization only by the analyst.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text

from glue_pipeline.decisions import apply_decision
from glue_pipeline.demo import sandbox_settings
from glue_pipeline.graph.client import GraphClient
from glue_pipeline.options import SyncOptions
from glue_pipeline.sandbox.generate import generate_world
from glue_pipeline.sandbox.server import Sandbox, SandboxConfig
from glue_pipeline.sandbox.world import AssignedLicense, Domain, Tenant, User, World
from glue_pipeline.store import schema
from glue_pipeline.store.engine import make_engine
from glue_pipeline.store.migrations import VERSION_TABLE
from glue_pipeline.store.seed import seed_store
from glue_pipeline.sync import discover_into, recorded_run, sync_context
from glue_pipeline_tests.stores import matched_world

# Latin letters and a Cyrillic look-alike of each.
CONFUSABLE = {"a": "\u0430", "e": "\u0435", "o": "\u043e", "p": "\u0440", "c": "\u0441", "x": "\u0445",
              "y": "\u0443", "i": "\u0456"}
VARIANTS = ("exact", "upper", "spaced", "confusable")


def variant(text: str, how: str) -> str:
    if how == "upper":
        return text.upper()
    if how == "spaced":
        return f"  {text}  "
    if how == "confusable":
        position = next((i for i, ch in enumerate(text) if ch in CONFUSABLE), None)
        return text if position is None else text[:position] + CONFUSABLE[text[position]] + text[position + 1:]
    return text


adversary_user = st.fixed_dictionaries({
    "victim_user": st.integers(0, 1_000),  # which victim user it imitates (modulo)
    "upn": st.sampled_from(("own", "exact", "upper", "confusable")),
    "mail": st.sampled_from(("none", *VARIANTS)),
    "proxy": st.sampled_from(("none", "exact", "upper", "confusable")),
    "names": st.sampled_from(("same", "confusable", "other")),
})
adversary = st.fixed_dictionaries({
    "victim": st.integers(0, 10),  # whose organization name it takes (modulo)
    "name": st.sampled_from(VARIANTS),
    # Its verified domain: its own, or one that looks like the victim's (the same domain cannot
    # be verified in two tenants).
    "domain": st.sampled_from(("own", "confusable")),
    "users": st.lists(adversary_user, min_size=1, max_size=3),
})
runs = st.lists(st.tuples(st.randoms(use_true_random=False), st.sampled_from((1, 2))), min_size=1, max_size=3)


def _victim_users(tenant: Tenant) -> list[User]:
    return [u for u in tenant.users
            if u.userType == "Member" and u.assignedLicenses and "#EXT#" not in u.userPrincipalName]


def build_adversary(world: World, plan: dict) -> tuple[Tenant, Tenant]:
    """The adversarial tenant for the plan, and the tenant it imitates."""
    victims = [t for t in world.tenants if _victim_users(t)]
    victim = victims[plan["victim"] % len(victims)]
    tenant_id = str(uuid.uuid4())
    initial = f"adv{tenant_id[:8]}.onmicrosoft.com"
    domain = variant(victim.default_domain, "confusable") if plan["domain"] == "confusable" else initial
    if domain == victim.default_domain:  # nothing to replace: its own then
        domain = initial
    sku = next(s for s in victim.skus if s.appliesTo == "User").model_copy(update={"enabled": 10})
    users = []
    for n, spec in enumerate(plan["users"]):
        imitated = _victim_users(victim)[spec["victim_user"] % len(_victim_users(victim))]
        address = imitated.userPrincipalName
        upn = f"user{n}@{domain}" if spec["upn"] == "own" else variant(address, spec["upn"])
        given, surname = imitated.givenName or "Pat", imitated.surname or "Doe"
        if spec["names"] != "same":
            given, surname = ((variant(given, "confusable"), variant(surname, "confusable"))
                              if spec["names"] == "confusable" else (f"Other{n}", "Person"))
        users.append(User(
            id=str(uuid.uuid4()), userPrincipalName=upn.strip(), displayName=f"{given} {surname}",
            givenName=given, surname=surname, mobilePhone=imitated.mobilePhone, jobTitle="Impostor",
            mail=None if spec["mail"] == "none" else variant(address, spec["mail"]),
            proxyAddresses=[] if spec["proxy"] == "none" else [f"smtp:{variant(address, spec['proxy'])}"],
            assignedLicenses=[AssignedLicense(skuId=sku.skuId)]))
    domains = [Domain(name=initial, is_initial=True, is_default=domain == initial)]
    if domain != initial:
        domains.append(Domain(name=domain, is_default=True))
    return Tenant(id=tenant_id, display_name=variant(victim.display_name, plan["name"]),
                  domains=domains, users=users, skus=[sku]), victim


class Store:
    def __init__(self, sandbox: Sandbox, world: World, url: str) -> None:
        self.sandbox, self.world = sandbox, world
        self.engine = make_engine(url)
        with self.engine.begin() as conn:  # one PostgreSQL database serves every example
            schema.metadata.drop_all(conn)
            conn.execute(text(f"DROP TABLE IF EXISTS {VERSION_TABLE}"))
        seed_store(self.engine, world.store)
        self.tenant_ids = discover_into(self.engine, GraphClient(sandbox_settings(sandbox, world)))

    def sync(self, tenant_ids: list[str], concurrency: int) -> None:
        ctx = sync_context(GraphClient(sandbox_settings(self.sandbox, self.world)), self.engine,
                           f"prop-{uuid.uuid4().hex[:12]}", SyncOptions())
        recorded_run(ctx, tenant_ids, concurrency)

    def linked(self) -> dict[int, tuple[str, str]]:
        cm = schema.contact_microsoft
        with self.engine.connect() as conn:
            return {r.contact_id: (r.tenant_id, r.user_id) for r in conn.execute(select(cm))}

    def contacts(self, contact_ids: set[int]) -> dict[int, tuple]:
        """Every field of these contacts: row, emails, phones, Microsoft link."""
        out: dict[int, list] = {c: [] for c in contact_ids}
        with self.engine.connect() as conn:
            for table, key in ((schema.contacts, "id"), (schema.contact_emails, "contact_id"),
                               (schema.contact_phones, "contact_id"), (schema.contact_microsoft, "contact_id")):
                for row in conn.execute(select(table).where(table.c[key].in_(contact_ids))):
                    out[row._mapping[key]].append((table.name, tuple(sorted(row._mapping.items()))))
        return {c: tuple(sorted(rows, key=repr)) for c, rows in out.items()}

    def held(self, tenant_id: str) -> list[str]:
        with self.engine.connect() as conn:
            return list(conn.execute(select(schema.held_users.c.reason)
                                     .where(schema.held_users.c.tenant_id == tenant_id)).scalars())

    def match(self, tenant_id: str) -> tuple[str, int | None]:
        with self.engine.connect() as conn:
            matches = schema.tenant_matches
            row = conn.execute(select(matches).where(matches.c.tenant_id == tenant_id)).one()
        return row.status, row.organization_id


def check_isolation(sandbox: Sandbox, url: str, seed: int, plan: dict, schedule: list, shares: bool) -> None:
    world = matched_world(seed=seed, tenants=2, users=24)
    impostor, victim = build_adversary(world, plan)
    world.tenants.append(impostor)
    sandbox.set_world(world)
    store = Store(sandbox, world, url)
    try:
        victims = [t for t in store.tenant_ids if t != impostor.id]
        store.sync(victims, 2)
        baseline_links = {c: link for c, link in store.linked().items() if link[0] != impostor.id}
        assert baseline_links, "the victims' users are linked to contacts"
        baseline = store.contacts(set(baseline_links))
        victim_org = store.match(victim.id)[1]
        shared = False
        for step, (rng, concurrency) in enumerate(schedule):
            if shares and step == len(schedule) // 2 and victim_org is not None:
                # The adversary is matched to the victim's organization by an analyst, after the
                # syncs before this one (if any) held it.
                apply_decision(store.engine, "match", impostor.id, organization=str(victim_org), by="ana")
                shared = True
            order = list(store.tenant_ids)
            rng.shuffle(order)
            store.sync(order, concurrency)
            assert store.contacts(set(baseline_links)) == baseline, f"a victim's contact changed in run {step}"
            status, organization = store.match(impostor.id)
            assert status != "matched" or shared, f"the adversary was matched by rule ({organization})"
        now = store.linked()
        assert all(now.get(c) == link for c, link in baseline_links.items()), "a contact was re-linked"
        event(f"adversary ends {store.match(impostor.id)[0]}")  # --hypothesis-show-statistics
        event(f"adversary users held: {len(store.held(impostor.id))}")
    finally:
        store.engine.dispose()


@pytest.fixture(scope="module")
def sandbox(sandbox_state: Path) -> Iterator[Sandbox]:
    with Sandbox(SandboxConfig(world=generate_world(seed=1, tenants=2, users=10, revoked=0)),
                 state_dir=sandbox_state) as server:
        yield server


PROPERTY = dict(deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow,
                                                                       HealthCheck.function_scoped_fixture])


# Each half of the examples with an analyst who matches the adversary to the victim's
# organization (two tenants on one organization), the other half without.
SHARES = pytest.mark.parametrize("shares", [False, True], ids=["held-as-conflict", "shared-by-analyst"])


@SHARES
@settings(max_examples=15, **PROPERTY)  # type: ignore[arg-type]
@given(seed=st.integers(0, 100_000), plan=adversary, schedule=runs)
def test_no_tenant_changes_another_tenants_contacts_sqlite(sandbox: Sandbox, shares: bool, seed: int, plan: dict,
                                                          schedule: list) -> None:
    with tempfile.TemporaryDirectory(prefix="glue-isolation-") as folder:
        check_isolation(sandbox, f"sqlite:///{Path(folder) / 'store.db'}", seed, plan, schedule, shares)


@SHARES
@settings(max_examples=8, **PROPERTY)  # type: ignore[arg-type]
@given(seed=st.integers(0, 100_000), plan=adversary, schedule=runs)
def test_no_tenant_changes_another_tenants_contacts_postgres(sandbox: Sandbox, pg_database: str, shares: bool,
                                                            seed: int, plan: dict, schedule: list) -> None:
    check_isolation(sandbox, pg_database, seed, plan, schedule, shares)
