"""Reading Microsoft Graph into tables: the partner's customer tenants, and per tenant its
organization, domains, users, subscribed SKUs, mailbox usage and Intune managed devices."""

from __future__ import annotations

import functools
import io
import logging
import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any, TypeAlias

import numpy as np
import pandas as pd

from glue_pipeline.cache import CachedTable, CacheState, TenantCache, utc_day
from glue_pipeline.columns import LICENSE_COLUMNS
from glue_pipeline.graph import JsonObject
from glue_pipeline.graph.client import BatchCall, GraphClient
from glue_pipeline.graph.errors import GraphError, PermissionDeniedError
from glue_pipeline.intune import (
    device_table,
    devices_call,
    devices_digest,
    no_devices,
    state_note,
    unreadable_state,
)
from glue_pipeline.licenses import friendly_name
from glue_pipeline.options import SyncOptions
from glue_pipeline.snapshot import (
    Cleaned,
    Domain,
    MailboxState,
    Organization,
    TenantHead,
    TenantRead,
    TenantSnapshot,
    UnchangedTenant,
    user_column,
)
from glue_pipeline.untrusted import (
    CLEANING_VERSION,
    EMAIL_LIMIT,
    TEXT_LIMIT,
    Cleaner,
    Customer,
    SubscribedSku,
    clean_customer,
    clean_organization,
    clean_skus,
    clean_text,
    clean_users,
    unique_users,
    user_limits,
)
from glue_pipeline.vocabulary import DevicesState

log = logging.getLogger(__name__)

USER_FIELDS = [
    "id", "userPrincipalName", "displayName", "givenName", "surname", "mail", "jobTitle",
    "businessPhones", "mobilePhone", "officeLocation", "accountEnabled", "userType",
    "proxyAddresses", "assignedLicenses", "createdDateTime", "lastPasswordChangeDateTime",
]
# What TenantExtract.details() and the domains read; what licenses_frame reads. Sent alone or
# in a batch.
ORGANIZATION_READ = BatchCall("organization", {"$select": "id,displayName,verifiedDomains,street,city,state,"
                                                          "postalCode,countryLetterCode,businessPhones"})
SKUS_READ = BatchCall("subscribedSkus", {"$select": "skuId,skuPartNumber,capabilityStatus,consumedUnits,"
                                                    "prepaidUnits"})
# The columns of discover_tenants' frame, one row per customer tenant.
DISCOVERY_COLUMNS = ["tenant_id", "display_name", "default_domain", "relationship", "data_source"]
SIGN_IN_FIELD = "signInActivity"
ASSIGNED_LICENSES = "assignedLicenses"
# Graph answers these when signInActivity cannot be read: no AuditLog.Read.All, or no Entra ID P1/P2.
SIGN_IN_REFUSALS = {"Authorization_RequestDenied", "Authentication_RequestFromNonPremiumTenantOrB2CTenant"}
SIGN_IN_PAGE_SIZE = 500  # Graph's cap on $top when signInActivity is selected
MAILBOX_REPORT = "reports/getMailboxUsageDetail(period='D7')"
USERS_CACHE = "users"
DELTA_PAGE_SIZE = {"Prefer": "odata.maxpagesize=999"}  # delta pages default to 200 users
MAILBOX_CACHE = "mailbox_usage"
CONCEALED_NAME = re.compile(r"^[0-9A-F]{32}$")
CONCEALED_FIX = ("to join mailbox usage to users, turn report name concealment off: in the Microsoft 365 admin "
                 "center (Settings > Org Settings > Services > Reports) clear 'Display concealed user, group, "
                 "and site names', or set the sync option fix_concealed_reports: true")
# Report header -> our column. Parsed by name: column order, the BOM and extra columns don't matter.
MAILBOX_COLUMNS = {
    "User Principal Name": "user_principal_name",
    "Report Refresh Date": "report_date",
    "Is Deleted": "is_deleted",
    "Last Activity Date": "last_activity_date",
    "Item Count": "item_count",
    "Storage Used (Byte)": "storage_used_bytes",
    "Issue Warning Quota (Byte)": "issue_warning_quota_bytes",
    "Prohibit Send Quota (Byte)": "prohibit_send_quota_bytes",
    "Prohibit Send/Receive Quota (Byte)": "prohibit_send_receive_quota_bytes",
    "Has Archive": "has_archive",
    "Recipient Type": "recipient_type",
}


def discover_tenants(client: GraphClient, direct: list[tuple[str, str]] | None = None,
                     partner: bool = True) -> pd.DataFrame:
    """Customer tenants from DAP contracts and GDAP relationships, merged by tenant id, plus the
    direct-login sources' tenants (`direct`: (source name, tenant id)); a tenant reached both
    ways appears once, with the direct-login source as its data source."""
    rows: dict[str | None, Customer] = {}
    if partner:
        rows = _partner_customers(client)
    for source_name, tenant_id in direct or []:
        row = rows.setdefault(tenant_id, {"tenant_id": tenant_id, "display_name": None,
                                          "default_domain": None, "relationship": "direct"})
        row["data_source"] = source_name
    cleaner = Cleaner()
    cleaned = [c for c in (clean_customer(row, cleaner) for row in rows.values()) if c is not None]
    for note in cleaner.found:  # names are cleaned again, and logged, in each tenant's sync
        log.log(logging.WARNING if note.field == "tenant id" else logging.INFO, "discovery: %s", note.message)
    frame = pd.DataFrame(cleaned, columns=DISCOVERY_COLUMNS)
    frame["data_source"] = frame["data_source"].fillna("partner")
    return frame.sort_values("tenant_id", ignore_index=True)


def _partner_customers(client: GraphClient) -> dict[str | None, Customer]:
    partner = client.settings.partner_tenant_id
    rows: dict[str | None, Customer] = {}
    for contract in client.get_collection(partner, "contracts", top=999):
        rows[contract.get("customerId")] = {
            "tenant_id": contract.get("customerId"), "display_name": contract.get("displayName"),
            "default_domain": contract.get("defaultDomainName"), "relationship": "dap"}
    for customer in client.get_collection(partner, "tenantRelationships/delegatedAdminCustomers",
                                          top=300):
        row = rows.get(customer.get("tenantId"))
        if row is None:
            rows[customer.get("tenantId")] = {
                "tenant_id": customer.get("tenantId"), "display_name": customer.get("displayName"),
                "default_domain": None, "relationship": "gdap"}
        else:
            row["relationship"] = "both"
    return rows


# A table, or a function that builds it when first needed (from the cache, for a tenant that may
# turn out unchanged and never need it).
Frame: TypeAlias = pd.DataFrame | Callable[[], pd.DataFrame]


def _built(frame: Frame) -> pd.DataFrame:
    return frame() if callable(frame) else frame


def organization_of(tenant_id: str, organization: JsonObject) -> Organization:
    """The organization Graph answered (cleaned), typed."""
    phones = organization.get("businessPhones") or []
    return Organization(
        display_name=str(organization.get("displayName") or tenant_id),
        domains=tuple(Domain(str(d["name"]), bool(d.get("isDefault")), bool(d.get("isInitial")))
                      for d in organization.get("verifiedDomains", [])),
        street=organization.get("street"), city=organization.get("city"), state=organization.get("state"),
        postal_code=organization.get("postalCode"), country=organization.get("countryLetterCode"),
        phone=phones[0] if phones else None)


def user_table(graph_users: pd.DataFrame) -> pd.DataFrame:
    """Graph's users in columns.USER_COLUMNS: names in snake_case, the assigned licences as
    their SKU ids and the sign-in activity as the last sign-in's time."""
    users = graph_users.drop(columns=[ASSIGNED_LICENSES, SIGN_IN_FIELD], errors="ignore").rename(columns=user_column)
    users["sku_ids"] = graph_users[ASSIGNED_LICENSES].map(_sku_ids)
    users["last_sign_in"] = graph_users[SIGN_IN_FIELD].map(_last_sign_in) \
        if SIGN_IN_FIELD in graph_users else None
    return users


def _sku_ids(assigned: object) -> list[str]:
    return [str(lic["skuId"]) for lic in assigned if isinstance(lic, dict) and lic.get("skuId")] \
        if isinstance(assigned, list) else []


def _last_sign_in(activity: object) -> str | None:
    value = activity.get("lastSignInDateTime") if isinstance(activity, dict) else None
    return str(value) if value else None


def user_fields(options: SyncOptions) -> list[str]:
    """The user properties to $select: the pipeline's own plus whatever the mapping names."""
    mapped = options.mapping.properties().values()
    return USER_FIELDS + [p for p in dict.fromkeys(mapped) if p not in USER_FIELDS]


def extract_tenant(client: GraphClient, tenant_id: str, options: SyncOptions | None = None,
                   cache: TenantCache | None = None, now: datetime | None = None) -> TenantRead:
    """Read a tenant. With a cache, users come from a Graph delta query on top of the last
    snapshot, and a mailbox report already fetched today is not fetched again. The organization,
    the licenses and the delta's first page are then asked for in one Graph batch; without a
    snapshot they are read side by side with all the users. A tenant whose users and report are
    as its cached snapshot comes back unchanged, its snapshot built only if asked for."""
    options = options or SyncOptions()
    now = now or datetime.now(UTC)
    notes: list[str] = []
    cleaner = Cleaner()
    snapshot = delta_snapshot(client, cache, tenant_id, options, now)
    if snapshot is not None:
        organization, skus, delta, first_devices = first_reads_batched(client, tenant_id, options, snapshot)
        users, users_entry, changed = users_from_delta(client, tenant_id, options, notes, snapshot,
                                                       delta, now, cleaner)
        device_rows, devices_state = read_devices(client, tenant_id, options, first_devices)
    else:
        organization, (users, users_entry, changed), skus, (device_rows, devices_state) = side_by_side(
            client.settings.tenant_concurrency,
            lambda: client.get_json(tenant_id, ORGANIZATION_READ.path, ORGANIZATION_READ.params)["value"][0],
            lambda: read_all_users(client, tenant_id, options, notes, cache is not None and options.users_delta,
                                   now, cleaner),
            lambda: _all_items(client, tenant_id, client.get_json(tenant_id, SKUS_READ.path, SKUS_READ.params))
            if options.licenses else [],
            lambda: read_devices(client, tenant_id, options))
    note = state_note(devices_state)
    if note:
        notes.append(note)
    organization = clean_organization(organization, cleaner)
    licenses = licenses_frame(clean_skus(skus, cleaner))
    updates = {USERS_CACHE: users_entry} if users_entry else {}
    if options.mailbox_usage:
        mailboxes, state, report_entry = cached_mailboxes(client, tenant_id, options, notes, cache, now,
                                                          lambda: _has_licensed_users(_built(users)))
        if report_entry:
            updates[MAILBOX_CACHE] = report_entry
    else:
        mailboxes, state = parse_mailbox_report(""), "off"
    head = TenantHead(tenant_id, organization_of(tenant_id, organization), licenses, state, tuple(notes),
                      updates, tuple(cleaner.found), devices_state, devices_digest(device_rows),
                      frozenset(str(d["userId"]) for d in device_rows if d.get("userId")))

    @functools.cache
    def devices() -> tuple[pd.DataFrame, tuple[Cleaned, ...]]:
        if devices_state != "read":
            return no_devices(options.devices), ()
        device_cleaner = Cleaner()
        return device_table(device_rows, options.devices, device_cleaner), tuple(device_cleaner.found)

    def load() -> TenantSnapshot:
        return TenantSnapshot(head, user_table(_built(users)), _built(mailboxes), devices,
                              None if MAILBOX_CACHE in updates else changed)

    if changed is not None and not changed and MAILBOX_CACHE not in updates:
        return UnchangedTenant(head, load)
    return load()


def _has_licensed_users(users: pd.DataFrame) -> bool:
    return bool(users[ASSIGNED_LICENSES].map(lambda items: bool(items) if isinstance(items, list)
                                              else False).any())


def side_by_side(limit: int, *calls: Callable[[], Any]) -> list[Any]:
    """The calls' results in order, at most `limit` running at once (one by one for 1); the
    first failure is raised, and calls not yet started then do not start."""
    if limit <= 1:
        return [call() for call in calls]
    failed = threading.Event()

    def guarded(call: Callable[[], Any]) -> Any:
        if failed.is_set():
            raise _NotStarted()
        try:
            return call()
        except BaseException:
            failed.set()
            raise

    with ThreadPoolExecutor(max_workers=limit, thread_name_prefix="glue-tenant-read") as pool:
        futures = [pool.submit(guarded, call) for call in calls]
        errors = [f.exception() for f in futures]
        first = next((e for e in errors if e is not None and not isinstance(e, _NotStarted)), None)
        if first is not None:
            raise first
        return [f.result() for f in futures]


class _NotStarted(Exception):
    """A call skipped because another one of its batch had failed."""


def delta_snapshot(client: GraphClient, cache: TenantCache | None, tenant_id: str, options: SyncOptions,
                   now: datetime) -> CachedTable | None:
    """The users snapshot a delta query can go on from: fresh (full_read_hours), read with the
    same fields, and with a link relative to the Graph URL; None when all users must be read."""
    if cache is None or not options.users_delta:
        return None
    snapshot = cache.load(USERS_CACHE, tenant_id)
    if snapshot is None:
        return None
    link = snapshot.state.get("delta_link")
    usable = _fresh(snapshot.state.get("full_read_at"), now, options.full_read_hours) \
        and snapshot.state.get("fields") == user_fields(options) \
        and snapshot.state.get("cleaning") == CLEANING_VERSION \
        and bool(link and not _relative(client, link).startswith("https://"))
    return snapshot if usable else None


FirstAnswer: TypeAlias = JsonObject | GraphError  # a batch call's answer, or its error


def first_reads_batched(client: GraphClient, tenant_id: str, options: SyncOptions, snapshot: CachedTable
                        ) -> tuple[JsonObject, list[JsonObject], FirstAnswer, FirstAnswer | None]:
    """The organization, the subscribed SKUs, the users delta's first page and the devices' first
    page (or their errors, which the caller judges; None when devices are off) in one batch: one
    request instead of four."""
    calls = {"organization": ORGANIZATION_READ,
             "users": BatchCall(_relative(client, snapshot.state["delta_link"]), headers=DELTA_PAGE_SIZE)}
    if options.licenses:
        calls["licenses"] = SKUS_READ
    if options.devices.enabled:
        calls["devices"] = devices_call(options.devices)
    answers = client.batch(tenant_id, calls)
    organization = _answered(answers["organization"])["value"][0]
    skus = _all_items(client, tenant_id, _answered(answers["licenses"])) if options.licenses else []
    return organization, skus, answers["users"], answers.get("devices")


def read_devices(client: GraphClient, tenant_id: str, options: SyncOptions,
                 first: FirstAnswer | None = None) -> tuple[list[JsonObject], DevicesState]:
    """Every managed device as Graph sent it, and how they were read (intune.py). `first`: the
    first page's answer when a batch asked for it already."""
    if not options.devices.enabled:
        return [], "off"
    call = devices_call(options.devices)
    try:
        page = _answered(first) if first is not None else client.get_json(tenant_id, call.path, call.params)
    except GraphError as exc:
        state = unreadable_state(exc)
        if state is None:
            raise
        return [], state
    return _all_items(client, tenant_id, page), "read"


def _answered(answer: JsonObject | GraphError) -> JsonObject:
    if isinstance(answer, GraphError):
        raise answer
    return answer


def _all_items(client: GraphClient, tenant_id: str, page: JsonObject) -> list[JsonObject]:
    """A collection's items: the page's, then those of the pages its nextLink leads to."""
    items = list(page.get("value", []))
    if page.get("@odata.nextLink"):
        for more in client.get_pages(tenant_id, page["@odata.nextLink"]):
            items += more.get("value", [])
    return items


def users_from_delta(client: GraphClient, tenant_id: str, options: SyncOptions, notes: list[str],
                     snapshot: CachedTable, first: JsonObject | GraphError, now: datetime,
                     cleaner: Cleaner) -> tuple[Frame, CachedTable | None, frozenset[str] | None]:
    """The snapshot's users with the delta's changes (`first`: its first page), the cache entry
    to keep, and the ids of the users the delta returned (None after a full read: all may differ).
    The users are built from the snapshot only when first needed. An expired delta link means
    a full read."""
    try:
        changes, link = read_delta(client, tenant_id, _answered(first))
    except GraphError as exc:
        if exc.code != "syncStateNotFound" and exc.status != 410:
            raise
        notes.append("the users delta link had expired; all users were read again")
        return read_all_users(client, tenant_id, options, notes, True, now, cleaner)
    changes = clean_users(changes, _limits(options), cleaner)
    columns = [*user_fields(options), SIGN_IN_FIELD]
    # Built once, shared by the extract and the cache entry.
    merged = functools.cache(lambda: apply_delta(snapshot.rows(), changes, columns))
    state: CacheState = {**snapshot.state, "delta_link": _relative(client, link)}
    return merged, CachedTable(merged, state, rows_unchanged=not changes), frozenset(str(c["id"]) for c in changes)


def read_all_users(client: GraphClient, tenant_id: str, options: SyncOptions, notes: list[str],
                   keep: bool, now: datetime, cleaner: Cleaner) -> tuple[pd.DataFrame, CachedTable | None, None]:
    """Every user; with `keep`, also the cache entry (with a delta link for the next sync). All may
    have changed (None: see users_from_delta)."""
    if not keep:
        return full_user_read(client, tenant_id, options, notes, cleaner), None, None
    fields = user_fields(options)
    # Take the delta link first: changes made during the full read come again next time.
    link = latest_delta_link(client, tenant_id, fields)
    users = full_user_read(client, tenant_id, options, notes, cleaner)
    return users, CachedTable(users, {"delta_link": _relative(client, link), "full_read_at": now.isoformat(),
                                      "fields": fields, "cleaning": CLEANING_VERSION}), None


def _relative(client: GraphClient, link: str) -> str:
    """A delta link kept relative to the Graph base URL, so it survives a change of host or port
    (the sandbox's port changes between runs)."""
    base = client.settings.graph_url.rstrip("/") + "/"
    return link[len(base):] if link.startswith(base) else link


def _fresh(stamp: str | None, now: datetime, hours: int) -> bool:
    return bool(stamp and now - datetime.fromisoformat(stamp) < timedelta(hours=hours))


def _limits(options: SyncOptions) -> dict[str, int]:
    return user_limits(dict(options.mapping.properties()))


def _clean_read(rows: list[JsonObject], options: SyncOptions, cleaner: Cleaner) -> list[JsonObject]:
    return unique_users(clean_users(rows, _limits(options), cleaner), cleaner)


def full_user_read(client: GraphClient, tenant_id: str, options: SyncOptions, notes: list[str],
                   cleaner: Cleaner) -> pd.DataFrame:
    """Every user, cleaned (untrusted.clean_users: a user listed twice is kept once)."""
    fields = user_fields(options)
    if options.entra:
        try:
            rows = list(client.get_collection(tenant_id, "users", select=[*fields, SIGN_IN_FIELD],
                                              top=min(client.settings.page_size, SIGN_IN_PAGE_SIZE)))
            return pd.DataFrame(_clean_read(rows, options, cleaner), columns=[*fields, SIGN_IN_FIELD])
        except GraphError as exc:
            if exc.code not in SIGN_IN_REFUSALS:
                raise
            notes.append(f"last sign-in is left empty: Graph refused signInActivity ({exc.code}); it needs "
                         "the AuditLog.Read.All permission and an Entra ID P1/P2 licence in the tenant")
    rows = list(client.get_collection(tenant_id, "users", select=fields, top=client.settings.page_size))
    return pd.DataFrame(_clean_read(rows, options, cleaner), columns=[*fields, SIGN_IN_FIELD])


def latest_delta_link(client: GraphClient, tenant_id: str, fields: list[str]) -> str:
    """A delta link for 'from now on', without reading any user ($deltatoken=latest)."""
    page = client.get_json(tenant_id, "users/delta", {"$select": ",".join(fields), "$deltatoken": "latest"})
    return _delta_link(client, tenant_id, page)


def read_delta(client: GraphClient, tenant_id: str, first: JsonObject) -> tuple[list[JsonObject], str]:
    """The users changed since the delta link whose first page is `first` (removed ones carry
    @removed), and the next delta link."""
    changes: list[JsonObject] = list(first.get("value", []))
    if "@odata.deltaLink" in first:
        return changes, first["@odata.deltaLink"]
    following = first.get("@odata.nextLink")
    for page in client.get_pages(tenant_id, following, headers=DELTA_PAGE_SIZE) if following else []:
        changes += page.get("value", [])
        if "@odata.deltaLink" in page:
            return changes, page["@odata.deltaLink"]
    raise GraphError(tenant_id, "users/delta", "NoDeltaLink", "the delta round ended without a deltaLink.",
                     "this is a Graph fault; the next sync reads all users again")


def _delta_link(client: GraphClient, tenant_id: str, page: JsonObject) -> str:
    link: str | None = page.get("@odata.deltaLink")
    if not link:
        raise GraphError(tenant_id, "users/delta", "NoDeltaLink", "no deltaLink in the answer.",
                         "this is a Graph fault; the sync reads all users each time until it is fixed")
    return link


def apply_delta(users: list[dict[str, Any]], changes: list[JsonObject], columns: list[str]) -> pd.DataFrame:
    """The snapshot with changed users merged in (fields not selected in delta, like
    signInActivity, keep their last full-read value) and removed users dropped."""
    by_id = {u["id"]: u for u in users}
    for change in changes:
        if "@removed" in change:
            by_id.pop(change["id"], None)
        else:
            by_id[change["id"]] = {**by_id.get(change["id"], {}),
                                   **{k: v for k, v in change.items() if not k.startswith("@")}}
    return pd.DataFrame(list(by_id.values()), columns=columns)


def cached_mailboxes(client: GraphClient, tenant_id: str, options: SyncOptions, notes: list[str],
                     cache: TenantCache | None, now: datetime,
                     expect_rows: Callable[[], bool]) -> tuple[Frame, MailboxState, CachedTable | None]:
    """The mailbox report; one already fetched today (Graph refreshes it daily) is reused, its
    rows read only when needed. `expect_rows()`: whether the tenant has licensed users."""
    today = utc_day(now)
    cached = cache.load(MAILBOX_CACHE, tenant_id) if cache else None
    if cached and cached.state.get("fetched_on") == today and cached.state.get("cleaning") == CLEANING_VERSION:
        return lambda: cached.frame, _mailbox_state(cached.state.get("mailbox_state")), None
    mailboxes, state = read_mailboxes(client, tenant_id, options, notes, expect_rows())
    entry = CachedTable(mailboxes, {"fetched_on": today, "mailbox_state": state,
                                    "cleaning": CLEANING_VERSION}) if cache and \
        state in ("joined", "concealed") else None
    return mailboxes, state, entry


def _mailbox_state(cached: str | None) -> MailboxState:
    """The state a cached report was kept with (only joined and concealed reports are kept)."""
    return "concealed" if cached == "concealed" else "joined"


def read_mailboxes(client: GraphClient, tenant_id: str, options: SyncOptions, notes: list[str],
                   expect_rows: bool = False) -> tuple[pd.DataFrame, MailboxState]:
    """The mailbox report and its state: joined, concealed or unreadable. With `expect_rows`
    (the tenant has licensed users) a report without any row is taken as spoiled, not as a
    tenant without mailboxes, so it erases nothing."""
    mailboxes = _mailbox_report(client, tenant_id, notes)
    if mailboxes is not None and mailboxes.empty and expect_rows:
        notes.append("the mailbox usage report has no rows although the tenant has licensed users; "
                     "mailbox fields keep their previous values; re-run the tenant later")
        mailboxes = None
    if mailboxes is not None and is_concealed(mailboxes) and options.fix_concealed_reports \
            and _reveal_report_names(client, tenant_id, notes):
        mailboxes = _mailbox_report(client, tenant_id, notes)
    if mailboxes is None:
        return parse_mailbox_report(""), "unreadable"
    if is_concealed(mailboxes):
        notes.append(CONCEALED_FIX)
        return mailboxes, "concealed"
    return mailboxes, "joined"


def _reveal_report_names(client: GraphClient, tenant_id: str, notes: list[str]) -> bool:
    """Switch report name concealment off (PATCH /admin/reportSettings); False when refused."""
    try:
        client.request(tenant_id, "admin/reportSettings", method="PATCH",
                       json_body={"displayConcealedNames": False})
    except PermissionDeniedError:
        notes.append("report name concealment could not be switched off: the app needs the application "
                     "permission ReportSettings.ReadWrite.All in this tenant")
        return False
    notes.append("report name concealment was switched off in this tenant (fix_concealed_reports)")
    return True


def _mailbox_report(client: GraphClient, tenant_id: str, notes: list[str]) -> pd.DataFrame | None:
    csv = client.get_report_csv(tenant_id, MAILBOX_REPORT)
    try:
        return parse_mailbox_report(csv)
    except ReportFormatError as exc:
        notes.append(f"the mailbox usage report could not be read ({exc}); mailbox fields keep their "
                     "previous values; re-run the tenant later")
        return None


def is_concealed(mailboxes: pd.DataFrame) -> bool:
    """Concealed reports replace every UPN by 32 upper-case hex characters."""
    names = mailboxes["user_principal_name"].dropna()
    return bool(len(names)) and bool(names.str.upper().str.fullmatch(CONCEALED_NAME).mean() > 0.5)


def licenses_frame(skus: list[SubscribedSku]) -> pd.DataFrame:
    rows = []
    for sku in skus:
        prepaid = sku.get("prepaidUnits") or {}
        enabled = int(prepaid.get("enabled") or 0)
        consumed = int(sku.get("consumedUnits") or 0)
        rows.append({
            "sku_id": sku["skuId"], "part_number": sku.get("skuPartNumber"),
            "product_name": friendly_name(sku.get("skuPartNumber")),
            "capability_status": sku.get("capabilityStatus"), "consumed": consumed,
            "enabled": enabled, "suspended": int(prepaid.get("suspended") or 0),
            "warning": int(prepaid.get("warning") or 0), "unused": max(enabled - consumed, 0)})
    return pd.DataFrame(rows, columns=LICENSE_COLUMNS)


class ReportFormatError(ValueError):
    """A report CSV that is not what Graph documents."""


REQUIRED_MAILBOX_COLUMNS = ("User Principal Name", "Storage Used (Byte)")


ISO_DATE = r"\d{4}-\d{2}-\d{2}"


def _byte_counts(column: pd.Series) -> pd.Series:
    """Whole numbers from 0 to 2**53 (exact as floats, and far below the store's BigInteger
    limit); anything else is missing."""
    numbers = np.asarray(pd.to_numeric(column.to_numpy(object), errors="coerce"), dtype=np.float64)
    fits = (numbers >= 0) & (numbers <= 2**53) & (numbers == np.round(numbers))
    counts = pd.arrays.IntegerArray(np.where(fits, numbers, 0).astype(np.int64), ~fits)
    return pd.Series(counts, index=column.index)


def parse_mailbox_report(csv: str) -> pd.DataFrame:
    """The mailbox usage CSV as a table keyed by lower-cased UPN, read by column name (the BOM,
    the column order and optional columns do not matter). A truncated or malformed report is
    refused as a whole rather than read in part."""
    columns = list(MAILBOX_COLUMNS.values())
    text = csv.lstrip("\ufeff")
    if not text.strip():
        return pd.DataFrame(columns=columns)
    if not text.endswith("\n"):
        raise ReportFormatError("the CSV ends in the middle of a row (truncated download)")
    try:
        raw = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, on_bad_lines="error")
    except (pd.errors.ParserError, ValueError) as exc:
        raise ReportFormatError(f"malformed CSV: {str(exc).strip()}") from None
    raw.columns = [c.strip() for c in raw.columns]
    missing = [c for c in REQUIRED_MAILBOX_COLUMNS if c not in raw.columns]
    if missing:
        raise ReportFormatError(f"columns {', '.join(missing)} are missing")
    frame = pd.DataFrame({ours: raw.get(theirs) for theirs, ours in MAILBOX_COLUMNS.items()})
    for column in ("item_count", "storage_used_bytes", "issue_warning_quota_bytes",
                   "prohibit_send_quota_bytes", "prohibit_send_receive_quota_bytes"):
        frame[column] = _byte_counts(frame[column])
    for column in ("is_deleted", "has_archive"):
        frame[column] = frame[column].astype(str).str.lower().eq("true")
    for column in ("last_activity_date", "report_date"):
        frame[column] = frame[column].where(frame[column].astype(str).str.fullmatch(ISO_DATE), None)
    frame["recipient_type"] = frame["recipient_type"].map(
        lambda v: clean_text(v, TEXT_LIMIT)[0] if isinstance(v, str) else None)
    # Report cells are untrusted like any Graph value; the UPN only serves to join users.
    frame["user_principal_name"] = frame["user_principal_name"].map(
        lambda v: clean_text(v, EMAIL_LIMIT)[0].lower() if isinstance(v, str) else v).astype("string")
    complete = (frame["user_principal_name"].str.len().gt(0) & frame["storage_used_bytes"].notna()).fillna(False)
    if not complete.all():
        raise ReportFormatError(f"{int((~complete).sum())} rows lack the user or the storage used")
    return frame.reset_index(drop=True)
