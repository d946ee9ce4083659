"""Tables across all tenants, with their asset checks, and the refresh_overview job.

Each check is evaluated on the frame its asset materializes, in the same step: it describes
exactly the rows the UI shows, and costs no read of the store of its own.
"""

from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass

import dagster as dg
import pandas as pd

from glue_pipeline.defs.metadata import table_metadata
from glue_pipeline.defs.partitions import tenant_keys
from glue_pipeline.defs.resources import StoreResource
from glue_pipeline.extract import CONCEALED_FIX
from glue_pipeline.graph.errors import CAUSE_FIXES
from glue_pipeline.matching.organizations import OPEN_STATUSES
from glue_pipeline.overview import duplicate_emails, held_overview, organization_overview
from glue_pipeline.render import markdown_cell, markdown_table
from glue_pipeline.store.parked import parked_tenants
from glue_pipeline.store.status import STATES, TenantState, status_frame, tenant_statuses

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


# The tenant_status preview lists what needs someone first.
ATTENTION: list[TenantState] = ["error", "syncing", "unmatched", "held", "paused", "new", "ok"]
assert sorted(ATTENTION) == sorted(STATES)
PARTITION_TAG = "dagster/partition"
RANGE_TAGS = ("dagster/asset_partition_range_start", "dagster/asset_partition_range_end")


def run_tenants(instance: dg.DagsterInstance, run_ids: Sequence[str]) -> dict[str, Collection[str] | None]:
    """The tenants each of these Dagster runs covers: its partition, or its partition range over
    the tenants in discovery order (a run not in the instance, or without either tag, is left out)."""
    covered: dict[str, Collection[str] | None] = {}
    keys: list[str] | None = None
    for run_id in run_ids:
        run = instance.get_run_by_id(run_id)
        if run is None:
            continue
        if PARTITION_TAG in run.tags:
            covered[run_id] = {run.tags[PARTITION_TAG]}
        elif all(tag in run.tags for tag in RANGE_TAGS):
            keys = list(tenant_keys(instance)) if keys is None else keys
            start, end = (run.tags[tag] for tag in RANGE_TAGS)
            if start in keys and end in keys:
                covered[run_id] = set(keys[keys.index(start):keys.index(end) + 1])
    return covered


@dg.asset(group_name=OVERVIEW_GROUP, deps=["tenant_contacts"],
          description="Every tenant's state at a glance, as `glue-pipeline status` shows it: Error (its last sync "
                      "failed; the detail gives the cause and the fix), Syncing… (a sync in progress has not "
                      "finished it), Unmatched (its organization match waits for an analyst), Held (its users "
                      "wait: ignored, or matched since its last sync), Paused (an operator paused it), New (not "
                      "synced yet) or OK; with its organization, last successful sync (UTC), users, and the "
                      "contacts its last sync created and updated. The preview lists tenants that need someone "
                      "first; the metadata counts tenants per state.")
def tenant_status(context: dg.AssetExecutionContext, store: StoreResource) -> dg.MaterializeResult[None]:
    rows = tenant_statuses(store.engine, run_tenants=lambda run_ids: run_tenants(context.instance, run_ids))
    rows.sort(key=lambda r: ATTENTION.index(r.status))  # stable: by name within a state
    frame = status_frame(rows)
    counts = {state: sum(r.status == state for r in rows) for state in STATES}
    return dg.MaterializeResult(metadata={**table_metadata(frame, preview_rows=50),
                                          **{f"tenants {state}": n for state, n in counts.items()}})


overview_job = dg.define_asset_job("refresh_overview", selection=dg.AssetSelection.groups(OVERVIEW_GROUP),
                                   description="Rebuild the tables across all tenants and run their checks.")


# A check of its own (not of the asset's frame): it reads the tenants' last results from the store.
PARKED_COLUMNS = ["tenant_name", "tenant_id", "cause", "fix", "since", "failed_runs"]
PARKED_LISTED = 20  # tenants named in the check's description; its rows list up to 50


@dg.asset_check(
    asset=ORGANIZATION_MATCHES, name="no_parked_tenants",
    description="No tenant's last sync failed for a permanent cause: consent revoked or the app missing from "
                "the tenant, the tenant gone, or an application permission missing. Such a tenant stays failed "
                "until someone acts in the customer tenant; after the run that first meets its cause, runs in "
                "which it is the only failure succeed with a warning (it is parked), so this check is where it "
                "stays visible: each tenant with its cause, the fix and since when, until it syncs again.")
def no_parked_tenants(store: StoreResource) -> dg.AssetCheckResult:
    parked = parked_tenants(store.engine)
    frame = pd.DataFrame([{"tenant_name": p.display_name or p.tenant_id, "tenant_id": p.tenant_id, "cause": p.cause,
                           "fix": CAUSE_FIXES[p.cause], "since": f"{p.since:%Y-%m-%d %H:%M} UTC",
                           "failed_runs": p.failed_runs} for p in parked], columns=PARKED_COLUMNS)
    listed = "; ".join(markdown_cell(f"{r.tenant_name} ({r.tenant_id}): {r.cause} since {r.since}. Fix: {r.fix}")
                       for r in frame.head(PARKED_LISTED).itertuples(index=False))
    more = f"; and {len(frame) - PARKED_LISTED} more" if len(frame) > PARKED_LISTED else ""
    return dg.AssetCheckResult(
        passed=frame.empty, severity=dg.AssetCheckSeverity.ERROR,
        description=f"{len(frame)} tenants fail for a permanent cause: {listed}{more}" if len(frame) else None,
        metadata={"count": len(frame),
                  "rows": dg.MetadataValue.md(markdown_table(frame, limit=50) if len(frame) else "(none)")})
