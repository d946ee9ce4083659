"""Tables across all tenants, read from the store: every tenant's organization match with its
best suggestion and conflicts, the users held for an analyst, contact emails that appear twice
in one organization."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import Engine, func, select

from glue_pipeline.store.schema import (
    contact_emails,
    contacts,
    held_users,
    organizations,
    tenant_matches,
    tenant_suggestions,
    tenants,
)

OVERVIEW_COLUMNS = ["tenant_id", "tenant_name", "status", "method", "organization_id", "organization_name",
                    "best_suggestion", "suggestion_score", "conflict", "reports_concealed", "vanished"]


def organization_overview(engine: Engine) -> pd.DataFrame:
    """One row per known tenant. `conflict` marks tenants matched by rule (exact name) to one
    organization: two tenants share an organization only by an analyst's decision, so the sync
    never makes such a match (a tenant it would match so is held with the status `conflict`)."""
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
        frame = pd.DataFrame(conn.execute(query).all(), columns=[
            "tenant_id", "tenant_name", "status", "method", "organization_id", "organization_name",
            "best_suggestion", "suggestion_score", "reports_concealed", "vanished_at"])
    frame["status"] = frame["status"].fillna("not synced")
    frame["organization_id"] = frame["organization_id"].astype("Int64")
    frame["suggestion_score"] = frame["suggestion_score"].astype("Int64")
    by_rule = (frame["status"] == "matched") & (frame["method"] == "exact")
    shared = frame.loc[by_rule, "organization_id"].value_counts()
    frame["conflict"] = by_rule & frame["organization_id"].isin(shared[shared > 1].index)
    frame["reports_concealed"] = frame["reports_concealed"].fillna(False).astype(bool)
    frame["vanished"] = frame["vanished_at"].notna()
    return frame[OVERVIEW_COLUMNS]


def held_overview(engine: Engine) -> pd.DataFrame:
    query = (select(held_users.c.tenant_id, tenants.c.display_name.label("tenant_name"), held_users.c.user_id,
                    held_users.c.user_principal_name, held_users.c.display_name, held_users.c.reason,
                    held_users.c.candidate_contact_ids)
             .join(tenants, tenants.c.tenant_id == held_users.c.tenant_id, isouter=True)
             .order_by(tenants.c.display_name, held_users.c.user_principal_name))
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return pd.DataFrame(rows, columns=["tenant_id", "tenant_name", "user_id", "user_principal_name",
                                       "display_name", "reason", "candidate_contact_ids"])


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
