"""Reads across all tenants: every tenant's match with its best suggestion, the users and devices
held for an analyst, emails two contacts of an organization share, and what sync runs did."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd
from sqlalchemy import Engine, func, select

from glue_pipeline.store.rows import Row, all_rows
from glue_pipeline.store.schema import (
    contact_emails,
    contacts,
    held_devices,
    held_users,
    organizations,
    sync_log,
    sync_results,
    sync_runs,
    tenant_matches,
    tenant_suggestions,
    tenants,
)
from glue_pipeline.vocabulary import MatchStatus

TENANT_MATCH_COLUMNS = ["tenant_id", "tenant_name", "status", "method", "organization_id", "organization_name",
                        "best_suggestion", "suggestion_score", "reports_concealed", "vanished_at"]


def tenant_matches_frame(engine: Engine) -> pd.DataFrame:
    """One row per known tenant, by name: its match (none before its first sync), its
    organization's name and its best suggestion."""
    best = (select(tenant_suggestions.c.tenant_id, tenant_suggestions.c.organization_name,
                   tenant_suggestions.c.organization_id, tenant_suggestions.c.score)
            .where(tenant_suggestions.c.rank == 1).subquery())
    query = (select(tenants.c.tenant_id, tenants.c.display_name.label("tenant_name"), tenant_matches.c.status,
                    tenant_matches.c.method, tenant_matches.c.organization_id,
                    organizations.c.name.label("organization_name"),
                    best.c.organization_name.label("best_suggestion"),
                    best.c.score.label("suggestion_score"), tenants.c.reports_concealed,
                    tenants.c.vanished_at)
             .join(tenant_matches, tenant_matches.c.tenant_id == tenants.c.tenant_id, isouter=True)
             .join(organizations, organizations.c.id == tenant_matches.c.organization_id, isouter=True)
             .join(best, best.c.tenant_id == tenants.c.tenant_id, isouter=True)
             .order_by(tenants.c.display_name))
    with engine.connect() as conn:
        return pd.DataFrame(conn.execute(query).all(), columns=TENANT_MATCH_COLUMNS)


def held_overview(engine: Engine) -> pd.DataFrame:
    """The users held for a decision, by tenant name and user principal name."""
    query = (select(held_users.c.tenant_id, tenants.c.display_name.label("tenant_name"), held_users.c.user_id,
                    held_users.c.user_principal_name, held_users.c.display_name, held_users.c.reason,
                    held_users.c.candidate_contact_ids)
             .join(tenants, tenants.c.tenant_id == held_users.c.tenant_id, isouter=True)
             .order_by(tenants.c.display_name, held_users.c.user_principal_name))
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return pd.DataFrame(rows, columns=["tenant_id", "tenant_name", "user_id", "user_principal_name",
                                       "display_name", "reason", "candidate_contact_ids"])


HELD_DEVICE_COLUMNS = ["tenant_id", "tenant_name", "device_id", "device_name", "serial_number", "reason",
                       "candidate_configuration_ids"]


def held_devices_overview(engine: Engine) -> pd.DataFrame:
    """The devices held for a decision, by tenant name and device name."""
    query = (select(held_devices.c.tenant_id, tenants.c.display_name.label("tenant_name"), held_devices.c.device_id,
                    held_devices.c.device_name, held_devices.c.serial_number, held_devices.c.reason,
                    held_devices.c.candidate_configuration_ids)
             .join(tenants, tenants.c.tenant_id == held_devices.c.tenant_id, isouter=True)
             .order_by(tenants.c.display_name, held_devices.c.device_name, held_devices.c.device_id))
    with engine.connect() as conn:
        return pd.DataFrame(conn.execute(query).all(), columns=HELD_DEVICE_COLUMNS)


def duplicate_emails(engine: Engine) -> pd.DataFrame:
    """organization_id, email, contacts: an email held by more than one contact of an organization."""
    email = func.lower(contact_emails.c.value)
    query = (select(contacts.c.organization_id, email.label("email"),
                    func.count(func.distinct(contacts.c.id)).label("contacts"))
             .join(contacts, contacts.c.id == contact_emails.c.contact_id)
             .group_by(contacts.c.organization_id, email)
             .having(func.count(func.distinct(contacts.c.id)) > 1)
             .order_by(contacts.c.organization_id, email))
    with engine.connect() as conn:
        return pd.DataFrame(conn.execute(query).all(), columns=["organization_id", "email", "contacts"])


def run_results(engine: Engine, run_ids: list[str]) -> list[Row]:
    """The tenants' results in these runs (sync_results rows), each with its tenant's
    `display_name`."""
    with engine.connect() as conn:
        return all_rows(conn, select(sync_results, tenants.c.display_name)
                        .join(tenants, tenants.c.tenant_id == sync_results.c.tenant_id, isouter=True)
                        .where(sync_results.c.run_id.in_(run_ids)))


# The sync_log actions that count a run's configurations (report.SyncSummary).
DEVICE_ACTIONS = ("configuration_created", "configuration_updated", "device_held", "device_ambiguous")


def device_actions(engine: Engine, run_ids: list[str]) -> dict[str, int]:
    """How many configurations these runs created and updated, and how many devices they held."""
    with engine.connect() as conn:
        rows = conn.execute(select(sync_log.c.action, func.count()).where(
            sync_log.c.run_id.in_(run_ids), sync_log.c.action.in_(DEVICE_ACTIONS)).group_by(sync_log.c.action)).all()
    return {str(action): int(n) for action, n in rows}


def contact_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(contacts)).scalar_one()


def last_run_id(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return conn.execute(select(sync_runs.c.run_id).order_by(sync_runs.c.started_at.desc())
                            .limit(1)).scalar()


@dataclass(frozen=True)
class Waiting:
    """What waits for an analyst: tenants without a settled match, users and devices held back."""

    tenants: int
    users: int
    devices: int


def waiting_for_analysts(engine: Engine, open_statuses: Iterable[MatchStatus]) -> Waiting:
    """Tenants whose match has one of `open_statuses`, and the held users."""
    with engine.connect() as conn:
        waiting = conn.execute(select(func.count()).select_from(tenant_matches).where(
            tenant_matches.c.status.in_(open_statuses))).scalar_one()
        held = conn.execute(select(func.count()).select_from(held_users)).scalar_one()
        devices = conn.execute(select(func.count()).select_from(held_devices)).scalar_one()
    return Waiting(waiting, held, devices)
