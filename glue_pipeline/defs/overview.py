"""Tables across all tenants, with their asset checks, and the refresh_overview job.

Each check is evaluated on the frame its asset materializes, in the same step: it describes
exactly the rows the UI shows, and costs no read of the store of its own. reports_not_concealed
is also a check of each tenant's partition of tenant_contacts, evaluated by the sync (tenants.py).
"""

import warnings
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass

import dagster as dg
import pandas as pd
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData as TargetMaterialization,
)

from glue_pipeline.defs.metadata import table_metadata
from glue_pipeline.defs.partitions import TENANT_ASSET, TENANTS, tenant_keys
from glue_pipeline.defs.resources import StoreResource
from glue_pipeline.extract import CONCEALED_FIX
from glue_pipeline.graph.errors import CAUSE_FIXES
from glue_pipeline.matching.organizations import OPEN_STATUSES
from glue_pipeline.overview import duplicate_emails, held_devices_overview, held_overview, organization_overview
from glue_pipeline.render import markdown_cell, markdown_table
from glue_pipeline.store.engine import Engine
from glue_pipeline.store.parked import parked_tenants
from glue_pipeline.store.partition_keys import reports_concealed, tenants_by_partition
from glue_pipeline.store.status import STATES, TenantState, status_frame, tenant_statuses

OVERVIEW_GROUP = "overview"
ORGANIZATION_MATCHES = "organization_matches"
CONTACTS_NEEDING_REVIEW = "contacts_needing_review"
CONFIGURATIONS_NEEDING_REVIEW = "configurations_needing_review"
OPEN_TENANT_COLUMNS = ["tenant_name", "tenant_id", "status", "organization_id", "best_suggestion"]
HELD_USER_COLUMNS = ["tenant_name", "user_principal_name", "user_id", "reason"]
HELD_DEVICE_COLUMNS = ["tenant_name", "device_name", "serial_number", "device_id", "reason"]


@dataclass(frozen=True)
class Check:
    """An asset check that passes when no row is at fault; otherwise its text gives the count of
    those rows and the fix (the Dagster job and the command to run), and its metadata lists them."""

    name: str
    asset: str
    severity: dg.AssetCheckSeverity
    holds: str  # what holds while it passes, as a sentence
    at_fault: str  # what the failing rows are, before their count
    fix: str  # what to do when it fails: the UI job and the command line
    columns: list[str]

    @property
    def description(self) -> str:
        return f"{self.holds} If it fails: {self.fix}."

    @property
    def spec(self) -> dg.AssetCheckSpec:
        return dg.AssetCheckSpec(self.name, asset=self.asset, description=self.description)

    def result(self, failing: pd.DataFrame, detail: str = "") -> dg.AssetCheckResult:
        """Its result on the rows at fault; `detail` (markdown, made inert) follows the fix."""
        return dg.AssetCheckResult(
            check_name=self.name, asset_key=self.asset, passed=failing.empty, severity=self.severity,
            description=f"{self.at_fault}: {len(failing)}. Fix: {self.fix}.{detail}" if len(failing) else None,
            metadata={"rows": dg.MetadataValue.md(
                markdown_table(failing[self.columns], limit=50) if len(failing) else "(none)")})


# Each fix names the Dagster job (launched from the Launchpad) and the command that do it.
DECIDE_OPEN = ("decide each in the review_matches job (Launchpad), or list them with glue-pipeline match list "
               "--open and decide with glue-pipeline match accept, set, create-org or ignore")
DECIDE_HELD = ("link each user to its contact or approve a new contact: in the review_matches job (Launchpad), "
               "or list them with glue-pipeline match held and decide with glue-pipeline match link TENANT "
               "USER_ID CONTACT_ID or glue-pipeline match approve TENANT USER_ID")
REVEAL_REPORTS = (f"{CONCEALED_FIX}; glue-pipeline doctor (or the doctor job) then shows whether names are still "
                  "concealed, and the sync (the sync_tenants job, glue-pipeline sync) joins the next day's report")

NO_CONFLICTING_TENANTS = Check(
    "no_conflicting_tenants", ORGANIZATION_MATCHES, dg.AssetCheckSeverity.ERROR,
    "No two tenants are matched to one organization by rule (exact name): only an analyst's decision may put two "
    "tenants on one organization.",
    "Tenants matched by rule to an organization another tenant has",
    "record a decision for each, keeping its organization (a customer with two tenants) or giving it another: the "
    "match_decision job (Launchpad; action match or ignore) or glue-pipeline match set TENANT ORGANIZATION",
    OPEN_TENANT_COLUMNS)
ALL_TENANTS_MATCHED = Check(
    "all_tenants_matched", ORGANIZATION_MATCHES, dg.AssetCheckSeverity.WARN,
    "Every tenant is matched to an organization or ignored: the users of a suggested, conflicting or unmatched "
    "tenant are not written.",
    "Tenants waiting for a match decision", DECIDE_OPEN, OPEN_TENANT_COLUMNS)
REPORTS_NOT_CONCEALED = Check(
    "reports_not_concealed", ORGANIZATION_MATCHES, dg.AssetCheckSeverity.WARN,
    "No tenant conceals user names in its Microsoft 365 reports: a concealed report's mailbox usage cannot be "
    "joined to users.",
    "Tenants concealing user names in their reports", REVEAL_REPORTS, ["tenant_name", "tenant_id"])
NO_AMBIGUOUS_CONTACTS = Check(
    "no_ambiguous_contacts", CONTACTS_NEEDING_REVIEW, dg.AssetCheckSeverity.WARN,
    "No user is held for matching several contacts, for sharing a contact with another user, or for matching a "
    "contact linked to another tenant's user: such a user is written to no contact.",
    "Users held as ambiguous", DECIDE_HELD, HELD_USER_COLUMNS)
NO_LIKELY_DUPLICATES_HELD = Check(
    "no_likely_duplicates_held", CONTACTS_NEEDING_REVIEW, dg.AssetCheckSeverity.WARN,
    "No user is held as a likely duplicate of a contact (sync option duplicate_policy: hold): such a user is not "
    "created.",
    "Users held as likely duplicates", DECIDE_HELD, HELD_USER_COLUMNS)
NO_DUPLICATE_EMAILS = Check(
    "no_duplicate_emails_in_an_organization", CONTACTS_NEEDING_REVIEW, dg.AssetCheckSeverity.ERROR,
    "No email belongs to two contacts of one organization: a user with such an email matches both and is held.",
    "Emails on two or more contacts of one organization",
    "remove the email from all but one of the contacts in the documentation store; until then link the user who "
    "has it in the review_matches job (Launchpad) or with glue-pipeline match link TENANT USER_ID CONTACT_ID",
    ["organization_id", "email", "contacts"])
DECIDE_HELD_DEVICES = ("link each device to its configuration or approve a new configuration: in the match_decision "
                       "job (Launchpad; action link_device or approve_device), or list them with glue-pipeline match "
                       "held-devices and decide with glue-pipeline match link-device TENANT DEVICE_ID "
                       "CONFIGURATION_ID or glue-pipeline match approve-device TENANT DEVICE_ID; the tenant's next "
                       "sync writes it")
NO_AMBIGUOUS_DEVICES = Check(
    "no_ambiguous_devices", CONFIGURATIONS_NEEDING_REVIEW, dg.AssetCheckSeverity.WARN,
    "No Intune device is held for matching several configurations (by serial number, MAC address or name), for "
    "sharing a configuration with another device, or for matching a configuration linked to another tenant's "
    "device: such a device is written to no configuration.",
    "Devices held as ambiguous", DECIDE_HELD_DEVICES, HELD_DEVICE_COLUMNS)
NO_LIKELY_DUPLICATE_DEVICES_HELD = Check(
    "no_likely_duplicate_devices_held", CONFIGURATIONS_NEEDING_REVIEW, dg.AssetCheckSeverity.WARN,
    "No Intune device is held as a likely duplicate of a configuration (sync option duplicate_policy: hold): such "
    "a device is not created.",
    "Devices held as likely duplicates", DECIDE_HELD_DEVICES, HELD_DEVICE_COLUMNS)
MATCH_CHECKS = [NO_CONFLICTING_TENANTS, ALL_TENANTS_MATCHED, REPORTS_NOT_CONCEALED]
DEVICE_CHECKS = [NO_AMBIGUOUS_DEVICES, NO_LIKELY_DUPLICATE_DEVICES_HELD]
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


@dg.asset(group_name=OVERVIEW_GROUP, deps=["tenant_contacts"], check_specs=[c.spec for c in DEVICE_CHECKS],
          description="Intune devices the last sync held for an analyst (ambiguous matches, likely duplicates, "
                      "links to another tenant's device), with candidate configurations.")
def configurations_needing_review(store: StoreResource) -> MaterializationAndChecks:
    held = held_devices_overview(store.engine)
    yield dg.MaterializeResult(metadata=table_metadata(held, preview_rows=25))
    likely = held["reason"].str.startswith("likely duplicate")
    yield NO_AMBIGUOUS_DEVICES.result(held[~likely])
    yield NO_LIKELY_DUPLICATE_DEVICES_HELD.result(held[likely])


# The same check per tenant, on the tenant's own partition of tenant_contacts: each sync evaluates
# it with each materialization it makes (defs/tenants.py), so a tenant's result always refers to
# its latest materialization and costs nothing for the tenants a sync leaves unchanged; it also
# runs on its own, from the UI. Checks on partitions are a preview feature of Dagster 1.13
# (pinned): its warning would reach every command's terminal.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", dg.PreviewWarning)
    TENANT_REPORTS_CHECK = dg.AssetCheckSpec(
        REPORTS_NOT_CONCEALED.name, asset=TENANT_ASSET, partitions_def=TENANTS,
        description="This tenant's Microsoft 365 reports show user names, so its mailbox usage is joined to its "
                    "users; each sync that materializes the tenant evaluates it (as of the tenant's last read). "
                    f"If it fails: {REVEAL_REPORTS}.")


def tenant_report_evaluations(instance: dg.DagsterInstance,
                              concealed: Mapping[str, bool]) -> Iterator[dg.AssetCheckEvaluation]:
    """TENANT_REPORTS_CHECK on each partition of `concealed` (partition key -> whether the tenant's
    reports conceal user names). An AssetCheckResult has no partition of its own: Dagster gives it
    the run's partition, and none in a run over a range of partitions, so the evaluations are built
    here, each with its partition and the partition's latest materialization (the UI shows a
    partition's result only while it refers to that one). Call it after the partitions'
    materializations."""
    latest = _latest_materializations(instance, TENANT_REPORTS_CHECK.asset_key, list(concealed))
    for partition, hidden in concealed.items():
        yield dg.AssetCheckEvaluation(
            asset_key=TENANT_REPORTS_CHECK.asset_key, check_name=TENANT_REPORTS_CHECK.name, passed=not hidden,
            partition=partition, target_materialization_data=latest.get(partition),
            severity=dg.AssetCheckSeverity.WARN, blocking=False,
            description=f"This tenant conceals user names in its reports. Fix: {REVEAL_REPORTS}." if hidden else None)


@dg.multi_asset_check(specs=[TENANT_REPORTS_CHECK], can_subset=False,
                      description="Evaluate reports_not_concealed on the run's tenant partitions, from what their "
                                  "last sync read (the store's tenants.reports_concealed).")
def tenant_reports_not_concealed(context: dg.AssetCheckExecutionContext,
                                 store: StoreResource) -> Iterator[dg.AssetCheckEvaluation | dg.Output[None]]:
    keys = list(context.op_execution_context.partition_keys)
    concealed = reports_concealed(store.engine, keys)
    yield from tenant_report_evaluations(context.instance, {k: concealed[k] for k in keys if k in concealed})
    # An evaluation yielded as such is not the check's output, which the step must still yield.
    yield dg.Output(None, output_name=context.op_execution_context.assets_def.get_output_name_for_asset_check_key(
        TENANT_REPORTS_CHECK.key))


def _latest_materializations(instance: dg.DagsterInstance, asset: dg.AssetKey,
                             partitions: list[str]) -> dict[str, TargetMaterialization]:
    """Each partition's latest materialization, in two reads of the event log."""
    if not partitions:  # no partitions is all of them to the event log
        return {}
    storage_ids = instance.event_log_storage.get_latest_storage_id_by_partition(
        asset, dg.DagsterEventType.ASSET_MATERIALIZATION, set(partitions))
    if not storage_ids:
        return {}
    records = instance.fetch_materializations(dg.AssetRecordsFilter(
        asset_key=asset, storage_ids=list(storage_ids.values())), limit=len(storage_ids)).records
    return {r.partition_key: TargetMaterialization(storage_id=r.storage_id, run_id=r.run_id, timestamp=r.timestamp)
            for r in records if r.partition_key is not None}


# The tenant_status preview lists what needs someone first.
ATTENTION: list[TenantState] = ["error", "syncing", "unmatched", "held", "paused", "new", "ok"]
assert sorted(ATTENTION) == sorted(STATES)
PARTITION_TAG = "dagster/partition"
RANGE_TAGS = ("dagster/asset_partition_range_start", "dagster/asset_partition_range_end")


def run_tenants(instance: dg.DagsterInstance, engine: Engine,
                run_ids: Sequence[str]) -> dict[str, Collection[str] | None]:
    """The tenants (ids) each of these Dagster runs covers: its partition, or its partition range
    over the tenants in discovery order (a run not in the instance, or without either tag, is left out)."""
    covered = run_partitions(instance, run_ids)
    tenant_of = tenants_by_partition(engine, {key for keys in covered.values() for key in keys or ()})
    return {run_id: None if keys is None else {tenant_of[k] for k in keys if k in tenant_of}
            for run_id, keys in covered.items()}


def run_partitions(instance: dg.DagsterInstance, run_ids: Sequence[str]) -> dict[str, Collection[str] | None]:
    """The partitions each of these Dagster runs covers (see run_tenants)."""
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
    rows = tenant_statuses(store.engine,
                           run_tenants=lambda run_ids: run_tenants(context.instance, store.engine, run_ids))
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
NO_PARKED_TENANTS = Check(
    "no_parked_tenants", ORGANIZATION_MATCHES, dg.AssetCheckSeverity.ERROR,
    "No tenant's last sync failed for a permanent cause (consent revoked or the app missing from the tenant, the "
    "tenant gone, an application permission missing). Such a tenant is parked: the hourly sync leaves it out, so "
    "this check lists it, with its cause, fix and since when, until it syncs again.",
    "Tenants failing for a permanent cause",
    "fix each tenant's cause as listed, then sync it: the sync_tenants job on its partition (Launchpad) or "
    "glue-pipeline sync --tenant ID; to stop syncing a tenant, pause it: the tenant_pause job or glue-pipeline "
    "tenant pause TENANT", PARKED_COLUMNS)


@dg.asset_check(asset=ORGANIZATION_MATCHES, name=NO_PARKED_TENANTS.name, description=NO_PARKED_TENANTS.description)
def no_parked_tenants(store: StoreResource) -> dg.AssetCheckResult:
    parked = parked_tenants(store.engine)
    frame = pd.DataFrame([{"tenant_name": p.display_name or p.tenant_id, "tenant_id": p.tenant_id, "cause": p.cause,
                           "fix": CAUSE_FIXES[p.cause], "since": f"{p.since:%Y-%m-%d %H:%M} UTC",
                           "failed_runs": p.failed_runs} for p in parked], columns=PARKED_COLUMNS)
    listed = "; ".join(markdown_cell(f"{r.tenant_name} ({r.tenant_id}): {r.cause} since {r.since}, fix: {r.fix}")
                       for r in frame.head(PARKED_LISTED).itertuples(index=False))
    more = f"; and {len(frame) - PARKED_LISTED} more" if len(frame) > PARKED_LISTED else ""
    return NO_PARKED_TENANTS.result(frame, detail=f" {listed}{more}.")
