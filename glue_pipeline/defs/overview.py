"""Tables across all tenants, with their asset checks, and the refresh_overview job.

Each check is evaluated on the frame its asset materializes, in the same step: it describes
exactly the rows the UI shows, and costs no read of the store of its own.
"""

from collections.abc import Iterator
from dataclasses import dataclass

import dagster as dg
import pandas as pd

from glue_pipeline.defs.metadata import table_metadata
from glue_pipeline.defs.resources import StoreResource
from glue_pipeline.extract import CONCEALED_FIX
from glue_pipeline.matching.organizations import OPEN_STATUSES
from glue_pipeline.overview import duplicate_emails, held_overview, organization_overview
from glue_pipeline.render import markdown_table

OVERVIEW_GROUP = "overview"
ORGANIZATION_MATCHES = "organization_matches"
CONTACTS_NEEDING_REVIEW = "contacts_needing_review"
OPEN_TENANT_COLUMNS = ["tenant_name", "tenant_id", "status", "organization_id", "best_suggestion"]
HELD_USER_COLUMNS = ["tenant_name", "user_principal_name", "user_id", "reason"]


@dataclass(frozen=True)
class Check:
    """An asset check that passes when no row is at fault; otherwise it lists those rows."""

    name: str
    asset: str
    severity: dg.AssetCheckSeverity
    at_fault: str  # what the failing rows are, after their count
    columns: list[str]
    description: str | None = None

    @property
    def spec(self) -> dg.AssetCheckSpec:
        return dg.AssetCheckSpec(self.name, asset=self.asset, description=self.description)

    def result(self, failing: pd.DataFrame) -> dg.AssetCheckResult:
        return dg.AssetCheckResult(
            check_name=self.name, asset_key=self.asset, passed=failing.empty, severity=self.severity,
            description=f"{len(failing)} {self.at_fault}" if len(failing) else None,
            metadata={"count": len(failing), "rows": dg.MetadataValue.md(
                markdown_table(failing[self.columns], limit=50) if len(failing) else "(none)")})


NO_CONFLICTING_TENANTS = Check(
    "no_conflicting_tenants", ORGANIZATION_MATCHES, dg.AssetCheckSeverity.ERROR,
    "tenants share an organization with another tenant without an analyst's decision", OPEN_TENANT_COLUMNS,
    "No two tenants share an organization by rule (exact name): only an analyst's decision may put two on one.")
ALL_TENANTS_MATCHED = Check(
    "all_tenants_matched", ORGANIZATION_MATCHES, dg.AssetCheckSeverity.WARN,
    "tenants wait for a match decision (`glue-pipeline match list`)", OPEN_TENANT_COLUMNS,
    "Every tenant is matched or ignored.")
REPORTS_NOT_CONCEALED = Check(
    "reports_not_concealed", ORGANIZATION_MATCHES, dg.AssetCheckSeverity.WARN,
    "tenants conceal report names, so mailbox usage is not joined: " + CONCEALED_FIX, ["tenant_name", "tenant_id"],
    "No tenant conceals user names in its reports.")
NO_AMBIGUOUS_CONTACTS = Check(
    "no_ambiguous_contacts", CONTACTS_NEEDING_REVIEW, dg.AssetCheckSeverity.WARN,
    "users match more than one contact, or share one: link each (`glue-pipeline match held`)", HELD_USER_COLUMNS)
NO_LIKELY_DUPLICATES_HELD = Check(
    "no_likely_duplicates_held", CONTACTS_NEEDING_REVIEW, dg.AssetCheckSeverity.WARN,
    "users are held as likely duplicates: link them or approve the create", HELD_USER_COLUMNS)
NO_DUPLICATE_EMAILS = Check(
    "no_duplicate_emails_in_an_organization", CONTACTS_NEEDING_REVIEW, dg.AssetCheckSeverity.ERROR,
    "emails belong to two contacts of one organization", ["organization_id", "email", "contacts"],
    "No email belongs to two contacts of one organization.")

MATCH_CHECKS = [NO_CONFLICTING_TENANTS, ALL_TENANTS_MATCHED, REPORTS_NOT_CONCEALED]
HELD_CHECKS = [NO_AMBIGUOUS_CONTACTS, NO_LIKELY_DUPLICATES_HELD, NO_DUPLICATE_EMAILS]

MaterializationAndChecks = Iterator[dg.MaterializeResult[None] | dg.AssetCheckResult]


@dg.asset(group_name=OVERVIEW_GROUP, deps=["tenant_contacts"], check_specs=[c.spec for c in MATCH_CHECKS],
          description="Every tenant's organization match across all tenants: status, method, "
                      "organization, best suggestion, conflicts.")
def organization_matches(store: StoreResource) -> MaterializationAndChecks:
    frame = organization_overview(store.engine)
    counts = frame["status"].value_counts().to_dict()
    yield dg.MaterializeResult(metadata={**table_metadata(frame, preview_rows=25),
                                         **{f"tenants {k}": int(v) for k, v in counts.items()}})
    yield NO_CONFLICTING_TENANTS.result(frame[frame["conflict"]])
    yield ALL_TENANTS_MATCHED.result(frame[frame["status"].isin(OPEN_STATUSES) & ~frame["vanished"]])
    yield REPORTS_NOT_CONCEALED.result(frame[frame["reports_concealed"]])


@dg.asset(group_name=OVERVIEW_GROUP, deps=["tenant_contacts"], check_specs=[c.spec for c in HELD_CHECKS],
          description="Users the last sync held for an analyst (ambiguous matches, likely duplicates, "
                      "links to another organization), with candidate contacts.")
def contacts_needing_review(store: StoreResource) -> MaterializationAndChecks:
    held = held_overview(store.engine)
    yield dg.MaterializeResult(metadata=table_metadata(held, preview_rows=25))
    yield NO_AMBIGUOUS_CONTACTS.result(held[held["reason"].str.contains("several|is an email of", regex=True)])
    yield NO_LIKELY_DUPLICATES_HELD.result(held[held["reason"].str.startswith("likely duplicate")])
    yield NO_DUPLICATE_EMAILS.result(duplicate_emails(store.engine))


overview_job = dg.define_asset_job("refresh_overview", selection=dg.AssetSelection.groups(OVERVIEW_GROUP),
                                   description="Rebuild the tables across all tenants and run their checks.")
