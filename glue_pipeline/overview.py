"""Tables across all tenants, read from the store: every tenant's organization match with its
best suggestion and conflicts, the users and devices held for an analyst, contact emails that
appear twice in one organization."""

from __future__ import annotations

import pandas as pd

from glue_pipeline.store.engine import Engine
from glue_pipeline.store.overview import duplicate_emails, held_devices_overview, held_overview, tenant_matches_frame
from glue_pipeline.vocabulary import MatchMethod, MatchStatus

# The names other code imports from here, wherever they are defined.
__all__ = ["OVERVIEW_COLUMNS", "duplicate_emails", "held_devices_overview", "held_overview", "organization_overview"]

OVERVIEW_COLUMNS = ["tenant_id", "tenant_name", "status", "method", "organization_id", "organization_name",
                    "best_suggestion", "suggestion_score", "conflict", "reports_concealed", "vanished"]
# A tenant matched by rule: the match's status and method.
MATCHED: MatchStatus = "matched"
BY_NAME: MatchMethod = "exact"
# The status of a tenant no sync has matched yet (it has no tenant_matches row).
NOT_SYNCED = "not synced"


def organization_overview(engine: Engine) -> pd.DataFrame:
    """One row per known tenant. `conflict` marks tenants matched by rule (exact name) to one
    organization: two tenants share an organization only by an analyst's decision, so the sync
    never makes such a match (a tenant it would match so is held with the status `conflict`)."""
    frame = tenant_matches_frame(engine)
    frame["status"] = frame["status"].fillna(NOT_SYNCED)
    frame["organization_id"] = frame["organization_id"].astype("Int64")
    frame["suggestion_score"] = frame["suggestion_score"].astype("Int64")
    by_rule = (frame["status"] == MATCHED) & (frame["method"] == BY_NAME)
    shared = frame.loc[by_rule, "organization_id"].value_counts()
    frame["conflict"] = by_rule & frame["organization_id"].isin(shared[shared > 1].index)
    frame["reports_concealed"] = frame["reports_concealed"].fillna(False).astype(bool)
    frame["vanished"] = frame["vanished_at"].notna()
    return frame[OVERVIEW_COLUMNS]
