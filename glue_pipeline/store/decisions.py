"""The SQL of an analyst's match decisions: the tenants, organizations, suggestions, contacts,
users, configurations and devices a decision names, and what it records (the tenant's match, a
user's contact decision, a device's configuration decision, the audit row), inside one write
transaction; and what is open for a tenant (its suggestions, its held users and their candidate
contacts), read for a review. Which decision is allowed is
glue_pipeline/decisions.py's.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime

from sqlalchemy import Connection, Engine, exists, insert, select

from glue_pipeline.matching.organizations import normalize_name
from glue_pipeline.store.engine import read_transaction, write_transaction
from glue_pipeline.store.migrate import upgrade_store
from glue_pipeline.store.partition_keys import tenants_of
from glue_pipeline.store.rows import Row, all_rows, first_row, update_or_insert
from glue_pipeline.store.schema import (
    configuration_decisions,
    configuration_microsoft,
    configurations,
    contact_decisions,
    contact_microsoft,
    contacts,
    held_devices,
    held_users,
    match_decisions,
    organizations,
    tenant_matches,
    tenant_suggestions,
    tenants,
)
from glue_pipeline.store.tenant_refs import find_tenant
from glue_pipeline.store.writer import utcnow
from glue_pipeline.vocabulary import ContactDecisionAction, DecisionAction, MatchMethod, MatchStatus


@contextmanager
def recording_decision(engine: Engine, by: str) -> Iterator[DecisionStore]:
    """The store brought to the schema's head, then one write transaction in which every row
    written is signed by `by` and dated now."""
    now = utcnow()
    upgrade_store(engine)
    with write_transaction(engine) as conn:
        yield DecisionStore(conn, by, now)


@contextmanager
def reading_decisions(engine: Engine) -> Iterator[DecisionReads]:
    """The store brought to the schema's head, then one transaction that only reads."""
    upgrade_store(engine)
    with read_transaction(engine) as conn:
        yield DecisionReads(conn)


class DecisionReads:
    """What a decision reads: tenants, organizations, suggestions, contacts and users."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def tenant_of_partition(self, key: str) -> str | None:
        """The id of the tenant whose partition key is `key`."""
        return tenants_of(self._conn, [key]).get(key)

    def tenant(self, tenant_id: str) -> Row | None:
        return first_row(self._conn, select(tenants).where(tenants.c.tenant_id == tenant_id))

    def find_tenant(self, ref: str) -> Row:
        """The tenant `ref` names (store/tenant_refs.py): a TenantRefError for none or several."""
        return find_tenant(self._conn, ref)

    def organization(self, organization_id: int) -> Row | None:
        return first_row(self._conn, select(organizations).where(organizations.c.id == organization_id))

    def organizations_named(self, name: str) -> list[Row]:
        """The organizations named `name`, case and spaces aside."""
        wanted = normalize_name(name)
        return [o for o in all_rows(self._conn, select(organizations)) if normalize_name(o["name"]) == wanted]

    def suggestion(self, tenant_id: str, rank: int) -> Row | None:
        return first_row(self._conn, select(tenant_suggestions).where(
            (tenant_suggestions.c.tenant_id == tenant_id) & (tenant_suggestions.c.rank == rank)))

    def best_suggestion(self, tenant_id: str, min_score: int) -> Row | None:
        """The tenant's best-ranked suggestion that scores at least `min_score`."""
        return first_row(self._conn, select(tenant_suggestions).where(
            (tenant_suggestions.c.tenant_id == tenant_id) & (tenant_suggestions.c.score >= min_score))
            .order_by(tenant_suggestions.c.rank))

    def suggestions(self, tenant_id: str) -> list[Row]:
        """The tenant's suggestions, best first."""
        return all_rows(self._conn, select(tenant_suggestions).where(tenant_suggestions.c.tenant_id == tenant_id)
                        .order_by(tenant_suggestions.c.rank))

    def match(self, tenant_id: str) -> Row | None:
        return first_row(self._conn, select(tenant_matches).where(tenant_matches.c.tenant_id == tenant_id))

    def contact(self, contact_id: int) -> Row | None:
        return first_row(self._conn, select(contacts).where(contacts.c.id == contact_id))

    def contact_names(self, contact_ids: Iterable[int]) -> dict[int, str]:
        """Each of these contacts' first and last name ('' for a contact without either)."""
        rows = self._conn.execute(select(contacts.c.id, contacts.c.first_name, contacts.c.last_name)
                                  .where(contacts.c.id.in_(list(contact_ids))))
        return {r.id: " ".join(n for n in (r.first_name, r.last_name) if n) for r in rows}

    def held_users(self, tenant_id: str) -> list[Row]:
        """The users the tenant's last sync held for a decision, by user principal name."""
        return all_rows(self._conn, select(held_users).where(held_users.c.tenant_id == tenant_id)
                        .order_by(held_users.c.user_principal_name))

    def user_principal_name(self, tenant_id: str, user_id: str) -> str | None:
        """The UPN of a user held or linked in the tenant."""
        held = select(held_users.c.user_principal_name).where(
            (held_users.c.tenant_id == tenant_id) & (held_users.c.user_id == user_id))
        linked = select(contact_microsoft.c.user_principal_name).where(
            (contact_microsoft.c.tenant_id == tenant_id) & (contact_microsoft.c.user_id == user_id))
        return self._conn.execute(held).scalar() or self._conn.execute(linked).scalar()

    def knows_user(self, tenant_id: str, user_id: str) -> bool:
        """Whether the user is held or linked to a contact in the tenant."""
        held = exists().where((held_users.c.tenant_id == tenant_id) & (held_users.c.user_id == user_id))
        linked = exists().where((contact_microsoft.c.tenant_id == tenant_id)
                                & (contact_microsoft.c.user_id == user_id))
        return bool(self._conn.execute(select(held | linked)).scalar_one())


    def configuration(self, configuration_id: int) -> Row | None:
        return first_row(self._conn, select(configurations).where(configurations.c.id == configuration_id))

    def device_name(self, tenant_id: str, device_id: str) -> str | None:
        """The name of a device held or linked in the tenant (None when it has none, or is unknown)."""
        held = select(held_devices.c.device_name).where(
            (held_devices.c.tenant_id == tenant_id) & (held_devices.c.device_id == device_id))
        linked = select(configurations.c.name).join(
            configuration_microsoft, configuration_microsoft.c.configuration_id == configurations.c.id).where(
            (configuration_microsoft.c.tenant_id == tenant_id) & (configuration_microsoft.c.device_id == device_id))
        return self._conn.execute(held).scalar() or self._conn.execute(linked).scalar()

    def knows_device(self, tenant_id: str, device_id: str) -> bool:
        """Whether the device is held or linked to a configuration in the tenant."""
        held = exists().where((held_devices.c.tenant_id == tenant_id) & (held_devices.c.device_id == device_id))
        linked = exists().where((configuration_microsoft.c.tenant_id == tenant_id)
                                & (configuration_microsoft.c.device_id == device_id))
        return bool(self._conn.execute(select(held | linked)).scalar_one())


class DecisionStore(DecisionReads):
    """Reads and writes of one decision, in its transaction."""

    def __init__(self, conn: Connection, by: str, now: datetime) -> None:
        super().__init__(conn)
        self._by, self._now = by, now

    def set_match(self, tenant_id: str, status: MatchStatus, organization_id: int | None,
                  method: MatchMethod | None) -> None:
        update_or_insert(self._conn, tenant_matches, {"tenant_id": tenant_id}, {
            "status": status, "organization_id": organization_id, "method": method,
            "decided_by": self._by, "decided_at": self._now, "updated_at": self._now})

    def add_organization(self, name: str) -> int:
        added = insert(organizations).values(name=name, created_at=self._now, updated_at=self._now)
        return int(self._conn.execute(added.returning(organizations.c.id)).scalar_one())

    def set_contact_decision(self, tenant_id: str, user_id: str, action: ContactDecisionAction,
                             contact_id: int | None) -> None:
        update_or_insert(self._conn, contact_decisions, {"tenant_id": tenant_id, "user_id": user_id}, {
            "action": action, "contact_id": contact_id, "decided_by": self._by, "decided_at": self._now})

    def set_device_decision(self, tenant_id: str, device_id: str, action: ContactDecisionAction,
                            configuration_id: int | None) -> None:
        update_or_insert(self._conn, configuration_decisions, {"tenant_id": tenant_id, "device_id": device_id}, {
            "action": action, "configuration_id": configuration_id, "decided_by": self._by,
            "decided_at": self._now})

    def audit(self, tenant_id: str, action: DecisionAction, organization_id: int | None = None,
              user_id: str | None = None, contact_id: int | None = None, note: str | None = None,
              device_id: str | None = None, configuration_id: int | None = None) -> None:
        """The decision's row in the audit trail (match_decisions)."""
        self._conn.execute(insert(match_decisions).values(
            tenant_id=tenant_id, action=action, organization_id=organization_id, user_id=user_id,
            contact_id=contact_id, note=note, decided_by=self._by, decided_at=self._now, device_id=device_id,
            configuration_id=configuration_id))


# Who the auto-accept policy records as deciding (tenant_matches and match_decisions.decided_by).
POLICY_ACTOR = "policy"


def record_policy_acceptance(conn: Connection, tenant_id: str, organization_id: int, note: str,
                             now: datetime) -> None:
    """A match the auto-accept policy decided, in the sync's transaction: the tenant's match and
    its audit row, as an analyst's acceptance writes them, decided by `policy`."""
    store = DecisionStore(conn, POLICY_ACTOR, now)
    store.set_match(tenant_id, "matched", organization_id, "accepted")
    store.audit(tenant_id, "accept", organization_id=organization_id, note=note)
